"""Evaluate a BiSeNet model (mIoU, per-class table).

  python tools/evaluate.py --config configs/bisenetv1_city.py --weights W.pth [--msc] [--flip] [--crop]
                            [--fast] [--precision int8 [--calib-images 32]] [--json FILE] [--plots DIR]
  python tools/evaluate.py --weights coincheung/bisenetv1_city --modes all     (published weights by name)
  torchrun --nproc_per_node=N tools/evaluate.py ...   (same result, the images shared out)
"""
from bisenet import commands
from bisenet.cli import (
    inference_parser,
    parse_args,
    positive_float,
    positive_int,
    run,
    runtime_of,
    tool_command,
    tool_config,
)
from bisenet.engine.evaluator import EvalOutputs, ModeChoice


def main(argv=None):
    parser = inference_parser(__doc__, overrides_example="eval.batch_size=1 data.root=/data/cityscapes")
    parser.add_argument("--msc", action="store_true", help="multi-scale: the config's eval.scales unless --scales")
    parser.add_argument("--flip", action="store_true", help="add horizontally flipped predictions")
    parser.add_argument("--crop", action="store_true", help="sliding-window crops of eval.crop_size")
    parser.add_argument("--scales", type=positive_float, nargs="+",
                        help="scales to use (implies --msc; with --modes, those of its multi-scale modes)")
    parser.add_argument("--crop-size", type=positive_int, nargs=2, metavar=("H", "W"),
                        help="crop size (implies --crop; with --modes, that of its crop modes)")
    parser.add_argument("--crop-stride", type=positive_int, nargs=2, metavar=("H", "W"),
                        help="crop stride, at most the crop size (default: 2/3 of it; implies --crop; with --modes, "
                             "that of its crop modes)")
    parser.add_argument("--modes", metavar="M1,M2,...",
                        help="several modes in one run, named as in the reference's table: ss,ssc,msf,mscf (or all "
                             "for those four), with the config's eval.scales and eval.crop_size unless --scales, "
                             "--crop-size")
    parser.add_argument("--save-pred", metavar="DIR",
                        help="write predictions as labelIds PNGs (DIR/labelIds, official format) and colour PNGs "
                             "(DIR/color); with several --modes, each mode's in DIR/<mode>/")
    parser.add_argument("--json", metavar="FILE", help="also write the scores to this JSON file")
    parser.add_argument("--plots", metavar="DIR",
                        help="also draw each mode's confusion matrix and per-class IoU, and the first mode against "
                             "the others, as PNGs in DIR (needs matplotlib)")
    parser.add_argument("--ema", action="store_true",
                        help="the EMA weights (model_ema) of a run trained with train.ema_decay, not its weights")
    args = parse_args(parser, argv)
    choice = ModeChoice(args.modes, args.msc, args.flip, args.crop, args.scales, args.crop_size, args.crop_stride)
    commands.evaluate(tool_config(args), args.weights, choice, EvalOutputs(args.save_pred, args.json, args.plots),
                      args.device, runtime_of(args), args.ema, tool_command(__file__, args))


if __name__ == "__main__":
    run(main)
