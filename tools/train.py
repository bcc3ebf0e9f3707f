"""Train a BiSeNet model.

  python tools/train.py --config configs/bisenetv1_city.py [KEY=VALUE ...]
  torchrun --nproc_per_node=N tools/train.py --config ... [--resume [CKPT]]   (same program, data parallel)
"""
import sys

from bisenet import distributed
from bisenet.cli import config_parser, load_config_or_exit, user_errors
from bisenet.engine.trainer import TrainingError, TrainingInterrupted, evaluate_after_training, train


def main():
    parser = config_parser(__doc__)
    parser.add_argument("--resume", nargs="?", const="latest", default=None, metavar="CKPT",
                        help="continue from CKPT, or without a path from the newest checkpoint in train.output_dir")
    parser.add_argument("--force-resume", action="store_true",
                        help="resume even if batch size, iteration count or class count changed")
    parser.add_argument("--finetune-from", metavar="W.pth",
                        help="start from these weights; layers whose shape differs are re-initialised (and listed)")
    parser.add_argument("--seed", type=int, help="random seed (train.seed)")
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if available)")
    parser.add_argument("--no-eval", action="store_true", help="skip the evaluation after training")
    args = parser.parse_intermixed_args()
    if args.seed is not None:
        args.overrides.append(f"train.seed={args.seed}")
    cfg = load_config_or_exit(args)
    device = distributed.init_from_environment(distributed.resolve_device(args.device))
    try:
        with user_errors():
            model, final = train(cfg, device, resume=args.resume, finetune_from=args.finetune_from,
                                 force_resume=args.force_resume)
            if model is not None and distributed.is_main_process():
                print(f"saved {final}")
            if model is not None and not args.no_eval:
                evaluate_after_training(cfg, model, device)
    except TrainingInterrupted as exc:
        print(f"rank {distributed.get_rank()}: {exc}", file=sys.stderr)
        sys.exit(128 + int(exc.signal_number))
    except TrainingError as exc:
        print(f"error (rank {distributed.get_rank()}): {exc}", file=sys.stderr)
        sys.exit(1)
    finally:
        distributed.cleanup()


if __name__ == "__main__":
    main()
