"""Train a BiSeNet model: python tools/train.py --config configs/bisenetv1_city.py [KEY=VALUE ...]"""
from bisenet.cli import config_parser, load_config_or_exit
from bisenet.engine.trainer import evaluate_after_training, train


def main():
    parser = config_parser(__doc__)
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if available)")
    parser.add_argument("--no-eval", action="store_true", help="skip the evaluation after training")
    args = parser.parse_intermixed_args()
    cfg = load_config_or_exit(args)
    model, final = train(cfg, device=args.device)
    print(f"saved {final}")
    if not args.no_eval:
        evaluate_after_training(cfg, model, device=args.device)


if __name__ == "__main__":
    main()
