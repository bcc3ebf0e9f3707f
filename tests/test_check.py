"""bisenet.data.check and tools/check_dataset.py: every planted fault is found, and nothing else."""
import os

import cv2
import numpy as np
import pytest

from bisenet.config import DataConfig, load_config
from bisenet.data.check import check_dataset
from bisenet.data.cityscapes import ID_TO_TRAIN_ID
from bisenet.data.dataset import SegmentationDataset
from bisenet.data.synthetic import make_synthetic_cityscapes

from conftest import REPO, run_tool
from layouts import _make_pairs, make_ade20k, make_camvid, make_cocostuff


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
    os.remove(train[3][0])  # missing image: its label (and the _color, _instanceIds files beside it) unused
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
        ("train", os.path.basename(train[3][1]), "missing image"),
        ("val", os.path.basename(val[0][0]), "label value out of range"),
        ("val", os.path.basename(val[1][0]), "unreadable label"),
    ])
    assert report["values_seen"]["raw 99 (invalid)"] == 1

    result = run_tool("check_dataset.py", "--config", "configs/bisenetv1_synthetic.py", "--root", str(root))
    assert result.returncode == 1
    assert "6 problem(s)" in result.stdout and os.path.basename(val[0][1]) in result.stdout
    assert f"[train] missing image: label {train[3][1]} has no image, expected {train[3][0]}" in result.stdout
    assert f"[train] missing label: image {train[0][0]} has no label, expected {train[0][1]}" in result.stdout
    assert "fix for out-of-range values" in result.stdout


def test_class_frequencies_match_a_direct_count(root):
    report = check_dataset(DataConfig(root=str(root)), 19, ["val"], workers=1, progress=False)
    expected = np.zeros(256, np.int64)
    for _, label in SegmentationDataset(DataConfig(root=str(root)), "val").samples:
        expected += np.bincount(ID_TO_TRAIN_ID[cv2.imread(label, cv2.IMREAD_UNCHANGED)].ravel(), minlength=256)
    assert report["class_pixels"].tolist() == expected[:19].tolist()
    assert report["ignore_pixels"] == expected[255]


def _custom(root, image_dir="images", label_dir="masks", names=lambda k: f"site/{k:03d}"):
    """configs/custom_dataset.py's layout: .jpg images and .png masks in nested folders."""
    _make_pairs(root, (("train", names, 3), ("val", names, 2)), ((32, 48),), image_dir, label_dir, [0, 10], 0)


def _one_folder(root):
    """Images and masks side by side in one folder: x_img.png and x.png."""
    for split, count in (("train", 3), ("val", 2)):
        for k in range(count):
            folder = os.path.join(root, "data", split)
            os.makedirs(folder, exist_ok=True)
            cv2.imwrite(os.path.join(folder, f"{k:03d}_img.png"), np.full((32, 48, 3), 100, np.uint8))
            cv2.imwrite(os.path.join(folder, f"{k:03d}.png"), np.zeros((32, 48), np.uint8))


LAYOUTS = {
    "cityscapes": (lambda root: make_synthetic_cityscapes(root, 3, 2, 32, 64, progress=False), "bisenetv1_city.py",
                   []),
    "cocostuff": (make_cocostuff, "bisenetv1_coco.py", []),
    "ade20k": (make_ade20k, "bisenetv1_ade20k.py", []),
    "camvid": (make_camvid, "bisenetv1_camvid.py", []),  # both .png, in {split}/ and {split}annot/
    "custom": (_custom, "custom_dataset.py", []),
    "one folder": (_one_folder, "custom_dataset.py", ["data.image_dir=data/{split}", "data.label_dir=data/{split}",
                                                      "data.image_suffix=_img.png", "data.label_suffix=.png"]),
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_files_missing_either_way_are_reported_in_every_layout(layout, tmp_path):
    make, config, overrides = LAYOUTS[layout]
    make(str(tmp_path))
    cfg = load_config(os.path.join(REPO, "configs", config), [f"data.root={tmp_path}", *overrides])
    train = SegmentationDataset(cfg.data, cfg.data.train_split).samples
    val = SegmentationDataset(cfg.data, cfg.data.val_split).samples
    assert (len(train), len(val)) == (3, 2)
    report = check_dataset(cfg.data, cfg.model.num_classes, [cfg.data.train_split, cfg.data.val_split], 1, False)
    assert report["faults"] == []

    (image, label), (val_image, val_label) = train[1], val[0]
    os.remove(image)
    os.remove(val_label)
    report = check_dataset(cfg.data, cfg.model.num_classes, [cfg.data.train_split, cfg.data.val_split], 1, False)
    assert report["faults"] == sorted([
        (cfg.data.train_split, label, "missing image", f"label {label} has no image, expected {image}"),
        (cfg.data.val_split, val_image, "missing label", f"image {val_image} has no label, expected {val_label}"),
    ])
    # Training goes on without the label whose image is gone; it is check_dataset that tells.
    assert SegmentationDataset(cfg.data, cfg.data.train_split).samples == [train[0], train[2]]
