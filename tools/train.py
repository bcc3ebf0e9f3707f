"""Train a BiSeNet model.

  python tools/train.py --config configs/bisenetv1_city.py [KEY=VALUE ...]
  torchrun --nproc_per_node=N tools/train.py --config ... [--resume [CKPT]]   (same program, data parallel)
"""
import signal
import sys

# Ctrl-C while the libraries load ends quietly; from main() on it is a KeyboardInterrupt, and
# during training the engine turns it into a checkpoint and a clean stop.
signal.signal(signal.SIGINT, lambda signum, frame: sys.exit(130))

from bisenet import distributed  # noqa: E402
from bisenet.cli import add_device_options, config_parser, device_of, parse_args, run, tool_config  # noqa: E402
from bisenet.engine.trainer import TrainingError, evaluate_after_training, train  # noqa: E402


def main(argv=None):
    signal.signal(signal.SIGINT, signal.default_int_handler)
    parser = config_parser(__doc__)
    parser.add_argument("--resume", nargs="?", const="latest", default=None, metavar="CKPT",
                        help="continue from CKPT, or without a path from the newest checkpoint in train.output_dir")
    parser.add_argument("--force-resume", action="store_true",
                        help="resume even if settings that change the run (batch size, schedule, ...) changed; "
                             "the new ones apply from the checkpoint's iteration on")
    parser.add_argument("--finetune-from", metavar="W.pth",
                        help="start from these weights; layers whose shape differs are re-initialised (and listed)")
    parser.add_argument("--seed", type=int, help="random seed (train.seed)")
    add_device_options(parser, threads=False)
    parser.add_argument("--no-eval", action="store_true", help="skip the evaluation after training")
    args = parse_args(parser, argv)
    if args.seed is not None:
        args.overrides.append(f"train.seed={args.seed}")
    cfg = tool_config(args)
    device = distributed.init_from_environment(device_of(args))
    trained = False
    try:
        model, _ = train(cfg, device, resume=args.resume, finetune_from=args.finetune_from,
                         force_resume=args.force_resume)  # the trainer logs what it saved
        trained = True
        if model is not None and not args.no_eval:
            evaluate_after_training(cfg, model, device)
    except KeyboardInterrupt:
        where = "during the evaluation; the trained model is saved" if trained else (
            f"before training started; nothing new was saved in {cfg.train.output_dir}")
        error = TrainingError(f"interrupted {where}")
        error.exit_code = 130
        raise error from None
    finally:
        distributed.cleanup()


if __name__ == "__main__":
    run(main)
