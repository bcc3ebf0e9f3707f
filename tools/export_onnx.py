"""Export to ONNX and check it in onnxruntime.

  python tools/export_onnx.py --config configs/bisenetv1_city.py --weights W.pth --out model.onnx
                              [--size 1024 2048] [--dynamic] [--argmax] [--tolerance 1e-4]

BatchNorm is folded into the convolutions first. The exported model is then run in onnxruntime
on a random image and compared with PyTorch; the tool fails if the largest difference of the
logits, relative to the largest logit (fp32 rounding gives about 1e-6), or the fraction of
differing pixels with --argmax, is above --tolerance.
"""
import sys

from bisenet.cli import config_parser, load_config_or_exit, positive_int, trained_model
from bisenet.export import check_onnx, export_onnx


def main():
    parser = config_parser(__doc__)
    parser.add_argument("--weights", help="checkpoint (default: <train.output_dir>/model_final.pth)")
    parser.add_argument("--out", required=True, help="the .onnx file to write")
    parser.add_argument("--size", type=positive_int, nargs=2, default=(1024, 2048), metavar=("H", "W"),
                        help="example input size (default: %(default)s; with --dynamic any size runs)")
    parser.add_argument("--dynamic", action="store_true", help="free batch size, height and width")
    parser.add_argument("--argmax", action="store_true", help="output the class map (int64) instead of logits")
    parser.add_argument("--opset", type=int, default=17)
    parser.add_argument("--tolerance", type=float, default=None,
                        help="largest allowed difference (default: 1e-4 of the largest logit, or 1e-4 of the pixels "
                             "for --argmax)")
    args = parser.parse_intermixed_args()
    cfg = load_config_or_exit(args)
    model = trained_model(cfg, args.weights)
    wrapper = export_onnx(model, args.out, tuple(args.size), args.dynamic, args.argmax, args.opset)
    check_size = (args.size[0] // 2 + 5, args.size[1] // 2 + 3) if args.dynamic else tuple(args.size)
    difference = check_onnx(args.out, wrapper, check_size)
    tolerance = args.tolerance if args.tolerance is not None else 1e-4
    what = "fraction of differing pixels" if args.argmax else "largest logit difference (relative)"
    print(f"wrote {args.out}; onnxruntime vs PyTorch at {check_size[0]}x{check_size[1]}: {what} {difference:.3g} "
          f"(tolerance {tolerance:g})")
    if difference > tolerance:
        sys.exit(f"error: the exported model differs from PyTorch by {difference:.3g} > {tolerance:g}")


if __name__ == "__main__":
    main()
