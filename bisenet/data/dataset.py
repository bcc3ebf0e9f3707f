"""A segmentation dataset of (image, label) pairs, found in a folder layout or a list file.

The layout is described by the config: ``{root}/{image_dir}/**/*{image_suffix}`` pairs with the
same relative path under ``{root}/{label_dir}`` ending in ``label_suffix`` (``{split}`` in the
folder names is replaced by the split). The defaults are Cityscapes' official layout.
"""
import glob
import os

import numpy as np
from torch.utils.data import Dataset

from bisenet.data.catalog import dataset_hint
from bisenet.data.cityscapes import generated_palette
from bisenet.data.io import DatasetError, LabelDecoder, read_image


def scan_pairs(data_cfg, split, allow_missing=False):
    """(image, label) path pairs of one split, sorted by image path. Images without a label are
    an error; with ``allow_missing`` they are returned instead, with labels that have no image
    (data the user thinks is used but is not): ``(pairs, missing_labels, missing_images)``, each
    a list of (image, label) paths where the missing one is the path it was expected at."""
    root = data_cfg.root
    image_dir = os.path.join(root, data_cfg.image_dir.format(split=split))
    label_dir = os.path.join(root, data_cfg.label_dir.format(split=split))
    if not os.path.isdir(root):
        raise DatasetError(f"dataset root {root} does not exist. {dataset_hint(data_cfg)}")
    if not os.path.isdir(image_dir):
        raise DatasetError(f"no folder {image_dir} for split {split!r}. {dataset_hint(data_cfg)}")
    images = _files(image_dir, data_cfg.image_suffix)
    if not images:
        raise DatasetError(f"split {split!r} is empty: no *{data_cfg.image_suffix} files under {image_dir}")
    pairs, missing = [], []
    for image in images:
        relative = os.path.relpath(image, image_dir)[: -len(data_cfg.image_suffix)]
        label = os.path.join(label_dir, relative + data_cfg.label_suffix)
        (pairs if os.path.isfile(label) else missing).append((image, label))
    if allow_missing:
        return pairs, missing, _labels_without_image(data_cfg, image_dir, label_dir, images)
    if missing:
        listed = "\n".join(f"  {image} -> expected {label}" for image, label in missing[:10])
        more = f"\n  ... and {len(missing) - 10} more" if len(missing) > 10 else ""
        raise DatasetError(f"{len(missing)} image(s) in split {split!r} have no label:\n{listed}{more}")
    return pairs


def _files(folder, suffix):
    return sorted(glob.glob(os.path.join(folder, "**", f"*{suffix}"), recursive=True))


def _labels_without_image(data_cfg, image_dir, label_dir, images):
    """(expected image, label) for every label of ``label_dir`` whose image is not there. Only
    files ending in ``label_suffix`` are labels: Cityscapes keeps several files per image
    (``_color.png``, ``_instanceIds.png``, ``_polygons.json``) beside the one that is read."""
    images = set(images)
    orphans = []
    for label in _files(label_dir, data_cfg.label_suffix):
        if label in images:  # images and labels in one folder, a label suffix that images share
            continue
        relative = os.path.relpath(label, label_dir)[: -len(data_cfg.label_suffix)]
        image = os.path.join(image_dir, relative + data_cfg.image_suffix)
        if image not in images:
            orphans.append((image, label))
    return orphans


def read_list_file(root, list_file):
    """(image, label) pairs from a file of ``image,label`` lines, paths relative to ``root``."""
    if not os.path.isfile(list_file):
        raise DatasetError(f"list file {list_file} does not exist")
    pairs = []
    with open(list_file) as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = [p.strip() for p in line.split(",")]
            if len(parts) != 2 or not all(parts):
                raise DatasetError(f"{list_file}, line {number}: expected 'image,label', got {line!r}")
            pairs.append(tuple(os.path.join(root, p) for p in parts))
    if not pairs:
        raise DatasetError(f"list file {list_file} holds no 'image,label' lines")
    return pairs


class SegmentationDataset(Dataset):
    """Yields dicts with ``image`` and ``label`` (after ``transform``; numpy RGB uint8 and train
    ids without one) and ``path`` (the image file).

    With ``skip_bad`` a sample that cannot be read is replaced by the next readable one and its
    error is returned under ``skipped`` (the trainer counts them against a cap); otherwise it
    raises ``DatasetError``.
    """

    def __init__(self, data_cfg, split, transform=None, list_file="", num_classes=None, skip_bad=False):
        self.root = data_cfg.root
        self.split = split
        self.transform = transform
        self.skip_bad = skip_bad
        num_classes = len(data_cfg.class_names) if num_classes is None else num_classes
        self.decode_label = LabelDecoder(num_classes, data_cfg.ignore_index, data_cfg.label_map)
        self.palette = data_cfg.palette or generated_palette(num_classes)
        if list_file:
            path = list_file if os.path.isabs(list_file) else os.path.join(self.root, list_file)
            self.samples = read_list_file(self.root, path)
        else:
            self.samples = scan_pairs(data_cfg, split)

    def __len__(self):
        return len(self.samples)

    def load(self, index):
        """The image (RGB uint8) and its train-id label, checked."""
        image_path, label_path = self.samples[index]
        image = read_image(image_path)
        label = self.decode_label(label_path)
        if image.shape[:2] != label.shape:
            raise DatasetError(
                f"image {image_path} is {image.shape[1]}x{image.shape[0]} but its label {label_path} is "
                f"{label.shape[1]}x{label.shape[0]}; they must have the same size")
        return image, label

    def __getitem__(self, index):
        # Training samplers pass (index, seed) so augmentation depends only on the sample's
        # position in the run, not on worker scheduling.
        index, seed = index if isinstance(index, tuple) else (index, None)
        skipped = []
        for attempt in range(len(self.samples)):
            current = (index + attempt) % len(self.samples)
            try:
                image, label = self.load(current)
                break
            except DatasetError as exc:
                if not self.skip_bad:
                    raise
                skipped.append(str(exc))
        else:
            raise DatasetError(f"no readable sample in the {self.split!r} split: " + skipped[0])
        if self.transform is not None:
            image, label = self.transform(image, label, np.random.default_rng(seed))
        sample = {"image": image, "label": label, "path": self.samples[current][0]}
        if self.skip_bad:
            sample["skipped"] = skipped
        return sample
