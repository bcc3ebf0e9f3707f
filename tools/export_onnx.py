"""Export to ONNX and check it in onnxruntime.

  python tools/export_onnx.py --config configs/bisenetv1_city.py --weights W.pth --out model.onnx
                              [--size 1024 2048] [--dynamic] [--argmax] [--tolerance 1e-4]

BatchNorm is folded into the convolutions first. The exported model is then run in onnxruntime
on a random image and compared with PyTorch; the tool fails if the largest difference of the
logits, relative to the largest logit (fp32 rounding gives about 1e-6), or the fraction of
differing pixels with --argmax, is above --tolerance.
"""
from bisenet.cli import export_parser, parse_args, positive_int, resolve_weights, run, tool_config
from bisenet.deploy.export import export_onnx
from bisenet.deploy.runtime import check_onnx
from bisenet.errors import UserError
from bisenet.inference import load_model


def main(argv=None):
    parser = export_parser(__doc__, "the .onnx file to write", (1024, 2048), "with --dynamic any size runs")
    parser.add_argument("--dynamic", action="store_true", help="free batch size, height and width")
    parser.add_argument("--argmax", action="store_true", help="output the class map (int64) instead of logits")
    parser.add_argument("--opset", type=positive_int, default=17, help="ONNX opset version (default: %(default)s)")
    parser.add_argument("--tolerance", type=float, default=1e-4,
                        help="largest allowed difference (default: %(default)s of the largest logit, or of the "
                             "pixels for --argmax)")
    args = parse_args(parser, argv)
    cfg = tool_config(args)
    model = load_model(cfg, resolve_weights(cfg, args.weights))
    wrapper = export_onnx(model, args.out, tuple(args.size), args.dynamic, args.argmax, args.opset)
    check_size = (args.size[0] // 2 + 5, args.size[1] // 2 + 3) if args.dynamic else tuple(args.size)
    difference = check_onnx(args.out, wrapper, check_size)
    what = "fraction of differing pixels" if args.argmax else "largest logit difference (relative)"
    print(f"wrote {args.out}; onnxruntime vs PyTorch at {check_size[0]}x{check_size[1]}: {what} {difference:.3g} "
          f"(tolerance {args.tolerance:g})")
    if difference > args.tolerance:
        raise UserError(f"the exported model differs from PyTorch by {difference:.3g} > {args.tolerance:g}")


if __name__ == "__main__":
    run(main)
