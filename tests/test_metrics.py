import math

import numpy as np
import pytest
import torch

from bisenet.metrics import ConfusionMatrix, confusion_matrix, scores


def test_hand_computed_example_with_ignore_and_absent_class():
    label = torch.tensor([[0, 0, 0, 0], [1, 1, 255, 255]])
    pred = torch.tensor([[0, 0, 0, 1], [1, 0, 2, 1]])
    counts = confusion_matrix(pred, label, num_classes=3)
    assert counts.tolist() == [[3, 1, 0],
                               [1, 1, 0],
                               [0, 0, 0]]
    s = scores(counts)
    # class 0: TP 3, FP 1, FN 1 -> 3/5; class 1: TP 1, FP 1, FN 1 -> 1/3; class 2 absent -> NaN
    assert s["iou"][0] == pytest.approx(3 / 5)
    assert s["iou"][1] == pytest.approx(1 / 3)
    assert math.isnan(s["iou"][2])
    assert s["miou"] == pytest.approx((3 / 5 + 1 / 3) / 2)
    # acc: class 0 3/4, class 1 1/2; aAcc 4 right of 6 valid pixels
    assert s["acc"][:2] == pytest.approx([3 / 4, 1 / 2])
    assert s["macc"] == pytest.approx(5 / 8)
    assert s["aacc"] == pytest.approx(4 / 6)
    # F1 = 2TP / (2TP + FP + FN): 6/8, 2/4; fwIoU weighs by ground-truth share: 4/6 and 2/6
    assert s["f1"][:2] == pytest.approx([6 / 8, 2 / 4]) and math.isnan(s["f1"][2])
    assert s["mf1"] == pytest.approx((6 / 8 + 2 / 4) / 2)
    assert s["fwiou"] == pytest.approx(4 / 6 * 3 / 5 + 2 / 6 * 1 / 3)


def test_class_only_in_prediction_has_zero_iou_and_counts():
    label = torch.tensor([0, 0, 1, 1, 255])
    pred = torch.tensor([0, 2, 1, 1, 2])
    counts = confusion_matrix(pred, label, num_classes=3)
    assert counts.tolist() == [[1, 0, 1],
                               [0, 2, 0],
                               [0, 0, 0]]
    s = scores(counts)
    # class 0: TP 1, FP 0, FN 1 -> 1/2; class 1: 2/2 -> 1; class 2: TP 0, FP 1 -> 0
    assert list(s["iou"]) == pytest.approx([1 / 2, 1.0, 0.0])
    assert s["miou"] == pytest.approx(1 / 2)
    assert math.isnan(s["acc"][2])
    assert s["macc"] == pytest.approx(3 / 4)


def test_random_against_brute_force():
    gen = torch.Generator().manual_seed(0)
    num_classes = 5
    label = torch.randint(0, num_classes, (2, 17, 23), generator=gen)
    label[torch.rand(label.shape, generator=gen) < 0.2] = 255
    pred = torch.randint(0, num_classes, (2, 17, 23), generator=gen)

    expected = np.zeros((num_classes, num_classes), dtype=np.int64)
    for t, p in zip(label.flatten().tolist(), pred.flatten().tolist()):
        if t != 255:
            expected[t, p] += 1
    counts = confusion_matrix(pred, label, num_classes)
    assert counts.dtype == torch.int64
    np.testing.assert_array_equal(counts.numpy(), expected)

    accumulated = ConfusionMatrix(num_classes)
    accumulated.update(pred[:1], label[:1])
    accumulated.update(pred[1:], label[1:])
    np.testing.assert_array_equal(accumulated.counts.numpy(), expected)

    lab, prd = label.numpy(), pred.numpy()
    valid = lab != 255
    aacc = (prd[valid] == lab[valid]).mean()
    macc = np.mean([(prd[lab == c] == c).mean() for c in range(num_classes)])
    s = scores(counts)
    assert s["aacc"] == pytest.approx(aacc)
    assert s["macc"] == pytest.approx(macc)
    iou = [((prd == c) & (lab == c)).sum() / (((prd == c) | (lab == c)) & valid).sum() for c in range(num_classes)]
    share = [(lab == c).sum() / valid.sum() for c in range(num_classes)]
    assert s["fwiou"] == pytest.approx(sum(w * i for w, i in zip(share, iou)))


def test_confusion_matrix_leaves_its_inputs_alone():
    label = torch.tensor([[0, 1], [255, 2]], dtype=torch.int16)
    pred = torch.tensor([[0, 2], [1, 2]], dtype=torch.int16)
    before = (label.clone(), pred.clone())
    confusion_matrix(pred, label, 3)
    assert torch.equal(label, before[0]) and torch.equal(pred, before[1])
