"""bisenet.data.prepare and tools/prepare_cityscapes.py: trainIds labels and list files."""
import cv2
import numpy as np

from bisenet.config import DataConfig
from bisenet.data.cityscapes import ID_TO_TRAIN_ID
from bisenet.data.dataset import SegmentationDataset

from conftest import run_tool


def test_prepare_writes_train_ids_and_list_files(synthetic_copy):
    root = synthetic_copy
    result = run_tool("prepare_cityscapes.py", "--root", str(root), "--workers", "2")
    assert result.returncode == 0, result.stderr
    for image, label in SegmentationDataset(DataConfig(root=str(root)), "val").samples:
        train_ids = cv2.imread(label.replace("_labelIds", "_labelTrainIds"), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(train_ids, ID_TO_TRAIN_ID[cv2.imread(label, cv2.IMREAD_UNCHANGED)])
    lines = (root / "val_trainids.txt").read_text().splitlines()
    assert len(lines) == 3 and lines[0].startswith("leftImg8bit/val/") and "_labelTrainIds.png" in lines[0]
    # The converted labels with their list files and no label map give the same dataset.
    converted = SegmentationDataset(DataConfig(root=str(root), label_map={}), "val", list_file="val_trainids.txt")
    original = SegmentationDataset(DataConfig(root=str(root)), "val")
    assert np.array_equal(converted.load(1)[1], original.load(1)[1])
    assert len(SegmentationDataset(DataConfig(root=str(root)), "train", list_file="train.txt")) == 6
