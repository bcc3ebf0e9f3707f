"""Cityscapes: the official label table, the colour palette and the dataset.

The dataset reads the official folder layout directly::

    {root}/leftImg8bit/{split}/{city}/{city}_{seq}_{frame}_leftImg8bit.png
    {root}/gtFine/{split}/{city}/{city}_{seq}_{frame}_gtFine_labelIds.png

or a list file of ``image,label`` lines relative to ``root`` (the reference implementation's
format). Labels are labelIds and become trainIds through the official table on the fly.
"""
import glob
import os
from collections import namedtuple

import cv2
import numpy as np
from torch.utils.data import Dataset

Label = namedtuple("Label", ["name", "id", "train_id", "category", "has_instances", "ignore_in_eval", "color"])

# The official table (cityscapesscripts/helpers/labels.py); tests check it against the package.
LABELS = [
    Label("unlabeled", 0, 255, "void", False, True, (0, 0, 0)),
    Label("ego vehicle", 1, 255, "void", False, True, (0, 0, 0)),
    Label("rectification border", 2, 255, "void", False, True, (0, 0, 0)),
    Label("out of roi", 3, 255, "void", False, True, (0, 0, 0)),
    Label("static", 4, 255, "void", False, True, (0, 0, 0)),
    Label("dynamic", 5, 255, "void", False, True, (111, 74, 0)),
    Label("ground", 6, 255, "void", False, True, (81, 0, 81)),
    Label("road", 7, 0, "flat", False, False, (128, 64, 128)),
    Label("sidewalk", 8, 1, "flat", False, False, (244, 35, 232)),
    Label("parking", 9, 255, "flat", False, True, (250, 170, 160)),
    Label("rail track", 10, 255, "flat", False, True, (230, 150, 140)),
    Label("building", 11, 2, "construction", False, False, (70, 70, 70)),
    Label("wall", 12, 3, "construction", False, False, (102, 102, 156)),
    Label("fence", 13, 4, "construction", False, False, (190, 153, 153)),
    Label("guard rail", 14, 255, "construction", False, True, (180, 165, 180)),
    Label("bridge", 15, 255, "construction", False, True, (150, 100, 100)),
    Label("tunnel", 16, 255, "construction", False, True, (150, 120, 90)),
    Label("pole", 17, 5, "object", False, False, (153, 153, 153)),
    Label("polegroup", 18, 255, "object", False, True, (153, 153, 153)),
    Label("traffic light", 19, 6, "object", False, False, (250, 170, 30)),
    Label("traffic sign", 20, 7, "object", False, False, (220, 220, 0)),
    Label("vegetation", 21, 8, "nature", False, False, (107, 142, 35)),
    Label("terrain", 22, 9, "nature", False, False, (152, 251, 152)),
    Label("sky", 23, 10, "sky", False, False, (70, 130, 180)),
    Label("person", 24, 11, "human", True, False, (220, 20, 60)),
    Label("rider", 25, 12, "human", True, False, (255, 0, 0)),
    Label("car", 26, 13, "vehicle", True, False, (0, 0, 142)),
    Label("truck", 27, 14, "vehicle", True, False, (0, 0, 70)),
    Label("bus", 28, 15, "vehicle", True, False, (0, 60, 100)),
    Label("caravan", 29, 255, "vehicle", True, True, (0, 0, 90)),
    Label("trailer", 30, 255, "vehicle", True, True, (0, 0, 110)),
    Label("train", 31, 16, "vehicle", True, False, (0, 80, 100)),
    Label("motorcycle", 32, 17, "vehicle", True, False, (0, 0, 230)),
    Label("bicycle", 33, 18, "vehicle", True, False, (119, 11, 32)),
    Label("license plate", -1, -1, "vehicle", False, True, (0, 0, 142)),
]

TRAIN_LABELS = sorted((l for l in LABELS if 0 <= l.train_id < 255), key=lambda l: l.train_id)
CLASS_NAMES = tuple(l.name for l in TRAIN_LABELS)
PALETTE = np.array([l.color for l in TRAIN_LABELS], dtype=np.uint8)  # trainId -> RGB
NUM_CLASSES = len(TRAIN_LABELS)


def _lookup_tables():
    id_to_train = np.full(256, 255, dtype=np.uint8)
    train_to_id = np.zeros(256, dtype=np.uint8)  # ignore (255) -> 0, "unlabeled"
    for label in LABELS:
        if label.id >= 0 and 0 <= label.train_id < 255:
            id_to_train[label.id] = label.train_id
            train_to_id[label.train_id] = label.id
    return id_to_train, train_to_id


ID_TO_TRAIN_ID, TRAIN_ID_TO_ID = _lookup_tables()

