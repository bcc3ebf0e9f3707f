"""Throughput of the training data pipeline on full Cityscapes-size (1024x2048) inputs.

  python benchmarks/data_loader.py [--images 8] [--root DIR]

Times one loader worker's work per image (PNG decode, labelId mapping, random scale 0.75-2.0,
1024x1024 crop, flip, colour jitter, normalisation) in this process, so images/s is per worker.
Without --root it writes a few synthetic 1024x2048 scenes to a temporary folder first.
"""
import argparse
import tempfile
import time

import numpy as np

from bisenet.config import load_config
from bisenet.data import build_dataset
from bisenet.data.synthetic import make_synthetic_cityscapes


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
    print(f"one worker: {1000 * seconds:.1f} ms/image, {1 / seconds:.1f} images/s at 1024x2048 input, crop "
          f"{cfg.data.crop_size[0]}x{cfg.data.crop_size[1]}")
    for workers in (1, 2, 4, 8):
        print(f"  {workers} workers: about {workers / seconds:.0f} images/s (with a core each)")


if __name__ == "__main__":
    main()
