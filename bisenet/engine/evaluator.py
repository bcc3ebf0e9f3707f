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
from bisenet.checkpoint import read_state_dict
from bisenet.data import build_eval_loader
from bisenet.data.cityscapes import colorize
from bisenet.inference import load_model, parse_mode, predict
from bisenet.metrics import ConfusionMatrix, scores


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
             crop_size=None, crop_stride=None, protocol="standard", short_side=0, save_pred_dir=None, progress=True):
    """Scores of ``model`` over ``loader`` (summed over processes when distributed).

    Predictions are made at each label's full resolution under ``protocol`` (see
    ``bisenet.inference``); with ``save_pred_dir`` they are also written in the official
    Cityscapes result format (see ``PredictionWriter``).
    """
    was_training = model.training
    model.eval()
    matrix = ConfusionMatrix(num_classes, ignore_index, device)
    writer = None
    if save_pred_dir:
        dataset = loader.dataset
        writer = PredictionWriter(save_pred_dir, dataset.decode_label.encode, dataset.palette)
    num_images = 0
    for batch in tqdm(loader, desc=f"evaluate {mode_name(scales, flip, crop_size)}", dynamic_ncols=True,
                      disable=not (progress and distributed.is_main_process())):
        images = batch["image"].to(device, non_blocking=True)
        labels = batch["label"].to(device, non_blocking=True)
        pred = predict(model, images, num_classes, out_size=labels.shape[-2:], scales=scales, flip=flip,
                       crop_size=crop_size, crop_stride=crop_stride, protocol=protocol, short_side=short_side)
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


def mode_settings(mode, eval_cfg):
    """``evaluate`` keyword arguments of a mode name under ``eval_cfg``: its scales, crop size
    and protocol."""
    multi_scale, crop, flip = parse_mode(mode)
    return {"scales": tuple(eval_cfg.scales) if multi_scale else (1.0,), "flip": flip,
            "crop_size": tuple(eval_cfg.crop_size) if crop else None, "crop_stride": None,
            "protocol": eval_cfg.protocol, "short_side": eval_cfg.short_side}


def format_scores(result, class_names):
    """A per-class table followed by the means, as text."""
    rows = [[name, _pct(iou), _pct(acc)] for name, iou, acc in zip(class_names, result["iou"], result["acc"])]
    table = tabulate(rows, headers=["class", "IoU", "Acc"], tablefmt="github", floatfmt=".2f")
    summary = tabulate([[_pct(result[key]) for key in ("miou", "fwiou", "macc", "aacc")]],
                       headers=["mIoU", "fwIoU", "mAcc", "aAcc"], tablefmt="github", floatfmt=".2f")
    return f"{table}\n\n{summary}"


def format_mode_table(results, class_names):
    """Several modes side by side, as the reference prints them: per-class IoU, then the means."""
    modes = list(results)
    rows = [[name] + [_pct(results[m]["iou"][c]) for m in modes] for c, name in enumerate(class_names)]
    rows.append([None] * (len(modes) + 1))
    for key, title in (("miou", "mIoU"), ("fwiou", "fwIoU"), ("macc", "mAcc"), ("aacc", "aAcc")):
        rows.append([title] + [_pct(results[m][key]) for m in modes])
    return tabulate(rows, headers=["IoU"] + modes, tablefmt="github", floatfmt=".2f", missingval="")


def result_to_dict(result, class_names, **settings):
    """The scores as plain types (fractions in [0, 1]; NaN as None) with the evaluation settings."""
    def number(value):
        return None if not math.isfinite(value) else float(value)

    return {
        **settings,
        "num_images": result.get("num_images"),
        **{key: number(result[key]) for key in ("miou", "fwiou", "macc", "mf1", "aacc")},
        "per_class": {name: {"iou": number(iou), "acc": number(acc), "f1": number(f1)}
                      for name, iou, acc, f1 in zip(class_names, result["iou"], result["acc"], result["f1"])},
        "confusion_matrix": result["confusion_matrix"].tolist(),
    }


