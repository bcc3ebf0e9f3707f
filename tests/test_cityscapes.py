import os
import shutil

import cv2
import numpy as np
import pytest

from bisenet.config import DataConfig
from bisenet.data.cityscapes import CLASS_NAMES, ID_TO_TRAIN_ID, LABEL_MAP, LABELS, PALETTE, TRAIN_ID_TO_ID
from bisenet.data.dataset import SegmentationDataset
from bisenet.data.io import DatasetError, LabelDecoder
from bisenet.data.transforms import Normalize


def CityscapesDataset(root, split, transform=None, list_file=""):
    return SegmentationDataset(DataConfig(root=root), split, transform=transform, list_file=list_file)


def test_label_table_matches_cityscapesscripts():
    official = pytest.importorskip("cityscapesscripts.helpers.labels")
    ours = [(label.name, label.id, label.train_id, label.category, label.has_instances, label.ignore_in_eval,
             tuple(label.color)) for label in LABELS]
    theirs = [(label.name, label.id, label.trainId, label.category, label.hasInstances, label.ignoreInEval,
               tuple(label.color)) for label in official.labels]
    assert ours == theirs
    for label_id in range(256):
        label = official.id2label.get(label_id)
        expected = label.trainId if label is not None and label.trainId not in (-1, 255) else 255
        assert ID_TO_TRAIN_ID[label_id] == expected, label_id
    assert CLASS_NAMES == tuple(official.trainId2label[t].name for t in range(19))
    assert [tuple(c) for c in PALETTE] == [official.trainId2label[t].color for t in range(19)]
    assert LABEL_MAP == {label.id: (label.trainId if label.trainId not in (-1, 255) else 255)
                         for label in official.labels if label.id >= 0}
    for train_id in range(19):
        assert TRAIN_ID_TO_ID[train_id] == official.trainId2label[train_id].id


def test_label_ids_round_trip():
    train_ids = np.arange(19, dtype=np.uint8)
    assert np.array_equal(ID_TO_TRAIN_ID[TRAIN_ID_TO_ID[train_ids]], train_ids)
    decoder = LabelDecoder(19, 255, LABEL_MAP)  # the way predictions are written back
    assert np.array_equal(decoder.encode(train_ids), TRAIN_ID_TO_ID[train_ids])


def test_dataset_reads_official_layout(synthetic_root):
    dataset = CityscapesDataset(synthetic_root, "train", transform=Normalize((0, 0, 0), (1, 1, 1)))
    assert len(dataset) == 6
    sample = dataset[0]
    image_path, label_path = dataset.samples[0]
    assert image_path.endswith("_leftImg8bit.png") and label_path.endswith("_gtFine_labelIds.png")
    raw = cv2.imread(label_path, cv2.IMREAD_UNCHANGED)
    assert np.array_equal(sample["label"].numpy(), ID_TO_TRAIN_ID[raw])
    assert set(np.unique(sample["label"].numpy())) <= set(range(19)) | {255}
    rgb = cv2.imread(image_path)[:, :, ::-1]
    assert np.allclose(sample["image"].numpy().transpose(1, 2, 0), rgb / 255.0, atol=1e-6)


def test_synthetic_labels_use_void_ids(synthetic_root):
    dataset = CityscapesDataset(synthetic_root, "train")
    raw_ids = set()
    for _, label_path in dataset.samples:
        raw_ids |= set(np.unique(cv2.imread(label_path, cv2.IMREAD_UNCHANGED)).tolist())
    assert raw_ids & {1, 3, 4, 5}  # void ids present
    assert len(raw_ids & {label.id for label in LABELS if 0 <= label.train_id < 255}) >= 15


def test_list_file(synthetic_root, tmp_path):
    dataset = CityscapesDataset(synthetic_root, "val")
    lines = [",".join(os.path.relpath(p, synthetic_root) for p in pair) for pair in dataset.samples]
    list_file = tmp_path / "val.txt"
    list_file.write_text("\n".join(lines) + "\n")
    from_list = CityscapesDataset(synthetic_root, "val", list_file=str(list_file))
    assert from_list.samples == dataset.samples
    list_file.write_text(lines[0] + "\nonly-one-field.png\n")
    with pytest.raises(DatasetError, match="line 2"):
        CityscapesDataset(synthetic_root, "val", list_file=str(list_file))


def test_missing_root_and_label_are_explained(synthetic_root, tmp_path):
    with pytest.raises(DatasetError, match="cityscapes-dataset.com"):
        CityscapesDataset(str(tmp_path / "nowhere"), "train")
    root = tmp_path / "copy"
    shutil.copytree(synthetic_root, root)
    dataset = CityscapesDataset(str(root), "val")
    os.remove(dataset.samples[1][1])
    with pytest.raises(DatasetError, match="have no label") as info:
        CityscapesDataset(str(root), "val")
    assert dataset.samples[1][0] in str(info.value) and dataset.samples[1][1] in str(info.value)
    with pytest.raises(DatasetError, match="empty"):
        os.makedirs(root / "leftImg8bit" / "test")
        CityscapesDataset(str(root), "test")


def test_size_mismatch_names_both_files(synthetic_root, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(synthetic_root, root)
    dataset = CityscapesDataset(str(root), "val")
    image_path, label_path = dataset.samples[0]
    cv2.imwrite(label_path, np.zeros((10, 10), np.uint8))
    with pytest.raises(DatasetError, match="same size") as info:
        dataset[0]
    assert image_path in str(info.value) and label_path in str(info.value)


