"""Evaluation loop: a loader of (image, label) -> confusion matrix -> scores."""
import numpy as np
import torch
from tabulate import tabulate
from tqdm import tqdm

from bisenet import distributed
from bisenet.inference import predict
from bisenet.metrics import ConfusionMatrix, scores


@torch.no_grad()
def evaluate(model, loader, num_classes, device, ignore_index=255, scales=(1.0,), flip=False,
             crop_size=None, crop_stride=None, progress=True):
    """Scores of ``model`` over ``loader`` (summed over processes when distributed)."""
    was_training = model.training
    model.eval()
    matrix = ConfusionMatrix(num_classes, ignore_index, device)
    for batch in tqdm(loader, desc="evaluate", disable=not (progress and distributed.is_main_process())):
        images = batch["image"].to(device, non_blocking=True)
        labels = batch["label"].to(device, non_blocking=True)
        pred = predict(model, images, num_classes, out_size=labels.shape[-2:], scales=scales, flip=flip,
                       crop_size=crop_size, crop_stride=crop_stride)
        matrix.update(pred, labels)
    model.train(was_training)
    result = scores(matrix.reduce().counts)
    result["confusion_matrix"] = matrix.counts.cpu()
    return result


def format_scores(result, class_names):
    """A per-class table followed by the means, as text."""
    rows = [[name, _pct(iou), _pct(acc)] for name, iou, acc in zip(class_names, result["iou"], result["acc"])]
    table = tabulate(rows, headers=["class", "IoU", "Acc"], tablefmt="github", floatfmt=".2f")
    summary = tabulate([[_pct(result["miou"]), _pct(result["macc"]), _pct(result["aacc"])]],
                       headers=["mIoU", "mAcc", "aAcc"], tablefmt="github", floatfmt=".2f")
    return f"{table}\n\n{summary}"


def _pct(value):
    return float("nan") if not np.isfinite(value) else 100.0 * float(value)
