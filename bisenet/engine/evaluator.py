"""Evaluation loop: a loader of (image, label) -> confusion matrix -> scores."""
import json
import math
import os
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import torch
from tabulate import tabulate
from tqdm import tqdm

from bisenet import distributed
from bisenet.checkpoint import load_weights
from bisenet.data import build_eval_loader
from bisenet.data.cityscapes import colorize
from bisenet.inference import predict
from bisenet.metrics import ConfusionMatrix, scores
from bisenet.models import build_model


class PredictionWriter:
    """Writes each prediction as a single-channel PNG in the dataset's own label values
    (``encode``, the inverse of the label map: Cityscapes labelIds, the format of the official
    evaluator and test server) under ``<out_dir>/labelIds/<city>/`` and its colouring under
    ``<out_dir>/color/<city>/``, named after the image. Files are written by background threads
    so the loop never waits on PNG encoding."""

    def __init__(self, out_dir, encode, palette):
        self.out_dir = out_dir
        self.encode = encode
        self.palette = palette
        self.pool = ThreadPoolExecutor(max_workers=2)
        self.pending = []

    def write(self, preds, image_paths):
        preds = preds.to(torch.uint8).cpu().numpy()
        for pred, path in zip(preds, image_paths):
            self.pending.append(self.pool.submit(self._write_one, pred, path))

    def _write_one(self, pred, image_path):
        city = os.path.basename(os.path.dirname(image_path))
        name = os.path.splitext(os.path.basename(image_path))[0] + ".png"
        for kind, image in (("labelIds", self.encode(pred)), ("color", colorize(pred, self.palette)[:, :, ::-1])):
            folder = os.path.join(self.out_dir, kind, city)
            os.makedirs(folder, exist_ok=True)
            if not cv2.imwrite(os.path.join(folder, name), np.ascontiguousarray(image)):
                raise OSError(f"could not write {os.path.join(folder, name)}")

    def close(self):
        for future in self.pending:
            future.result()  # re-raises a failed write
        self.pool.shutdown()


@torch.no_grad()
def evaluate(model, loader, num_classes, device, ignore_index=255, scales=(1.0,), flip=False,
             crop_size=None, crop_stride=None, save_pred_dir=None, progress=True):
    """Scores of ``model`` over ``loader`` (summed over processes when distributed).

    Predictions are made at each label's full resolution; with ``save_pred_dir`` they are also
    written in the official Cityscapes result format (see ``PredictionWriter``).
    """
    was_training = model.training
    model.eval()
    matrix = ConfusionMatrix(num_classes, ignore_index, device)
    writer = None
    if save_pred_dir:
        dataset = loader.dataset
        writer = PredictionWriter(save_pred_dir, dataset.decode_label.encode, dataset.palette)
    num_images = 0
    for batch in tqdm(loader, desc="evaluate", dynamic_ncols=True,
                      disable=not (progress and distributed.is_main_process())):
        images = batch["image"].to(device, non_blocking=True)
        labels = batch["label"].to(device, non_blocking=True)
        pred = predict(model, images, num_classes, out_size=labels.shape[-2:], scales=scales, flip=flip,
                       crop_size=crop_size, crop_stride=crop_stride)
        matrix.update(pred, labels)
        num_images += len(images)
        if writer:
            writer.write(pred, batch["path"])
    if writer:
        writer.close()
    model.train(was_training)
    counted = torch.tensor([num_images], device=device)
    distributed.all_reduce_sum(counted)
    result = scores(matrix.reduce().counts)
    result["confusion_matrix"] = matrix.counts.cpu()
    result["num_images"] = int(counted.item())
    return result


def mode_name(scales, flip, crop_size):
    """The reference table's names: ss, ssc, msf, mscf (and the other combinations)."""
    multi = tuple(scales) != (1.0,)
    return ("ms" if multi else "ss") + ("c" if crop_size else "") + ("f" if flip else "")


def format_scores(result, class_names):
    """A per-class table followed by the means, as text."""
    rows = [[name, _pct(iou), _pct(acc)] for name, iou, acc in zip(class_names, result["iou"], result["acc"])]
    table = tabulate(rows, headers=["class", "IoU", "Acc"], tablefmt="github", floatfmt=".2f")
    summary = tabulate([[_pct(result["miou"]), _pct(result["macc"]), _pct(result["aacc"])]],
                       headers=["mIoU", "mAcc", "aAcc"], tablefmt="github", floatfmt=".2f")
    return f"{table}\n\n{summary}"


def scores_to_json(result, class_names, path, **settings):
    """Write the scores (fractions in [0, 1]; NaN as null) and the evaluation settings."""
    def number(value):
        return None if not math.isfinite(value) else float(value)

    data = {
        **settings,
        "num_images": result.get("num_images"),
        "miou": number(result["miou"]),
        "macc": number(result["macc"]),
        "aacc": number(result["aacc"]),
        "per_class": {name: {"iou": number(iou), "acc": number(acc)}
                      for name, iou, acc in zip(class_names, result["iou"], result["acc"])},
        "confusion_matrix": result["confusion_matrix"].tolist(),
    }
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(data, f, indent=2)


def _pct(value):
    return float("nan") if not np.isfinite(value) else 100.0 * float(value)


def evaluate_weights(cfg, weights, device, scales=(1.0,), flip=False, crop_size=None, crop_stride=None,
                     save_pred_dir=None, json_path=None, fast=False, progress=True):
    """Load ``weights`` into the model of ``cfg``, evaluate on the validation split (sharing the
    images out over the processes of the current process group, if any), print the table on
    the main process, and optionally save predictions and a JSON file. Returns the scores."""
    model = build_model(cfg)
    load_weights(model, weights)
    model.to(device).eval()
    if fast:
        from bisenet.deploy import make_fast

        model = make_fast(model, device)
    loader = build_eval_loader(cfg, distributed.get_rank(), distributed.get_world_size())
    result = evaluate(model, loader, cfg.model.num_classes, device, cfg.data.ignore_index, scales=scales, flip=flip,
                      crop_size=crop_size, crop_stride=crop_stride, save_pred_dir=save_pred_dir, progress=progress)
    if distributed.is_main_process():
        names = cfg.data.class_names
        mode = mode_name(scales, flip, crop_size)
        print(f"{mode}: scales {list(scales)}, flip {flip}, crop {crop_size}, {result['num_images']} images, "
              f"{distributed.get_world_size()} process(es){', fast inference' if fast else ''}")
        print(format_scores(result, names))
        if json_path:
            scores_to_json(result, names, json_path, mode=mode, weights=weights, scales=list(scales), flip=flip,
                           crop_size=list(crop_size) if crop_size else None,
                           crop_stride=list(crop_stride) if crop_stride else None)
        if save_pred_dir:
            print(f"predictions: {save_pred_dir}/labelIds (labelIds, official format), {save_pred_dir}/color")
    return result
