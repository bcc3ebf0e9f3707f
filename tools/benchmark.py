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
from bisenet.benchmark import DEFAULT_SIZES, MODES, run_benchmark
from bisenet.cli import add_device_options, config_parser, device_of, parse_args, positive_int, run, tool_config


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
    run_benchmark(tool_config(args), device_of(args), [tuple(size) for size in args.size or DEFAULT_SIZES], args.mode,
                  args.runs, args.warmup, args.calib_images, args.end_to_end, args.json)


if __name__ == "__main__":
    run(main)
