"""Tiny datasets in the official layouts of COCO-Stuff, ADE20K and CamVid, made by the tests.

Each writes random images and labels of the dataset's raw values (a few blocks of one value
each, so that augmentations keep several classes) and returns the raw labels it wrote.
"""
import os

import cv2
import numpy as np

COCO_SIZES = ((48, 64), (64, 48), (40, 72))  # (h, w): COCO's images differ in size
ADE_SIZES = ((56, 72), (72, 56), (48, 48))


def _blocks(rng, size, values):
    """A label of ``size`` made of 8x8 blocks, each one of ``values``."""
    h, w = size
    grid = rng.choice(np.asarray(values, dtype=np.uint8), size=((h + 7) // 8, (w + 7) // 8))
    return np.kron(grid, np.ones((8, 8), np.uint8))[:h, :w]


def _write(path, array, colour=False):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(array, cv2.COLOR_RGB2BGR) if colour else array):
        raise OSError(path)


def _make_pairs(root, splits, sizes, image_dir, label_dir, values, seed):
    """``splits``: (split, file name of image k) pairs and counts; ``.jpg`` images under
    ``image_dir/split``, ``.png`` labels of ``values`` under ``label_dir/split``."""
    rng = np.random.default_rng(seed)
    labels = {}
    for split, name_of, count in splits:
        for k in range(count):
            size, name = sizes[k % len(sizes)], name_of(k)
            image = rng.integers(0, 256, (*size, 3), np.uint8)
            _write(os.path.join(root, image_dir, split, name + ".jpg"), image, True)
            labels[(split, name)] = label = _blocks(rng, size, values)
            _write(os.path.join(root, label_dir, split, name + ".png"), label)
    return labels


def make_cocostuff(root, num_train=3, num_val=2, seed=0, values=None):
    """``images/{train,val}2017/*.jpg`` and ``labels/{train,val}2017/*.png`` (stuffthingmaps ids)."""
    from bisenet.data import cocostuff

    values = values if values is not None else list(cocostuff.KEPT[::7]) + [255]
    splits = (("train2017", lambda k: f"{k + 1:012d}", num_train), ("val2017", lambda k: f"{k + 1001:012d}", num_val))
    return _make_pairs(root, splits, COCO_SIZES, "images", "labels", values, seed)


def make_ade20k(root, num_train=3, num_val=2, seed=0, values=None):
    """``images/{training,validation}/ADE_*.jpg`` and ``annotations/...`` (0 = other, 1-150)."""
    values = values if values is not None else [0, 1, 2, 3, 13, 77, 150]
    splits = (("training", lambda k: f"ADE_train_{k + 1:08d}", num_train),
              ("validation", lambda k: f"ADE_val_{k + 1:08d}", num_val))
    return _make_pairs(root, splits, ADE_SIZES, "images", "annotations", values, seed)


def make_camvid(root, num_train=3, num_val=2, size=(48, 64), seed=0):
    """SegNet's layout: ``{train,val,test}/*.png`` and ``{split}annot/*.png`` (ids 0-10, 11 void)."""
    rng = np.random.default_rng(seed)
    labels = {}
    for split, count in (("train", num_train), ("val", num_val), ("test", 1)):
        for k in range(count):
            name = f"0001TP_{split}{k:04d}.png"
            _write(os.path.join(root, split, name), rng.integers(0, 256, (*size, 3), np.uint8), True)
            labels[(split, name)] = label = _blocks(rng, size, list(range(12)))
            _write(os.path.join(root, split + "annot", name), label)
    return labels


def make_camvid_original(root, segnet_root, size=(48, 64), seed=0):
    """The original release beside SegNet's folder: ``701_StillsRaw_full/<name>`` and the
    colour-coded ``LabelApproved_full/<stem>_L.png`` for every name of ``segnet_root``'s splits.
    Returns ``{name: RGB label}``."""
    from bisenet.data import camvid

    rng = np.random.default_rng(seed)
    colours = list(camvid.COLOUR_CLASSES)
    labels = {}
    for split in ("train", "val", "test"):
        for name in sorted(os.listdir(os.path.join(segnet_root, split))):
            _write(os.path.join(root, "701_StillsRaw_full", name), rng.integers(0, 256, (*size, 3), np.uint8), True)
            index = _blocks(rng, size, list(range(len(colours))))
            labels[name] = rgb = np.asarray(colours, np.uint8)[index]
            _write(os.path.join(root, "LabelApproved_full", name[:-4] + "_L.png"), rgb, True)
    return labels
