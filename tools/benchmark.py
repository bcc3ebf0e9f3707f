"""Benchmark a model: parameters, FLOPs, latency, FPS and peak memory, each mode's fraction of the
machine's limit, and the time from file to file.

  python tools/benchmark.py --config configs/bisenetv1_city.py [--size H W] [--mode eager fast onnx int8]
                            [--device cpu|cuda] [--threads N] [--json OUT]

The limit is an upper bound, computed first: the instruction-set peak, threads x operations per
cycle (from the CPU's flags) x the highest clock measured or reported, in fp32 for fp32 modes and
in int8 for int8 (see bisenet.benchmark.machine_limit). Matrix multiplies are measured beside it
to show what the libraries reach. int8 is calibrated on the config's training split, or on random
images (with a warning) when it is absent: the timing does not depend on the values. End to end
is the demo's work for one image: read a PNG, preprocess, infer, colour, write two PNGs.
"""
import sys

import torch
from tabulate import tabulate

from bisenet.benchmark import (
    MODES,
    benchmark,
    count_flops,
    describe_limit,
    end_to_end,
    fraction_of_limit,
    limit_for,
    machine_limit,
    runner,
)
from bisenet.cli import add_device_options, config_parser, device_of, parse_args, positive_int, run, tool_config
from bisenet.data.io import DatasetError
from bisenet.demo import Segmenter
from bisenet.inference import load_model
from bisenet.outputs import check_output_file, write_json


def _calibration(cfg, count, size):
    from bisenet.data.calibration import calibration_inputs
    from bisenet.deploy.quantize import random_calibration_inputs

    try:
        return calibration_inputs(cfg, count)
    except DatasetError as exc:
        print(f"warning: int8 calibrated on random images ({exc}); the timing holds, the accuracy would not",
              file=sys.stderr)
        return random_calibration_inputs(count, size)


def main(argv=None):
    parser = config_parser(__doc__)
    parser.add_argument("--size", type=positive_int, nargs=2, action="append", metavar=("H", "W"),
                        help="input size, repeatable (default: 512 1024 and 1024 2048)")
    parser.add_argument("--mode", nargs="+", default=["eager"], choices=MODES,
                        help="what to time: PyTorch eager fp32, the fast path, onnxruntime fp32, onnxruntime int8 "
                             "(default: eager)")
    add_device_options(parser)
    parser.add_argument("--runs", type=positive_int, default=5, help="timed runs (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs first (default: %(default)s)")
    parser.add_argument("--calib-images", type=positive_int, default=8,
                        help="int8: calibration images (default: %(default)s; accuracy needs more, speed does not)")
    parser.add_argument("--no-end-to-end", dest="end_to_end", action="store_false",
                        help="skip the file-to-file timing")
    parser.add_argument("--json", metavar="FILE", help="also write the results to this JSON file")
    args = parse_args(parser, argv)
    if args.json:
        check_output_file(args.json, "--json")
    cfg = tool_config(args)
    device = device_of(args)
    model = load_model(cfg, None)  # random weights: the timing does not depend on them
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    eval_params = sum(p.numel() for n, p in model.named_parameters()
                      if not n.startswith(tuple(f"{m}." for m in getattr(model, "aux_head_modules", ()))))
    limit = machine_limit() if device.type == "cpu" else None
    rows, records, above = [], [], []
    for size in args.size or [(512, 1024), (1024, 2048)]:
        flops = count_flops(model, size)
        calibration = _calibration(cfg, args.calib_images, size) if "int8" in args.mode else None
        for mode in args.mode:
            run_mode = runner(model, size, device, mode, calibration)  # built once: int8 calibrates
            r = benchmark(run_mode, size, device, args.warmup, args.runs)
            rate = flops / r["median_s"] / 1e9
            entry = limit_for(limit, r["dtype"]) if limit else None
            fraction = fraction_of_limit(rate, entry) if entry else None
            if entry and entry["gops"] and fraction is None:
                above.append(f"{mode} at {rate:.0f} GFLOP/s is above the {entry['dtype']} limit")
            record = {"model": cfg.model.name, "size": list(size), "mode": mode, "device": str(device),
                      "threads": torch.get_num_threads(), "parameters": params, "inference_parameters": eval_params,
                      "gflops": flops / 1e9, "fps": 1 / r["median_s"], "achieved_gflops_per_s": rate,
                      "limit_gops_per_s": entry["gops"] if entry else None,
                      "limit_kind": entry["kind"] if entry else None, "fraction_of_limit": fraction, **r}
            if args.end_to_end:
                segmenter = Segmenter(cfg, None, device, model=run_mode)
                record["end_to_end_s"] = end_to_end(segmenter, size, min(args.warmup, 1), args.runs)["median_s"]
            records.append(record)
            rows.append([f"1x3x{size[0]}x{size[1]}", f"{mode} ({r['backend']}, {r['dtype']})",
                         f"{flops / 1e9:.1f}", f"{r['median_s']:.3f}", f"{r['min_s']:.3f}-{r['max_s']:.3f}",
                         f"{1 / r['median_s']:.2f}", f"{r['peak_memory_bytes'] / 2**20:.0f}", f"{rate:.0f}",
                         f"{100 * fraction:.0f}%" if fraction is not None else "-",
                         f"{record['end_to_end_s']:.3f}" if args.end_to_end else "-"])
    print(f"{cfg.model.name}: {params:,} parameters ({eval_params:,} for inference), {device}, "
          f"{torch.get_num_threads()} threads")
    if limit:
        cpu = limit["cpu"]
        print(f"CPU: {cpu['model_name'] or 'unknown'} ({cpu['vendor'] or '?'} family {cpu['family']} model "
              f"{cpu['model']}), {', '.join(limit['cpu_features']) or 'no AVX2/AVX-512/AMX flags'}")
        for dtype in ("fp32", "int8"):
            print(describe_limit(limit[dtype]))
    print(tabulate(rows, headers=["input", "mode", "GFLOPs", "median s", "range s", "FPS", "peak MiB", "GFLOP/s",
                                  "of limit", "end to end s"], tablefmt="github"))
    for text in above:
        print(f"warning: {text}, so that limit is no bound here: a clock reported below the real one, or fewer "
              "operations done than counted (e.g. Winograd convolutions); no fraction is printed", file=sys.stderr)
    if args.json:
        write_json(args.json, {"machine_limit": limit, "results": records})
        print(f"wrote {args.json}")


if __name__ == "__main__":
    run(main)
