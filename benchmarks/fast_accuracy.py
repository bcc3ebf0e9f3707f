"""Accuracy of the fast inference paths against the fp32 eager model on a validation split.

  python benchmarks/fast_accuracy.py --config configs/bisenetv1_synthetic.py [--weights W.pth]

Reports, for the fast path (make_fast: onnxruntime on the CPU) and for a bf16 FastModel, the
fraction of pixels whose class agrees with the eager fp32 prediction, and the mIoU of each.
"""
import torch
from tabulate import tabulate

from bisenet.cli import add_weights_option, config_parser, parse_args, resolve_weights, run, tool_config
from bisenet.data import build_eval_loader
from bisenet.inference import load_model, predict
from bisenet.metrics import ConfusionMatrix, scores


def main(argv=None):
    parser = config_parser(__doc__)
    add_weights_option(parser)
    args = parse_args(parser, argv)
    cfg = tool_config(args)
    weights = resolve_weights(cfg, args.weights)
    variants = {"eager fp32": load_model(cfg, weights), "fast (make_fast)": load_model(cfg, weights, fast=True),
                "bf16 FastModel": load_model(cfg, weights, fast=True, precision="bf16")}
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
