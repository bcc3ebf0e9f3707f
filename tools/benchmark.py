"""Benchmark a model: parameters, FLOPs, latency, FPS and peak memory.

  python tools/benchmark.py --config configs/bisenetv1_city.py [--size H W] [--mode eager|fast|onnx]
                            [--device cpu|cuda] [--threads N] [--json OUT]
"""
import json

import torch
from tabulate import tabulate

from bisenet.benchmark import benchmark, count_flops
from bisenet.cli import add_device_options, config_parser, device_of, parse_args, positive_int, run, tool_config
from bisenet.inference import load_model


def main(argv=None):
    parser = config_parser(__doc__)
    parser.add_argument("--size", type=positive_int, nargs=2, action="append", metavar=("H", "W"),
                        help="input size, repeatable (default: 512 1024 and 1024 2048)")
    parser.add_argument("--mode", nargs="+", default=["eager"], choices=["eager", "fast", "onnx"],
                        help="what to time: PyTorch eager fp32, the fast path, onnxruntime (default: eager)")
    add_device_options(parser)
    parser.add_argument("--runs", type=positive_int, default=5, help="timed runs (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs first (default: %(default)s)")
    parser.add_argument("--json", metavar="FILE", help="also write the results to this JSON file")
    args = parse_args(parser, argv)
    cfg = tool_config(args)
    device = device_of(args)
    model = load_model(cfg, None)  # random weights: the timing does not depend on them
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    eval_params = sum(p.numel() for n, p in model.named_parameters()
                      if not n.startswith(tuple(f"{m}." for m in getattr(model, "aux_head_modules", ()))))
    rows, records = [], []
    for size in args.size or [(512, 1024), (1024, 2048)]:
        flops = count_flops(model, size)
        for mode in args.mode:
            r = benchmark(model, size, device, mode, args.warmup, args.runs)
            record = {"model": cfg.model.name, "size": list(size), "mode": mode, "device": str(device),
                      "threads": torch.get_num_threads(), "parameters": params, "inference_parameters": eval_params,
                      "gflops": flops / 1e9, "fps": 1 / r["median_s"], **r}
            records.append(record)
            backend = f" ({r['backend']}, {r['dtype']})" if "dtype" in r else ""
            rows.append([f"1x3x{size[0]}x{size[1]}", mode + backend,
                         f"{flops / 1e9:.1f}", f"{r['median_s']:.3f}", f"{r['min_s']:.3f}-{r['max_s']:.3f}",
                         f"{1 / r['median_s']:.2f}", f"{r['peak_memory_bytes'] / 2**20:.0f}",
                         f"{flops / r['median_s'] / 1e9:.0f}"])
    print(f"{cfg.model.name}: {params:,} parameters ({eval_params:,} for inference), {device}, "
          f"{torch.get_num_threads()} threads")
    print(tabulate(rows, headers=["input", "mode", "GFLOPs", "median s", "range s", "FPS", "peak MiB", "GFLOP/s"],
                   tablefmt="github"))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(records, f, indent=2)


if __name__ == "__main__":
    run(main)
