"""Accuracy of the fast inference paths against the fp32 eager model on a validation split.

  python benchmarks/fast_accuracy.py --config configs/bisenetv1_synthetic.py [--weights W.pth]

Reports, for the fast path (make_fast: onnxruntime on the CPU), a bf16 FastModel and int8
(with the layers that ``bisenet.deploy.quantize.KEEP_FP32`` keeps in fp32, and with fewer or none
kept), the fraction of pixels whose class agrees with the eager fp32 prediction, and the mIoU of
each. int8 is calibrated on --calib-images images of the training split.
"""
import torch
from tabulate import tabulate

from bisenet.cli import add_weights_option, config_parser, parse_args, positive_int, resolve_weights, run, tool_config
from bisenet.data.calibration import calibration_inputs
from bisenet.data.loaders import build_eval_loader
from bisenet.deploy.quantize import KEEP_FP32, quantize_int8
from bisenet.deploy.runtime import OnnxRuntimeModel
from bisenet.inference import load_model, predict
from bisenet.metrics import ConfusionMatrix, scores


def main(argv=None):
    parser = config_parser(__doc__)
    add_weights_option(parser)
    parser.add_argument("--calib-images", type=positive_int, default=32, help="int8 calibration images")
    args = parse_args(parser, argv)
    cfg = tool_config(args)
    weights = resolve_weights(cfg, args.weights)
    eager = load_model(cfg, weights)
    variants = {"eager fp32": eager, "fast (make_fast)": load_model(cfg, weights, fast=True),
                "bf16 FastModel": load_model(cfg, weights, fast=True, precision="bf16")}
    calibration = calibration_inputs(cfg, args.calib_images)
    for keep in (KEEP_FP32, ("upsample",), ()):
        name = f"int8, fp32: {' + '.join(keep) or 'nothing'}"
        variants[name] = OnnxRuntimeModel(quantize_int8(eager, calibration, keep_fp32=keep))
    matrices = {name: ConfusionMatrix(cfg.model.num_classes, cfg.data.ignore_index) for name in variants}
    agree = {name: 0 for name in variants}
    pixels = 0
    with torch.no_grad():
        for batch in build_eval_loader(cfg):
            preds = {name: predict(m, batch["image"], cfg.model.num_classes, protocol=cfg.eval.protocol)
                     for name, m in variants.items()}
            pixels += preds["eager fp32"].numel()
            for name, pred in preds.items():
                agree[name] += int((pred == preds["eager fp32"]).sum())
                matrices[name].update(pred, batch["label"])
    rows = [[name, f"{100 * agree[name] / pixels:.3f}", f"{100 * scores(matrices[name].counts)['miou']:.2f}"]
            for name in variants]
    print(tabulate(rows, headers=["model", "agreement with eager fp32 (%)", "mIoU (%)"], tablefmt="github"))


if __name__ == "__main__":
    run(main)
