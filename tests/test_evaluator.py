import math

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from bisenet.engine.evaluator import evaluate, format_scores
from bisenet.inference import predict, predict_probs, sliding_logits


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


class Conv(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 5, 3, padding=1)

    def forward(self, x):
        return self.conv(x)


def test_sliding_crop_of_image_size_equals_whole_image():
    model = Conv().eval()
    x = torch.randn(1, 3, 40, 56)
    assert torch.allclose(sliding_logits(model, x, (40, 56)), model(x))


def test_overlapping_windows_are_averaged():
    class Constant(nn.Module):
        def forward(self, x):
            return torch.ones(x.shape[0], 2, *x.shape[-2:]) * torch.tensor([1.0, 3.0]).view(1, 2, 1, 1)

    logits = sliding_logits(Constant(), torch.zeros(1, 3, 50, 70), (32, 32), (10, 10))
    assert torch.allclose(logits[:, 0], torch.ones(1, 50, 70)) and torch.allclose(logits[:, 1], torch.full((1, 50, 70), 3.0))


def test_flip_restores_orientation():
    # A per-pixel model commutes with flipping, so flipped-and-restored probabilities must equal
    # the plain ones; on an asymmetric image, forgetting to flip back breaks this.
    torch.manual_seed(0)
    model = nn.Conv2d(3, 4, 1).eval()
    x = torch.linspace(-3, 3, 3 * 6 * 10).view(1, 3, 6, 10) ** 3
    plain = predict_probs(model, x, 4)
    assert torch.allclose(predict_probs(model, x, 4, flip=True), 2 * plain, atol=1e-6)
    assert not torch.allclose(plain, plain.flip(-1), atol=1e-3)


@pytest.mark.parametrize("size", [(37, 53), (64, 64)])
def test_predict_any_size(size):
    pred = predict(Conv().eval(), torch.randn(1, 3, *size), 5, scales=(0.5, 1.0, 1.5), flip=True, crop_size=(24, 24))
    assert pred.shape == (1, *size)


def test_predict_takes_the_first_maximum_like_argmax():
    class Ties(nn.Module):
        def forward(self, x):
            logits = torch.zeros(x.shape[0], 4, *x.shape[-2:])
            logits[:, 2:, :, : x.shape[-1] // 2] = 1.0  # classes 2 and 3 tie on the left half
            return logits

    x = torch.zeros(1, 3, 4, 6)
    pred = predict(Ties(), x, 4)
    assert torch.equal(pred, predict_probs(Ties(), x, 4).argmax(1))
    assert pred[0, 0].tolist() == [2, 2, 2, 0, 0, 0]
