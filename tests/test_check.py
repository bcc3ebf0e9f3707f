"""bisenet.data.check and tools/check_dataset.py: every planted fault is found, and nothing else."""
import os

import cv2
import numpy as np
import pytest

from bisenet.config import DataConfig
from bisenet.data.check import check_dataset
from bisenet.data.cityscapes import ID_TO_TRAIN_ID
from bisenet.data.dataset import SegmentationDataset

from conftest import run_tool


@pytest.fixture
def root(synthetic_copy):
    return synthetic_copy


def test_clean_dataset_passes_with_statistics(root):
    result = run_tool("check_dataset.py", "--config", "configs/bisenetv1_synthetic.py", "--root", str(root),
                      "--workers", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no problems found" in result.stdout and "RGB mean" in result.stdout
    assert "| train   |        6 | 128x64 (6)" in result.stdout


def test_planted_faults_are_all_found_and_nothing_else(root):
    train = SegmentationDataset(DataConfig(root=str(root)), "train").samples
    val = SegmentationDataset(DataConfig(root=str(root)), "val").samples
    os.remove(train[0][1])  # missing label
    with open(train[1][0], "wb") as f:  # unreadable image
        f.write(b"garbage")
    cv2.imwrite(train[2][1], np.zeros((10, 20), np.uint8))  # size mismatch
    label = cv2.imread(val[0][1], cv2.IMREAD_UNCHANGED)
    label[5, 5] = 99  # a value that is no Cityscapes label id
    cv2.imwrite(val[0][1], label)
    data = open(val[1][1], "rb").read()
    with open(val[1][1], "wb") as f:  # truncated label
        f.write(data[: len(data) // 2])

    report = check_dataset(DataConfig(root=str(root)), 19, ["train", "val"], workers=2, progress=False)
    found = sorted((split, os.path.basename(image), kind) for split, image, kind, _ in report["faults"])
    assert found == sorted([
        ("train", os.path.basename(train[0][0]), "missing label"),
        ("train", os.path.basename(train[1][0]), "unreadable image"),
        ("train", os.path.basename(train[2][0]), "size mismatch"),
        ("val", os.path.basename(val[0][0]), "label value out of range"),
        ("val", os.path.basename(val[1][0]), "unreadable label"),
    ])
    assert report["values_seen"]["raw 99 (invalid)"] == 1

    result = run_tool("check_dataset.py", "--config", "configs/bisenetv1_synthetic.py", "--root", str(root))
    assert result.returncode == 1
    assert "5 problem(s)" in result.stdout and os.path.basename(val[0][1]) in result.stdout
    assert "fix for out-of-range values" in result.stdout


def test_class_frequencies_match_a_direct_count(root):
    report = check_dataset(DataConfig(root=str(root)), 19, ["val"], workers=1, progress=False)
    expected = np.zeros(256, np.int64)
    for _, label in SegmentationDataset(DataConfig(root=str(root)), "val").samples:
        expected += np.bincount(ID_TO_TRAIN_ID[cv2.imread(label, cv2.IMREAD_UNCHANGED)].ravel(), minlength=256)
    assert report["class_pixels"].tolist() == expected[:19].tolist()
    assert report["ignore_pixels"] == expected[255]
