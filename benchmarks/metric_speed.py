"""Speed of the metric: our bincount confusion matrix against the official Cityscapes evaluator.

  python benchmarks/metric_speed.py [--images 500] [--official-images 10]
  python benchmarks/metric_speed.py --classes 19 171 [--images 500]

Ours: the confusion matrix of --images predictions of 1024x2048 (held in memory, as in the
evaluation loop). Official: cityscapesscripts' pixel-level evaluation of the same kind of
predictions saved as labelIds PNGs, timed on --official-images pairs and given per image.
--classes: time per pixel of the confusion matrix of COCO-size (640x480) predictions for each
class count (e.g. Cityscapes' 19 against COCO-Stuff's 171), interleaved, and the ratio to the
first.
"""
import argparse
import glob
import os
import tempfile
import time

import cv2
import numpy as np
import torch

from bisenet.data.cityscapes import ID_TO_TRAIN_ID, TRAIN_ID_TO_ID
from bisenet.metrics import confusion_matrix


def random_pair(rng, height=1024, width=2048):
    """A labelIds ground truth with blocky regions and a prediction that is 80% right."""
    blocks = rng.integers(0, 34, size=(height // 64, width // 64)).astype(np.uint8)
    label_ids = cv2.resize(blocks, (width, height), interpolation=cv2.INTER_NEAREST)
    train_ids = ID_TO_TRAIN_ID[label_ids]
    pred = np.where(rng.random((height, width)) < 0.8, train_ids, rng.integers(0, 19, size=(height, width)))
    pred = np.where(pred == 255, 0, pred).astype(np.uint8)
    return label_ids, train_ids, pred


def class_count_pair(rng, num_classes, height=480, width=640):
    """Train ids in blocks (a tenth ignored) and a prediction that is 80% right."""
    blocks = rng.integers(0, num_classes, size=(height // 16, width // 16))
    blocks[rng.random(blocks.shape) < 0.1] = 255
    label = cv2.resize(blocks.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST)
    pred = np.where(rng.random((height, width)) < 0.8, label, rng.integers(0, num_classes, size=(height, width)))
    pred = np.where(pred == 255, 0, pred).astype(np.uint8)
    return torch.from_numpy(pred).long(), torch.from_numpy(label).long()


def compare_class_counts(class_counts, images, distinct):
    rng = np.random.default_rng(0)
    pairs = {n: [class_count_pair(rng, n) for _ in range(distinct)] for n in class_counts}
    seconds = dict.fromkeys(class_counts, 0.0)
    for i in range(images):  # interleaved, so that a change of clock speed hits every count alike
        for n in class_counts:
            pred, label = pairs[n][i % distinct]
            start = time.perf_counter()
            confusion_matrix(pred, label, n, 255)
            seconds[n] += time.perf_counter() - start
    pixels = images * pairs[class_counts[0]][0][0].numel()
    for n in class_counts:
        print(f"{n} classes: {images} images of 640x480 in {seconds[n]:.3f} s, "
              f"{1e9 * seconds[n] / pixels:.2f} ns/pixel, "
              f"{seconds[n] / seconds[class_counts[0]]:.2f}x the {class_counts[0]}-class time")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--official-images", type=int, default=10)
    parser.add_argument("--distinct", type=int, default=10, help="distinct random pairs, cycled")
    parser.add_argument("--classes", type=int, nargs="+", help="compare these class counts at 640x480")
    args = parser.parse_args()
    if args.classes:
        print(f"{torch.get_num_threads()} threads")
        return compare_class_counts(args.classes, args.images, args.distinct)
    rng = np.random.default_rng(0)
    pairs = [random_pair(rng) for _ in range(args.distinct)]
    tensors = [(torch.from_numpy(p), torch.from_numpy(t)) for _, t, p in pairs]

    counts = torch.zeros(19, 19, dtype=torch.int64)
    start = time.perf_counter()
    for i in range(args.images):
        pred, label = tensors[i % len(tensors)]
        counts += confusion_matrix(pred, label, 19, 255)
    ours = time.perf_counter() - start
    print(f"ours: {args.images} images of 1024x2048 in {ours:.3f} s ({1000 * ours / args.images:.2f} ms/image), "
          f"{torch.get_num_threads()} threads")

    try:
        from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as official
    except ImportError:
        print("official: cityscapesscripts is not installed (pip install cityscapesscripts)")
        return
    with tempfile.TemporaryDirectory() as tmp:
        gt_dir, pred_dir = os.path.join(tmp, "gtFine", "val", "city"), os.path.join(tmp, "pred")
        os.makedirs(gt_dir)
        os.makedirs(pred_dir)
        for i in range(args.official_images):
            label_ids, _, pred = pairs[i % len(pairs)]
            cv2.imwrite(os.path.join(gt_dir, f"city_{i:06d}_000019_gtFine_labelIds.png"), label_ids)
            cv2.imwrite(os.path.join(pred_dir, f"city_{i:06d}_000019_leftImg8bit.png"), TRAIN_ID_TO_ID[pred])
        oargs = official.args
        oargs.evalInstLevelScore, oargs.JSONOutput, oargs.quiet = False, False, True
        oargs.predictionPath, oargs.predictionWalk = pred_dir, None
        gts = sorted(glob.glob(os.path.join(gt_dir, "*.png")))
        preds = [official.getPrediction(oargs, gt) for gt in gts]
        start = time.perf_counter()
        official.evaluateImgLists(preds, gts, oargs)
        theirs = (time.perf_counter() - start) / len(gts)
        start = time.perf_counter()
        for gt, pred in zip(gts, preds):
            confusion_matrix(torch.from_numpy(cv2.imread(pred, cv2.IMREAD_UNCHANGED)),
                             torch.from_numpy(ID_TO_TRAIN_ID[cv2.imread(gt, cv2.IMREAD_UNCHANGED)]), 19)
        ours_files = (time.perf_counter() - start) / len(gts)
    print(f"official: {1000 * theirs:.1f} ms/image from PNG files "
          f"({args.images * theirs:.1f} s for {args.images} images)")
    print(f"ours from the same PNG files: {1000 * ours_files:.1f} ms/image; "
          f"in memory {theirs / (ours / args.images):.0f}x faster, from files {theirs / ours_files:.1f}x faster")


if __name__ == "__main__":
    main()
