"""Export to ONNX and check it in onnxruntime.

  python tools/export_onnx.py --config configs/bisenetv1_city.py --weights W.pth --out model.onnx
                              [--size 1024 2048] [--dynamic] [--argmax] [--tolerance 1e-4]
  python tools/export_onnx.py ... --out model_int8.onnx --int8 [--calib-images 32]

BatchNorm is folded into the convolutions first. The exported model is then run in onnxruntime
on a random image and compared with PyTorch; the tool fails, and writes nothing, if the largest
difference of the logits, relative to the largest logit (fp32 rounding gives about 1e-6), or the
fraction of differing pixels with --argmax, is above --tolerance. --out is written only once the
model has passed.

--int8 writes a statically quantised model instead (QDQ, int8 weights per channel, activations
calibrated on --calib-images images of the config's training split; the classifier and the final
upsampling stay in fp32; any input size). It is checked on the calibration images: the fraction
of pixels whose class differs from PyTorch's must be at most --tolerance (default 0.01 then).
"""
import io

import numpy as np
import torch

from bisenet.cli import (
    export_parser,
    non_negative_float,
    parse_args,
    positive_int,
    resolve_weights,
    run,
    tool_command,
    tool_config,
)
from bisenet.deploy.export import check_opset, export_onnx, supported_opsets
from bisenet.deploy.runtime import check_onnx, onnx_session
from bisenet.errors import UserError
from bisenet.inference import load_model
from bisenet.outputs import check_output_file, write_bytes


def _int8_disagreement(model_bytes, model, images):
    """The fraction of pixels of ``images`` whose class differs between PyTorch and the model."""
    session = onnx_session(model_bytes)
    differ = total = 0
    for image in images:
        with torch.no_grad():
            expected = model(torch.from_numpy(image)).argmax(1).numpy()
        got = session.run(None, {"image": image})[0].argmax(1)
        differ, total = differ + int(np.sum(got != expected)), total + expected.size
    return differ / total


def main(argv=None):
    parser = export_parser(__doc__, "the .onnx file to write", (1024, 2048), "with --dynamic any size runs",
                           overrides_example="data.root=/data/cityscapes (the images --int8 calibrates on)")
    parser.add_argument("--dynamic", action="store_true", help="free batch size, height and width")
    parser.add_argument("--argmax", action="store_true", help="output the class map (int64) instead of logits")
    opsets = supported_opsets()
    parser.add_argument("--opset", type=int, default=None,
                        help=f"ONNX opset version, {opsets[0]} to {opsets[-1]} with this torch (default: 17; --int8 "
                             "always exports at 17)")
    parser.add_argument("--int8", action="store_true", help="quantise to int8, calibrated on the training split")
    parser.add_argument("--calib-images", type=positive_int, default=32,
                        help="--int8: training images to calibrate on (default: %(default)s)")
    parser.add_argument("--tolerance", type=non_negative_float, default=None,
                        help="largest allowed difference (default: 1e-4 of the largest logit; the fraction of "
                             "pixels for --argmax (1e-4) and --int8 (0.01))")
    args = parse_args(parser, argv)
    cfg = tool_config(args)
    if args.int8 and args.argmax:
        raise UserError("--int8 writes logits (the classifier stays fp32); take the argmax after it, or drop --argmax")
    if args.int8 and args.opset is not None:
        raise UserError("--int8 exports at opset 17, the one its quantisation was measured at: drop --opset")
    opset = check_opset(17 if args.opset is None else args.opset)
    check_output_file(args.out, "--out")
    model = load_model(cfg, resolve_weights(cfg, args.weights, tool_command(__file__, args)))
    if args.int8:
        from bisenet.data.calibration import calibration_inputs
        from bisenet.deploy.quantize import count_quantized, quantize_int8

        tolerance = 0.01 if args.tolerance is None else args.tolerance
        images = calibration_inputs(cfg, args.calib_images, otherwise="export in fp32 (without --int8)")
        data = quantize_int8(model, images)
        quantized, kept = count_quantized(data)
        difference = _int8_disagreement(data, model, images[:4])
        summary = (f"{quantized} convolutions in int8, {kept} in fp32, calibrated on {len(images)} images; pixels "
                   f"whose class differs from PyTorch's: {100 * difference:.2f}% (tolerance {100 * tolerance:g}%)")
    else:
        tolerance = 1e-4 if args.tolerance is None else args.tolerance
        buffer = io.BytesIO()
        wrapper = export_onnx(model, buffer, tuple(args.size), args.dynamic, args.argmax, opset)
        data = buffer.getvalue()
        check_size = (args.size[0] // 2 + 5, args.size[1] // 2 + 3) if args.dynamic else tuple(args.size)
        difference = check_onnx(data, wrapper, check_size)
        what = "fraction of differing pixels" if args.argmax else "largest logit difference (relative)"
        summary = (f"onnxruntime vs PyTorch at {check_size[0]}x{check_size[1]}: {what} {difference:.3g} "
                   f"(tolerance {tolerance:g})")
    if not difference <= tolerance:  # NaN fails too
        raise UserError(f"the exported model differs from PyTorch by more than the tolerance, so {args.out} was not "
                        f"written: {summary}")
    write_bytes(args.out, data)
    print(f"wrote {args.out}: {summary}")


if __name__ == "__main__":
    run(main)
