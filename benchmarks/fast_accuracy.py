"""Accuracy of the fast inference paths against the fp32 eager model on a validation split.

  python benchmarks/fast_accuracy.py --config configs/bisenetv1_synthetic.py [--weights W.pth]

Reports, for the fast path (make_fast: onnxruntime on the CPU) and for a bf16 FastModel, the
fraction of pixels whose class agrees with the eager fp32 prediction, and the mIoU of each.
"""
import torch
from tabulate import tabulate

import bisenet
from bisenet.cli import config_parser, default_weights, load_config_or_exit
from bisenet.data import build_eval_loader
from bisenet.deploy import FastModel, make_fast
from bisenet.inference import predict
from bisenet.metrics import ConfusionMatrix, scores


def main():
    parser = config_parser(__doc__)
    parser.add_argument("--weights")
    args = parser.parse_intermixed_args()
    cfg = load_config_or_exit(args)
    model = bisenet.build_model(cfg)
    bisenet.load_weights(model, default_weights(cfg, args.weights))
    model.eval()
    variants = {"eager fp32": model, "fast (make_fast)": make_fast(model, "cpu"),
                "bf16 FastModel": FastModel(model, torch.bfloat16)}
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
    main()