DATASET_HINT = (
    "Cityscapes goes in {root} with the official layout (leftImg8bit/ and gtFine/ side by side). "
    "Register at https://www.cityscapes-dataset.com, download leftImg8bit_trainvaltest.zip and "
    "gtFine_trainvaltest.zip and unzip both into {root}; see datasets/README.md. To try the toolbox "
    "without it: python tools/make_synthetic_cityscapes.py --out {root}"
)


class DatasetError(RuntimeError):
    """A dataset file or folder that cannot be used; the message names it and the fix."""


def scan_split(root, split):
    """(image, label) path pairs of one split in the official layout, sorted by image path."""
    image_dir = os.path.join(root, "leftImg8bit", split)
    if not os.path.isdir(root):
        raise DatasetError(f"dataset root {root} does not exist. " + DATASET_HINT.format(root=root))
    if not os.path.isdir(image_dir):
        raise DatasetError(f"no folder {image_dir} for split {split!r}. " + DATASET_HINT.format(root=root))
    images = sorted(glob.glob(os.path.join(image_dir, "*", "*_leftImg8bit.png")))
    if not images:
        raise DatasetError(f"split {split!r} is empty: no */*_leftImg8bit.png under {image_dir}")
    pairs = []
    for image in images:
        city = os.path.basename(os.path.dirname(image))
        stem = os.path.basename(image)[: -len("_leftImg8bit.png")]
        label = os.path.join(root, "gtFine", split, city, f"{stem}_gtFine_labelIds.png")
        if not os.path.isfile(label):
            raise DatasetError(f"no label for {image}: expected {label} (unzip gtFine_trainvaltest.zip into {root})")
        pairs.append((image, label))
    return pairs


def read_list_file(root, list_file):
    """(image, label) pairs from a file of ``image,label`` lines, paths relative to ``root``."""
    if not os.path.isfile(list_file):
        raise DatasetError(f"list file {list_file} does not exist")
    pairs = []
    with open(list_file) as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            parts = [p.strip() for p in line.split(",")]
            if len(parts) != 2 or not all(parts):
                raise DatasetError(f"{list_file}, line {number}: expected 'image,label', got {line!r}")
            pairs.append(tuple(os.path.join(root, p) for p in parts))
    if not pairs:
        raise DatasetError(f"list file {list_file} holds no 'image,label' lines")
    return pairs


def read_image(path):
    """An RGB uint8 image; grayscale and RGBA inputs become RGB."""
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise DatasetError(f"cannot read image {path} (missing, empty or not an image file)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_label(path, lookup=ID_TO_TRAIN_ID):
    """A label image read unchanged (no colour conversion, no 16-bit scaling), mapped through
    ``lookup`` (labelIds -> trainIds for Cityscapes)."""
    label = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if label is None:
        raise DatasetError(f"cannot read label {path} (missing, empty or not an image file)")
    if label.ndim != 2:
        raise DatasetError(f"label {path} has {label.shape[2]} channels; labels must be single-channel id images")
    if label.dtype != np.uint8:
        raise DatasetError(f"label {path} is {label.dtype}; labels must be 8-bit ids")
    return lookup[label]


class CityscapesDataset(Dataset):
    """Yields dicts with ``image`` (float tensor CxHxW), ``label`` (int64 HxW of trainIds) and
    ``path`` (the image file)."""

    def __init__(self, root, split="train", transform=None, list_file=""):
        self.root = root
        self.split = split
        self.transform = transform
        if list_file:
            path = list_file if os.path.isabs(list_file) else os.path.join(root, list_file)
            self.samples = read_list_file(root, path)
        else:
            self.samples = scan_split(root, split)

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        # Training samplers pass (index, seed) so augmentation depends only on the sample's
        # position in the run, not on worker scheduling.
        index, seed = index if isinstance(index, tuple) else (index, None)
        image_path, label_path = self.samples[index]
        image = read_image(image_path)
        label = read_label(label_path)
        if image.shape[:2] != label.shape:
            raise DatasetError(
                f"image {image_path} is {image.shape[1]}x{image.shape[0]} but its label {label_path} is "
                f"{label.shape[1]}x{label.shape[0]}; they must have the same size"
            )
        if self.transform is not None:
            image, label = self.transform(image, label, np.random.default_rng(seed))
        return {"image": image, "label": label, "path": image_path}


def colorize(train_ids):
    """RGB image of a trainId map in the official palette; ignore pixels are black."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    palette[: len(PALETTE)] = PALETTE
    return palette[np.asarray(train_ids, dtype=np.uint8)]


def to_label_ids(train_ids):
    """trainIds -> labelIds, the format of the official evaluator and test server."""
    return TRAIN_ID_TO_ID[np.asarray(train_ids, dtype=np.uint8)]
