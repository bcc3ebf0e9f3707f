"""Forward-pass latency: python tools/benchmark.py --config configs/bisenetv1_city.py [--size H W] [--threads N]"""
import torch
from tabulate import tabulate

from bisenet import distributed
from bisenet.benchmark import measure_latency
from bisenet.cli import config_parser, load_config_or_exit
from bisenet.models import build_model


def main():
    parser = config_parser(__doc__)
    parser.add_argument("--size", type=int, nargs=2, action="append", metavar=("H", "W"),
                        help="input size, repeatable (default: 512 1024 and 1024 2048)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_intermixed_args()
    cfg = load_config_or_exit(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = distributed.resolve_device(args.device)
    model = build_model(cfg)
    params = sum(p.numel() for p in model.parameters())
    rows = []
    for size in args.size or [(512, 1024), (1024, 2048)]:
        r = measure_latency(model, size, device, args.warmup, args.runs)
        rows.append([f"1x3x{size[0]}x{size[1]}", f"{r['median_s']:.3f}", f"{r['min_s']:.3f}-{r['max_s']:.3f}",
                     f"{1 / r['median_s']:.2f}"])
    print(f"{cfg.model.name}: {params:,} parameters, {device}, {torch.get_num_threads()} threads, fp32 eval")
    print(tabulate(rows, headers=["input", "median s", "range s", "FPS"], tablefmt="github"))


if __name__ == "__main__":
    main()
