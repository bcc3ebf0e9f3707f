"""Cityscapes: the official label table and colour palette.

The official folder layout, which the default data config reads directly::

    {root}/leftImg8bit/{split}/{city}/{city}_{seq}_{frame}_leftImg8bit.png
    {root}/gtFine/{split}/{city}/{city}_{seq}_{frame}_gtFine_labelIds.png

Labels are labelIds; ``LABEL_MAP`` turns them into the 19 trainIds on the fly.
"""
from collections import namedtuple

import numpy as np

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

TRAIN_LABELS = sorted((label for label in LABELS if 0 <= label.train_id < 255), key=lambda label: label.train_id)
CLASS_NAMES = tuple(label.name for label in TRAIN_LABELS)
PALETTE = np.array([label.color for label in TRAIN_LABELS], dtype=np.uint8)  # trainId -> RGB
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
# labelIds -> trainIds for every id of the official table (unevaluated ids -> 255, ignored).
LABEL_MAP = {label.id: (label.train_id if 0 <= label.train_id < 255 else 255) for label in LABELS if label.id >= 0}

DATASET_HINT = (
    "Cityscapes goes in {root} with the official layout (leftImg8bit/ and gtFine/ side by side). "
    "Register at https://www.cityscapes-dataset.com, download leftImg8bit_trainvaltest.zip and "
    "gtFine_trainvaltest.zip and unzip both into {root}; see datasets/README.md. To try the toolbox "
    "without it: python tools/make_synthetic_cityscapes.py --root {root}"
)


def colorize(train_ids, palette=PALETTE):
    """RGB image of a train-id map (Cityscapes' official palette by default); ignore and
    unknown ids are black."""
    table = np.zeros((256, 3), dtype=np.uint8)
    table[: len(palette)] = np.asarray(palette, dtype=np.uint8)
    return table[np.asarray(train_ids, dtype=np.uint8)]


def generated_palette(num_classes):
    """Distinct colours for datasets that bring no palette (deterministic)."""
    rng = np.random.default_rng(1)
    return [tuple(int(c) for c in rgb) for rgb in rng.integers(40, 256, size=(num_classes, 3))]


def diagnose(raw_values, rgb_labels):
    """Hints for the typical mistakes, from the raw label values seen over the dataset and the
    paths of colour (3-channel) labels."""
    hints = []
    if 255 in raw_values and max(raw_values - {255}, default=0) <= 18:
        hints.append("labels hold 255 and ids up to 18: these are trainIds (*_gtFine_labelTrainIds.png), not "
                     "labelIds. Read the official *_gtFine_labelIds.png (data.label_suffix), or keep these with "
                     "data.label_map={}")
    if rgb_labels:
        hints.append(f"{len(rgb_labels)} label(s) are colour images, e.g. {rgb_labels[0]}: *_gtFine_color.png "
                     "files are for viewing; the labels are *_gtFine_labelIds.png")
    return hints
