"""Export to ONNX and check it in onnxruntime.

  python tools/export_onnx.py --config configs/bisenetv1_city.py --weights W.pth --out model.onnx
                              [--size 1024 2048] [--dynamic] [--argmax] [--tolerance 1e-4]
  python tools/export_onnx.py ... --out model_int8.onnx --int8 [--calib-images 32]

BatchNorm is folded into the convolutions first. The exported model is then run in onnxruntime
on a random image and compared with PyTorch; the tool fails if the largest difference of the
logits, relative to the largest logit (fp32 rounding gives about 1e-6), or the fraction of
differing pixels with --argmax, is above --tolerance.

--int8 writes a statically quantised model instead (QDQ, int8 weights per channel, activations
calibrated on --calib-images images of the config's training split; the classifier and the final
upsampling stay in fp32; any input size). It is checked on the calibration images: the fraction
of pixels whose class differs from PyTorch's must be at most --tolerance (default 0.01 then).
"""
import numpy as np
import torch

from bisenet.cli import export_parser, parse_args, positive_int, resolve_weights, run, tool_config
from bisenet.deploy.export import export_onnx
from bisenet.deploy.runtime import check_onnx, onnx_session
from bisenet.errors import UserError
from bisenet.inference import load_model


def _int8_disagreement(path, model, images):
    """The fraction of pixels of ``images`` whose class differs between PyTorch and the model."""
    session = onnx_session(path)
    differ = total = 0
    for image in images:
        with torch.no_grad():
            expected = model(torch.from_numpy(image)).argmax(1).numpy()
        got = session.run(None, {"image": image})[0].argmax(1)
        differ, total = differ + int(np.sum(got != expected)), total + expected.size
    return differ / total


def main(argv=None):
    parser = export_parser(__doc__, "the .onnx file to write", (1024, 2048), "with --dynamic any size runs")
    parser.add_argument("--dynamic", action="store_true", help="free batch size, height and width")
    parser.add_argument("--argmax", action="store_true", help="output the class map (int64) instead of logits")
    parser.add_argument("--opset", type=positive_int, default=17, help="ONNX opset version (default: %(default)s)")
    parser.add_argument("--int8", action="store_true", help="quantise to int8, calibrated on the training split")
    parser.add_argument("--calib-images", type=positive_int, default=32,
                        help="--int8: training images to calibrate on (default: %(default)s)")
    parser.add_argument("--tolerance", type=float, default=None,
                        help="largest allowed difference (default: 1e-4 of the largest logit; the fraction of "
                             "pixels for --argmax (1e-4) and --int8 (0.01))")
    args = parse_args(parser, argv)
    cfg = tool_config(args)
    model = load_model(cfg, resolve_weights(cfg, args.weights))
    if args.int8:
        from bisenet.deploy.quantize import calibration_inputs, count_quantized, quantize_int8

        if args.argmax:
            raise UserError("--int8 writes logits (the classifier stays fp32); take the argmax after it, or drop "
                            "--argmax")
        tolerance = 0.01 if args.tolerance is None else args.tolerance
        images = calibration_inputs(cfg, args.calib_images)
        quantized, kept = count_quantized(quantize_int8(model, images, args.out))
        difference = _int8_disagreement(args.out, model, images[:4])
        print(f"wrote {args.out}: {quantized} convolutions in int8, {kept} in fp32, calibrated on {len(images)} "
              f"images; pixels whose class differs from PyTorch's: {100 * difference:.2f}% "
              f"(tolerance {100 * tolerance:g}%)")
    else:
        tolerance = 1e-4 if args.tolerance is None else args.tolerance
        wrapper = export_onnx(model, args.out, tuple(args.size), args.dynamic, args.argmax, args.opset)
        check_size = (args.size[0] // 2 + 5, args.size[1] // 2 + 3) if args.dynamic else tuple(args.size)
        difference = check_onnx(args.out, wrapper, check_size)
        what = "fraction of differing pixels" if args.argmax else "largest logit difference (relative)"
        print(f"wrote {args.out}; onnxruntime vs PyTorch at {check_size[0]}x{check_size[1]}: {what} "
              f"{difference:.3g} (tolerance {tolerance:g})")
    if difference > tolerance:
        raise UserError(f"the exported model differs from PyTorch by {difference:.3g} > {tolerance:g}")


if __name__ == "__main__":
    run(main)
