"""Train a BiSeNet model, then evaluate it on the val split (eval.final_modes).

  python tools/train.py --config configs/bisenetv1_city.py [KEY=VALUE ...]
  python tools/train.py --config configs/bisenetv1_city.py train.max_iters=1000 data.root=/data/cityscapes
  torchrun --nproc_per_node=N tools/train.py --config ... [--resume [CKPT]]   (same program, data parallel)

Everything goes to train.output_dir (default: output/<config file name>): config.py (the run's
complete config), log.txt, metrics.jsonl, checkpoint_NNNNNN.pth, model_final.pth (the trained
weights), model_best.pth (with train.eval_interval) and results.json (the evaluation after
training, also printed and logged). Running the same command again on a finished run trains
nothing and shows its results; with other settings it is refused (a new train.output_dir, or
--force-resume to continue it to a longer train.max_iters).
"""
from bisenet.signals import exit_quietly_on_interrupt

exit_quietly_on_interrupt()  # Ctrl-C while the libraries load ends quietly (bisenet.signals)

from bisenet import distributed  # noqa: E402
from bisenet.cli import add_device_options, config_parser, device_of, parse_args, run, tool_config  # noqa: E402
from bisenet.engine.trainer import train  # noqa: E402


def main(argv=None):
    parser = config_parser(__doc__)
    parser.add_argument("--resume", nargs="?", const="latest", default=None, metavar="CKPT",
                        help="continue from CKPT, or without a path from the newest checkpoint in train.output_dir")
    parser.add_argument("--force-resume", action="store_true",
                        help="resume even if settings that change the run (batch size, schedule, ...) changed, "
                             "also a finished run to a longer train.max_iters; the new ones apply from the "
                             "checkpoint's iteration on (implies --resume)")
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
    try:
        train(cfg, device, resume=args.resume, finetune_from=args.finetune_from, force_resume=args.force_resume,
              final_eval=not args.no_eval)  # the trainer logs what it saved, the scores, and what a signal kept
    finally:
        distributed.cleanup()


if __name__ == "__main__":
    run(main)
