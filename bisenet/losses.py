"""Online hard example mining (OHEM) cross-entropy, as in the BiSeNet papers' training recipe, and plain
cross-entropy; both optionally with label smoothing."""
import math

import torch.nn as nn
import torch.nn.functional as F


class OhemCrossEntropy(nn.Module):
    """Mean cross-entropy over the hard pixels: those whose loss exceeds ``-ln(thresh)`` (the
    predicted probability of the true class is below ``thresh``), or the ``min_fraction`` of valid
    pixels with the highest loss if fewer are hard. A batch with no valid pixel gives a zero loss
    (with a graph, so backward still works) instead of NaN.

    With ``label_smoothing`` the hard pixels are still those of the unsmoothed loss (the threshold
    is a probability of the true class); the mean is of their smoothed loss."""

    def __init__(self, thresh=0.7, min_fraction=1.0 / 16, ignore_index=255, label_smoothing=0.0):
        super().__init__()
        self.loss_thresh = -math.log(thresh)
        self.min_fraction = min_fraction
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing

    def forward(self, logits, labels):
        # fp32 for the loss even under autocast: fp16 log-softmax loses the small losses OHEM ranks.
        logits = logits.float()
        loss = F.cross_entropy(logits, labels, ignore_index=self.ignore_index, reduction="none").flatten()
        valid = (labels != self.ignore_index).flatten()
        num_valid = int(valid.sum())  # a host sync, as in any OHEM
        if num_valid == 0:
            return loss.sum() * 0.0
        num_min = max(int(num_valid * self.min_fraction), 1)
        hard = (loss > self.loss_thresh).nonzero().squeeze(1)  # an ignored pixel's loss is 0: never hard
        if hard.numel() < num_min:
            # Ignored pixels ranked last, so that ties at a zero loss never choose one.
            hard = loss.masked_fill(~valid, -1.0).topk(num_min).indices
        if self.label_smoothing:
            loss = F.cross_entropy(logits, labels, ignore_index=self.ignore_index, reduction="none",
                                   label_smoothing=self.label_smoothing).flatten()
        return loss[hard].mean()


class CrossEntropy(nn.Module):
    """Plain mean cross-entropy over the valid pixels (zero, with a graph, when there is none),
    optionally against label-smoothed targets."""

    def __init__(self, ignore_index=255, label_smoothing=0.0):
        super().__init__()
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing

    def forward(self, logits, labels):
        loss = F.cross_entropy(logits.float(), labels, ignore_index=self.ignore_index, reduction="sum",
                               label_smoothing=self.label_smoothing)
        return loss / (labels != self.ignore_index).sum().clamp(min=1)


LOSSES = {"ohem": "OHEM cross-entropy (train.ohem_thresh, train.ohem_min_fraction)", "cross_entropy": "cross-entropy"}


def build_loss(train_cfg, ignore_index):
    """The loss of ``train.loss``, applied to the main and every auxiliary output."""
    if train_cfg.loss == "ohem":
        return OhemCrossEntropy(train_cfg.ohem_thresh, train_cfg.ohem_min_fraction, ignore_index,
                                train_cfg.label_smoothing)
    return CrossEntropy(ignore_index, train_cfg.label_smoothing)
