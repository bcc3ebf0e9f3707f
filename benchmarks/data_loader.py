"""Throughput of the training data pipeline on full Cityscapes-size (1024x2048) inputs.

  python benchmarks/data_loader.py [--images 8] [--root DIR]

Times one loader worker's work per image (PNG decode, labelId mapping and check, random scale
0.75-2.0, 1024x1024 crop, flip, colour jitter, normalisation) in this process, so images/s is
per worker, against a plain cv2/numpy version of the same steps written the obvious way.
Without --root it writes a few synthetic 1024x2048 scenes to a temporary folder first.
"""
import argparse
import tempfile
import time

import cv2
import numpy as np
import torch

from bisenet.config_check import load_config
from bisenet.data.loaders import build_dataset
from bisenet.data.synthetic import make_synthetic_cityscapes


def plain_cv2(image_path, label_path, lookup, data_cfg, rng):
    """The baseline: the same augmentation as straightforward cv2 + numpy float code."""
    image = cv2.cvtColor(cv2.imread(image_path, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    label = lookup[cv2.imread(label_path, cv2.IMREAD_GRAYSCALE)]
    scale = rng.uniform(*data_cfg.scale_range)
    size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
    image = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    label = cv2.resize(label, size, interpolation=cv2.INTER_NEAREST)
    crop_h, crop_w = data_cfg.crop_size
    pad_h, pad_w = max(crop_h - size[1], 0), max(crop_w - size[0], 0)
    image = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)))
    label = np.pad(label, ((0, pad_h), (0, pad_w)), constant_values=255)
    top = rng.integers(0, image.shape[0] - crop_h + 1)
    left = rng.integers(0, image.shape[1] - crop_w + 1)
    image, label = image[top:top + crop_h, left:left + crop_w], label[top:top + crop_h, left:left + crop_w]
    if rng.random() < 0.5:
        image, label = image[:, ::-1], label[:, ::-1]
    x = image.astype(np.float32) * rng.uniform(0.6, 1.4)
    gray = x @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    x = (x - gray.mean()) * rng.uniform(0.6, 1.4) + gray.mean()
    gray = x @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    x = np.clip((x - gray[..., None]) * rng.uniform(0.6, 1.4) + gray[..., None], 0, 255)
    x = (x / 255 - np.array(data_cfg.mean, np.float32)) / np.array(data_cfg.std, np.float32)
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1))), torch.from_numpy(label.copy()).long()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--root", help="a Cityscapes root (official layout); default: synthetic")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.root or tmp
        if not args.root:
            make_synthetic_cityscapes(tmp, num_train=args.images, num_val=0, height=1024, width=2048, progress=False)
        cfg = load_config("configs/bisenetv1_city.py", [f"data.root={root}"])
        dataset = build_dataset(cfg.data, train=True)
        count = min(args.images, len(dataset))
        dataset[(0, (0, 0))]  # warm-up
        start = time.perf_counter()
        for position in range(count * args.repeat):
            dataset[(position % count, (0, position))]
        seconds = (time.perf_counter() - start) / (count * args.repeat)
        lookup = dataset.decode_label.lookup
        rng = np.random.default_rng(0)
        start = time.perf_counter()
        for position in range(count * args.repeat):
            plain_cv2(*dataset.samples[position % count], lookup, cfg.data, rng)
        baseline = (time.perf_counter() - start) / (count * args.repeat)
    print(f"bisenet, one worker: {1000 * seconds:.1f} ms/image, {1 / seconds:.1f} images/s at 1024x2048 input, crop "
          f"{cfg.data.crop_size[0]}x{cfg.data.crop_size[1]}")
    print(f"plain cv2 baseline:  {1000 * baseline:.1f} ms/image, {1 / baseline:.1f} images/s")
    for workers in (1, 2, 4, 8):
        print(f"  bisenet with {workers} workers: about {workers / seconds:.0f} images/s (with a core each)")


if __name__ == "__main__":
    main()
