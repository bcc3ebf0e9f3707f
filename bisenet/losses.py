"""Online hard example mining (OHEM) cross-entropy, as in the BiSeNet papers' training recipe."""
import math

import torch.nn as nn
import torch.nn.functional as F


class OhemCrossEntropy(nn.Module):
    """Mean cross-entropy over the hard pixels: those whose loss exceeds ``-ln(thresh)`` (the
    predicted probability of the true class is below ``thresh``), or the ``min_fraction`` of valid
    pixels with the highest loss if fewer are hard. A batch with no valid pixel gives a zero loss
    (with a graph, so backward still works) instead of NaN."""

    def __init__(self, thresh=0.7, min_fraction=1.0 / 16, ignore_index=255):
        super().__init__()
        self.loss_thresh = -math.log(thresh)
        self.min_fraction = min_fraction
        self.ignore_index = ignore_index

    def forward(self, logits, labels):
        # fp32 for the loss even under autocast: fp16 log-softmax loses the small losses OHEM ranks.
        loss = F.cross_entropy(logits.float(), labels, ignore_index=self.ignore_index, reduction="none").flatten()
        num_valid = int((labels != self.ignore_index).sum())  # a host sync, as in any OHEM
        if num_valid == 0:
            return loss.sum() * 0.0
        num_min = max(int(num_valid * self.min_fraction), 1)
        hard = loss[loss > self.loss_thresh]
        if hard.numel() < num_min:
            hard, _ = loss.topk(num_min)
        return hard.mean()


class CrossEntropy(nn.Module):
    """Plain mean cross-entropy over the valid pixels (zero, with a graph, when there is none)."""

    def __init__(self, ignore_index=255):
        super().__init__()
        self.ignore_index = ignore_index

    def forward(self, logits, labels):
        loss = F.cross_entropy(logits.float(), labels, ignore_index=self.ignore_index, reduction="sum")
        return loss / (labels != self.ignore_index).sum().clamp(min=1)


LOSSES = {"ohem": "OHEM cross-entropy (train.ohem_thresh, train.ohem_min_fraction)", "cross_entropy": "cross-entropy"}


def build_loss(train_cfg, ignore_index):
    """The loss of ``train.loss``, applied to the main and every auxiliary output."""
    if train_cfg.loss == "ohem":
        return OhemCrossEntropy(train_cfg.ohem_thresh, train_cfg.ohem_min_fraction, ignore_index)
    return CrossEntropy(ignore_index)
