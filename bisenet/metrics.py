"""Confusion matrix and the scores derived from it."""
import numpy as np
import torch

from bisenet import distributed


def confusion_matrix(pred, label, num_classes, ignore_index=255):
    """int64 (num_classes x num_classes) counts, rows = ground truth, columns = prediction.

    Runs on the tensors' device with one bincount. Labels must be class ids or ``ignore_index``
    (the dataset checks this when it reads them).
    """
    if ignore_index < num_classes:
        keep = label != ignore_index
        label, pred = label[keep], pred[keep]
    # Without boolean masking: an ignore label (>= num_classes) lands past the first
    # num_classes**2 bins, which are all that is kept. The narrowest index type that holds
    # label * num_classes + pred keeps the memory traffic, and so the time, down.
    largest = max(int(ignore_index), num_classes) * num_classes + num_classes
    dtype = torch.int16 if largest < 2**15 else torch.int32 if largest < 2**31 else torch.int64
    index = label.to(dtype, copy=True).mul_(num_classes).add_(pred.to(dtype))
    counts = torch.bincount(index.flatten(), minlength=num_classes * num_classes)
    return counts[: num_classes * num_classes].view(num_classes, num_classes).long()


class ConfusionMatrix:
    """Accumulates counts over batches (and, with ``reduce``, over processes)."""

    def __init__(self, num_classes, ignore_index=255, device="cpu"):
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.counts = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)

    def update(self, pred, label):
        self.counts += confusion_matrix(pred.to(self.counts.device), label.to(self.counts.device),
                                        self.num_classes, self.ignore_index)

    def reduce(self):
        distributed.all_reduce_sum(self.counts)
        return self


def scores(counts):
    """Per-class IoU, accuracy and F1, and their summaries, from a confusion matrix.

    IoU = TP / (TP + FP + FN), F1 = 2 TP / (2 TP + FP + FN). A class absent from both ground
    truth and prediction has IoU and F1 NaN (accuracy NaN when absent from the ground truth) and
    is left out of the means. fwIoU weighs each class's IoU by its share of the ground-truth
    pixels, as the reference implementation reports it.
    """
    counts = np.asarray(counts.cpu() if torch.is_tensor(counts) else counts, dtype=np.float64)
    tp = np.diag(counts)
    gt = counts.sum(axis=1)
    predicted = counts.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = tp / (gt + predicted - tp)
        acc = tp / gt
        f1 = 2 * tp / (gt + predicted)
        overall = tp.sum() / counts.sum()
        frequency = gt / gt.sum()
    return {
        "iou": iou,
        "acc": acc,
        "f1": f1,
        "miou": _nanmean(iou),
        "macc": _nanmean(acc),
        "mf1": _nanmean(f1),
        "fwiou": float(np.nansum(frequency[gt > 0] * iou[gt > 0])) if gt.sum() > 0 else float("nan"),
        "aacc": float(overall),
    }


def _nanmean(values):
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
