"""Evaluate a BiSeNet model: python tools/evaluate.py --config ... --weights W.pth [KEY=VALUE ...]"""
import bisenet
from bisenet.cli import config_parser, default_weights, load_config_or_exit
from bisenet.data import build_eval_loader
from bisenet.data.cityscapes import CLASS_NAMES
from bisenet.engine.evaluator import evaluate, format_scores
from bisenet.engine.trainer import resolve_device


def main():
    parser = config_parser(__doc__)
    parser.add_argument("--weights", help="checkpoint (default: <train.output_dir>/model_final.pth)")
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if available)")
    args = parser.parse_intermixed_args()
    cfg = load_config_or_exit(args)
    device = resolve_device(args.device)
    model = bisenet.build_model(cfg)
    bisenet.load_weights(model, default_weights(cfg, args.weights))
    model.to(device)
    result = evaluate(model, build_eval_loader(cfg), cfg.model.num_classes, device, cfg.data.ignore_index)
    print(format_scores(result, CLASS_NAMES[: cfg.model.num_classes]))


if __name__ == "__main__":
    main()
