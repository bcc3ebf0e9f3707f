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
from bisenet import commands
from bisenet.cli import (
    export_parser,
    non_negative_float,
    parse_args,
    positive_int,
    run,
    tool_command,
    tool_config,
)
from bisenet.deploy.export import supported_opsets
from bisenet.deploy.verify import OnnxOptions


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
    options = OnnxOptions(tuple(args.size), args.dynamic, args.argmax, args.opset, args.int8, args.calib_images,
                          args.tolerance)
    commands.export_onnx(tool_config(args), args.weights, args.out, options, tool_command(__file__, args))


if __name__ == "__main__":
    run(main)