def write_json(data, path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(data, f, indent=2)


def _pct(value):
    return float("nan") if not np.isfinite(value) else 100.0 * float(value)


def evaluate_modes(cfg, model, device, modes, save_pred_dir=None, progress=True):
    """Evaluate ``model`` on the validation split of ``cfg`` in each of ``modes`` (dicts of
    ``evaluate`` keyword arguments, named by ``mode_name``), the images shared out over the
    processes of the current process group, if any. Returns ``{mode name: scores}``."""
    loader = build_eval_loader(cfg, distributed.get_rank(), distributed.get_world_size())
    results = {}
    for settings in modes:
        name = mode_name(settings["scales"], settings["flip"], settings["crop_size"])
        results[name] = evaluate(model, loader, cfg.model.num_classes, device, cfg.data.ignore_index, **settings,
                                 save_pred_dir=save_pred_dir if len(modes) == 1 else None, progress=progress)
    return results


def runtime_text(runtime):
    """", fast inference (int8)" for ``load_model``'s runtime keywords, "" for eager."""
    runtime = runtime or {}
    precision = runtime.get("precision", "auto")
    if not runtime.get("fast") and precision == "auto":
        return ""
    return ", fast inference" + ("" if precision == "auto" else f" ({precision})")


def report_text(results, modes, class_names, runtime=None):
    """Each mode's settings line, then its table (several modes: one table side by side, as the
    reference prints them)."""
    lines = []
    for name, settings in zip(results, modes):
        crop = settings["crop_size"]
        lines.append(f"{name}: scales {list(settings['scales'])}, flip {settings['flip']}, "
                     f"crop {list(crop) if crop else None}, "
                     + (f"short side {settings['short_side']}, " if settings.get("short_side") else "")
                     + f"protocol {settings['protocol']}, {results[name]['num_images']} images, "
                     f"{distributed.get_world_size()} process(es){runtime_text(runtime)}")
    if len(results) == 1:
        lines.append(format_scores(next(iter(results.values())), class_names))
    else:
        lines.append(format_mode_table(results, class_names))
    return "\n".join(lines)


def report(results, modes, class_names, runtime=None, json_path=None, **json_settings):
    """Print ``report_text`` and write the scores to ``json_path``; main process only."""
    if not distributed.is_main_process():
        return
    print(report_text(results, modes, class_names, runtime))
    if json_path:
        entries = {name: result_to_dict(results[name], class_names, mode=name, **plain_settings(settings),
                                        **json_settings)
                   for name, settings in zip(results, modes)}
        write_json(next(iter(entries.values())) if len(entries) == 1 else {"modes": entries}, json_path)


def plain_settings(settings):
    """Mode settings with lists for tuples, as JSON holds them."""
    return {key: list(value) if isinstance(value, tuple) else value for key, value in settings.items()}


def evaluate_weights(cfg, weights, device, modes, save_pred_dir=None, json_path=None, runtime=None, progress=True,
                     ema=False):
    """Load ``weights`` (with ``ema``, the EMA weights that the checkpoint holds) into the model of
    ``cfg``, evaluate it in each of ``modes`` (see ``evaluate_modes``), print the results on the
    main process, and optionally save the predictions (one mode) and a JSON file. Returns
    ``{mode name: scores}``."""
    model = load_model(cfg, read_state_dict(weights, ema=True) if ema else weights, device, **(runtime or {}))
    results = evaluate_modes(cfg, model, device, modes, save_pred_dir, progress)
    report(results, modes, cfg.data.class_names, runtime, json_path, weights=weights, ema=ema)
    if save_pred_dir and distributed.is_main_process():
        print(f"predictions: {save_pred_dir}/labelIds (labelIds, official format), {save_pred_dir}/color")
    return results
