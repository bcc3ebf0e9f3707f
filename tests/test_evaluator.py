import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from bisenet.engine.evaluator import evaluate, format_scores


class FixedPrediction(nn.Module):
    """Returns one-hot logits of a fixed class map, whatever the input (batch of 1)."""

    def __init__(self, pred, num_classes):
        super().__init__()
        self.register_buffer("logits", F.one_hot(pred, num_classes).permute(2, 0, 1)[None].float() * 10)

    def forward(self, x):
        return self.logits.expand(x.shape[0], -1, -1, -1)


def test_evaluate_known_prediction_gives_hand_computed_miou():
    # 2x4 image, 3 classes. Ground truth / prediction:
    #   gt   0 0 1 255      pred 0 1 1 2
    #        2 2 1 1             2 0 1 1
    label = torch.tensor([[0, 0, 1, 255], [2, 2, 1, 1]])
    pred = torch.tensor([[0, 1, 1, 2], [2, 0, 1, 1]])
    # class 0: TP 1, FP 1 (gt 2 -> 0), FN 1 (gt 0 -> 1): IoU 1/3
    # class 1: TP 3, FP 1 (gt 0 -> 1), FN 0: IoU 3/4
    # class 2: TP 1, FP 0 (the ignore pixel does not count), FN 1: IoU 1/2
    loader = [{"image": torch.zeros(1, 3, 2, 4), "label": label[None]}]
    result = evaluate(FixedPrediction(pred, 3), loader, 3, "cpu", progress=False)
    assert np.allclose(result["iou"], [1 / 3, 3 / 4, 1 / 2])
    assert math.isclose(result["miou"], (1 / 3 + 3 / 4 + 1 / 2) / 3)
    assert math.isclose(result["aacc"], 5 / 7)
    assert result["confusion_matrix"].tolist() == [[1, 1, 0], [0, 3, 0], [1, 0, 1]]
    assert "mIoU" in format_scores(result, ["a", "b", "c"])


def test_absent_class_is_left_out_of_the_mean():
    label = torch.tensor([[0, 0], [1, 1]])
    pred = torch.tensor([[0, 0], [1, 0]])
    loader = [{"image": torch.zeros(1, 3, 2, 2), "label": label[None]}]
    result = evaluate(FixedPrediction(pred, 4), loader, 4, "cpu", progress=False)
    # class 0: 2/3, class 1: 1/2, classes 2 and 3 absent everywhere -> NaN, not 0
    assert np.isnan(result["iou"][2]) and np.isnan(result["iou"][3])
    assert math.isclose(result["miou"], (2 / 3 + 1 / 2) / 2)
