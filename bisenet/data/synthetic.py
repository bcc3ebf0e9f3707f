"""A small synthetic dataset in exactly the official Cityscapes layout.

Scenes are street-like: sky, buildings, road and sidewalk bands, then objects of every
evaluated class plus void and ignored ids. Each label id has its own colour and stripe texture,
so a model can learn the mapping in minutes on a CPU. Deterministic for a given seed.
"""
import colorsys
import os

import cv2
import numpy as np

from bisenet.data.cityscapes import LABELS, TRAIN_LABELS
from bisenet.outputs import write_image
from bisenet.progress import progress_bar

CITIES = {"train": ("aachen", "bochum", "bremen"), "val": ("frankfurt", "lindau")}

# Objects drawn on top of the background bands: (label id, shape, height range as a fraction of
# the image height, width/height aspect range).
OBJECTS = [
    (21, "ellipse", (0.15, 0.35), (0.8, 2.0)),  # vegetation
    (22, "rect", (0.08, 0.15), (2.0, 4.0)),  # terrain
    (12, "rect", (0.12, 0.25), (1.5, 3.0)),  # wall
    (13, "rect", (0.08, 0.15), (2.0, 4.0)),  # fence
    (17, "rect", (0.30, 0.50), (0.05, 0.08)),  # pole
    (19, "rect", (0.10, 0.15), (0.35, 0.50)),  # traffic light
    (20, "rect", (0.08, 0.12), (0.9, 1.3)),  # traffic sign
    (24, "ellipse", (0.18, 0.28), (0.35, 0.50)),  # person
    (25, "ellipse", (0.18, 0.26), (0.45, 0.60)),  # rider
    (26, "rect", (0.12, 0.20), (1.6, 2.2)),  # car
    (27, "rect", (0.18, 0.28), (1.5, 2.0)),  # truck
    (28, "rect", (0.20, 0.30), (2.0, 2.8)),  # bus
    (31, "rect", (0.18, 0.26), (3.0, 4.0)),  # train
    (32, "ellipse", (0.10, 0.15), (1.2, 1.6)),  # motorcycle
    (33, "ellipse", (0.10, 0.15), (1.3, 1.7)),  # bicycle
    (5, "rect", (0.06, 0.12), (0.8, 1.5)),  # dynamic (void)
    (4, "rect", (0.06, 0.12), (0.8, 1.5)),  # static (void)
    (9, "rect", (0.06, 0.10), (2.0, 3.0)),  # parking (ignored in eval)
    (14, "rect", (0.04, 0.06), (3.0, 5.0)),  # guard rail (ignored in eval)
]


def _appearance():
    """Colour and stripe texture per label id: evaluated classes get well separated hues."""
    colors, periods = {}, {}
    for k, label in enumerate(TRAIN_LABELS):
        hue = (k * 7 % 19) / 19.0
        value = 0.95 if k % 2 else 0.65
        saturation = 0.85 if k % 3 else 0.55
        colors[label.id] = tuple(int(255 * c) for c in colorsys.hsv_to_rgb(hue, saturation, value))
        periods[label.id] = 4 + (k % 5) * 3
    for label in LABELS:
        if label.id >= 0 and label.id not in colors:
            gray = 40 + (label.id * 37) % 160
            colors[label.id] = (gray, gray, gray)
            periods[label.id] = 6
    return colors, periods


COLORS, PERIODS = _appearance()
LABEL_BY_ID = {label.id: label for label in LABELS}


def render_scene(rng, height, width):
    """A (labelIds, instanceIds, RGB image) triple for one random street scene."""
    label = np.zeros((height, width), dtype=np.uint8)
    horizon = int(height * rng.uniform(0.25, 0.40))
    road_top = int(height * rng.uniform(0.55, 0.65))
    label[:horizon] = 23  # sky
    label[horizon:road_top] = 11  # building
    label[road_top:] = 7  # road
    sidewalk = int(height * rng.uniform(0.06, 0.10))
    label[road_top : road_top + sidewalk] = 8
    if rng.random() < 0.5:
        label[:, : int(width * rng.uniform(0.02, 0.05))] = 3  # out of roi strip
    if rng.random() < 0.7:
        label[int(height * 0.93) :] = 1  # ego vehicle
    instance = label.astype(np.int32)
    next_instance = {}
    order = rng.permutation(len(OBJECTS))
    for which in order:
        label_id, shape, height_range, aspect_range = OBJECTS[which]
        for _ in range(int(rng.integers(1, 3))):
            h = max(4, int(height * rng.uniform(*height_range)))
            w = max(4, int(h * rng.uniform(*aspect_range)))
            top = int(rng.integers(horizon - h // 2, max(horizon - h // 2 + 1, height - h)))
            left = int(rng.integers(0, max(1, width - w)))
            mask = np.zeros((height, width), dtype=np.uint8)
            if shape == "rect":
                cv2.rectangle(mask, (left, top), (left + w - 1, top + h - 1), 1, thickness=-1)
            else:
                cv2.ellipse(mask, (left + w // 2, top + h // 2), (w // 2, h // 2), 0, 0, 360, 1, thickness=-1)
            mask = mask.astype(bool)
            label[mask] = label_id
            instance[mask] = label_id
            if LABEL_BY_ID[label_id].has_instances:
                k = next_instance.get(label_id, 0)
                next_instance[label_id] = k + 1
                instance[mask] = label_id * 1000 + k
    return label, instance, _paint(label, rng)


def _paint(label, rng):
    height, width = label.shape
    colors = np.zeros((256, 3), dtype=np.float32)
    periods = np.ones(256, dtype=np.float32)
    for label_id, color in COLORS.items():
        colors[label_id] = color
        periods[label_id] = PERIODS[label_id]
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    stripes = np.sin((xx + yy * (label % 3)) * (2 * np.pi / periods[label]))
    image = colors[label] * (1 + 0.12 * stripes[..., None])
    image *= rng.uniform(0.85, 1.15)  # global illumination
    image += rng.normal(0, 8, size=image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def make_synthetic_cityscapes(root, num_train=30, num_val=10, height=256, width=512, seed=0, progress=True):
    """Write ``num_train`` / ``num_val`` scenes under ``root`` in the official layout; returns
    the list of label files written."""
    official_colors = np.zeros((256, 3), dtype=np.uint8)
    for label in LABELS:
        if label.id >= 0:
            official_colors[label.id] = label.color
    written = []
    jobs = [(split, i) for split, count in (("train", num_train), ("val", num_val)) for i in range(count)]
    for split, i in progress_bar(jobs, progress, desc="synthetic cityscapes"):
        rng = np.random.default_rng([seed, 0 if split == "train" else 1, i])
        cities = CITIES[split]
        city = cities[i % len(cities)]
        stem = f"{city}_{i // len(cities):06d}_{19 + i:06d}"
        label, instance, image = render_scene(rng, height, width)
        image_dir = os.path.join(root, "leftImg8bit", split, city)
        label_dir = os.path.join(root, "gtFine", split, city)
        write_image(os.path.join(image_dir, f"{stem}_leftImg8bit.png"), image)
        label_path = os.path.join(label_dir, f"{stem}_gtFine_labelIds.png")
        write_image(label_path, label)
        write_image(os.path.join(label_dir, f"{stem}_gtFine_instanceIds.png"), instance.astype(np.uint16))
        write_image(os.path.join(label_dir, f"{stem}_gtFine_color.png"), official_colors[label])
        written.append(label_path)
    return written

