"""Evaluation loop: a loader of (image, label) -> confusion matrix -> scores."""
import collections
import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from tabulate import tabulate

from bisenet import distributed
from bisenet.checkpoint import read_state_dict
from bisenet.data.cityscapes import colorize
from bisenet.data.loaders import build_eval_loader
from bisenet.errors import UserError
from bisenet.inference import check_scales, crop_stride_of, load_model, parse_mode, predict
from bisenet.metrics import ConfusionMatrix, scores
from bisenet.outputs import check_output_dir, check_output_file, write_image, write_json
from bisenet.progress import progress_bar


class PredictionWriter:
    """Writes each prediction as a single-channel PNG in the dataset's own label values
    (``encode``, the inverse of the label map: Cityscapes labelIds, the format of the official
    evaluator and test server) under ``<out_dir>/labelIds/<city>/`` and its colouring under
    ``<out_dir>/color/<city>/``, named after the image. Files are written atomically by
    background threads so the loop never waits on PNG encoding; a failed write is raised at the
    next batch, not after the whole evaluation."""

    def __init__(self, out_dir, encode, palette):
        self.out_dir = out_dir
        self.encode = encode
        self.palette = palette
        self.pool = ThreadPoolExecutor(max_workers=2)
        self.pending = collections.deque()
        self.count = 0

    def write(self, preds, image_paths):
        while self.pending and self.pending[0].done():
            self.pending.popleft().result()  # re-raises a failed write
        preds = preds.to(torch.uint8).cpu().numpy()
        for pred, path in zip(preds, image_paths):
            self.pending.append(self.pool.submit(self._write_one, pred, path))
            self.count += 1

    def _write_one(self, pred, image_path):
        city = os.path.basename(os.path.dirname(image_path))
        name = os.path.splitext(os.path.basename(image_path))[0] + ".png"
        for kind, image in (("labelIds", self.encode(pred)), ("color", colorize(pred, self.palette))):
            write_image(os.path.join(self.out_dir, kind, city, name), image)

    def close(self, cancel=False):
        """Wait for the files to be written (re-raising a failed write); with ``cancel``, after
        a failure elsewhere, drop those not started."""
        try:
            while self.pending and not cancel:
                self.pending.popleft().result()
        finally:
            self.pool.shutdown(cancel_futures=True)


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
    try:
        for batch in progress_bar(loader, progress, desc=f"evaluate {mode_name(scales, flip, crop_size)}"):
            images = batch["image"].to(device, non_blocking=True)
            labels = batch["label"].to(device, non_blocking=True)
            pred = predict(model, images, num_classes, out_size=labels.shape[-2:], scales=scales, flip=flip,
                           crop_size=crop_size, crop_stride=crop_stride, protocol=protocol, short_side=short_side)
            matrix.update(pred, labels)
            num_images += len(images)
            if writer:
                writer.write(pred, batch["path"])
    except BaseException:
        if writer:
            writer.close(cancel=True)
        raise
    if writer:
        writer.close()
    model.train(was_training)
    counted = torch.tensor([num_images, writer.count if writer else 0], device=device)
    distributed.all_reduce_sum(counted)
    result = scores(matrix.reduce().counts)
    result["confusion_matrix"] = matrix.counts.cpu()
    result["num_images"] = int(counted[0].item())
    if writer:
        result["saved_predictions"] = int(counted[1].item())
    return result


def mode_name(scales, flip, crop_size):
    """The reference table's names: ss, ssc, msf, mscf (and the other combinations)."""
    multi = tuple(scales) != (1.0,)
    return ("ms" if multi else "ss") + ("c" if crop_size else "") + ("f" if flip else "")


ALL_MODES = ("ss", "ssc", "msf", "mscf")


def mode_settings(mode, eval_cfg, scales=None, crop_size=None, crop_stride=None):
    """``evaluate`` keyword arguments of a mode name under ``eval_cfg``: its scales (``scales``
    for a multi-scale mode, else ``eval.scales``), crop size and stride (``crop_size`` and
    ``crop_stride`` for a crop mode, else ``eval.crop_size`` and 2/3 of it) and protocol."""
    multi_scale, crop, flip = parse_mode(mode)
    return _settings(eval_cfg, (scales or eval_cfg.scales) if multi_scale else (1.0,), flip,
                     (crop_size or eval_cfg.crop_size) if crop else None, crop_stride)


def _settings(eval_cfg, scales, flip, crop_size, crop_stride):
    """The settings of one mode, stride resolved, so that what is printed is what runs."""
    crop_size = tuple(crop_size) if crop_size else None
    return {"scales": check_scales(tuple(scales)), "flip": flip, "crop_size": crop_size,
            "crop_stride": crop_stride_of(crop_size, crop_stride) if crop_size else None,
            "protocol": eval_cfg.protocol, "short_side": eval_cfg.short_side}


def evaluation_modes(eval_cfg, modes=None, msc=False, flip=False, crop=False, scales=None, crop_size=None,
                     crop_stride=None):
    """The modes ``tools/evaluate.py`` runs, from its options: ``modes`` ("ss,msf" or "all")
    with ``scales`` for its multi-scale modes and ``crop_size`` / ``crop_stride`` for its crop
    modes; or, without ``modes``, the one mode ``msc``, ``flip`` and ``crop`` describe (``scales``
    implies ``msc``, ``crop_size`` and ``crop_stride`` imply ``crop``). Options that would be
    ignored or that contradict ``modes`` are refused, naming both."""
    if not modes:
        scales = scales or (eval_cfg.scales if msc else (1.0,))
        crop_size = crop_size or (eval_cfg.crop_size if crop or crop_stride else None)
        return [_settings(eval_cfg, scales, flip, crop_size, crop_stride)]
    for option, given, what in (("--msc", msc, "the scales"), ("--flip", flip, "the flip"),
                                ("--crop", crop, "the sliding crops")):
        if given:
            raise UserError(f"{option} and --modes both choose {what}: give one")
    names = list(ALL_MODES) if modes == "all" else [name.strip() for name in modes.split(",")]
    parsed = [parse_mode(name) for name in names]
    if scales and not any(multi_scale for multi_scale, _, _ in parsed):
        raise UserError(f"--scales applies to the multi-scale modes (ms...) and --modes {modes} has none: add one, "
                        "or drop --scales")
    for option, given in (("--crop-size", crop_size), ("--crop-stride", crop_stride)):
        if given and not any(cropped for _, cropped, _ in parsed):
            raise UserError(f"{option} applies to the crop modes (ssc, mscf...) and --modes {modes} has none: add "
                            f"one, or drop {option}")
    settings = [mode_settings(name, eval_cfg, scales, crop_size, crop_stride) for name in names]
    ran = [mode_name(s["scales"], s["flip"], s["crop_size"]) for s in settings]
    for index, name in enumerate(ran):
        if name in ran[:index]:
            first, second = names[ran.index(name)], names[index]
            if first == second:
                raise UserError(f"--modes {modes} lists {first} twice: list each mode once")
            raise UserError(f"--modes {modes} runs {first} and {second} the same way, as {name} (scales "
                            f"{list(settings[index]['scales'])}): list one of them")
    return settings


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
                                 save_pred_dir=prediction_dir(save_pred_dir, name, len(modes)), progress=progress)
    return results


def prediction_dir(save_pred_dir, mode, num_modes):
    """Where a mode's predictions go: ``save_pred_dir`` itself for one mode (the layout the
    official evaluator reads), ``save_pred_dir/<mode>`` for each of several."""
    if not save_pred_dir:
        return None
    return save_pred_dir if num_modes == 1 else os.path.join(save_pred_dir, mode)


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
        crop, stride = settings["crop_size"], settings.get("crop_stride")
        lines.append(f"{name}: scales {list(settings['scales'])}, flip {settings['flip']}, "
                     f"crop {list(crop) if crop else None}, "
                     + (f"stride {list(crop_stride_of(crop, stride))}, " if crop else "")
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
        write_json(json_path, next(iter(entries.values())) if len(entries) == 1 else {"modes": entries})


def plain_settings(settings):
    """Mode settings with lists for tuples, as JSON holds them."""
    return {key: list(value) if isinstance(value, tuple) else value for key, value in settings.items()}


def evaluate_weights(cfg, weights, device, modes, save_pred_dir=None, json_path=None, runtime=None, progress=True,
                     ema=False):
    """Load ``weights`` (with ``ema``, the EMA weights that the checkpoint holds) into the model of
    ``cfg``, evaluate it in each of ``modes`` (see ``evaluate_modes``), print the results on the
    main process, and optionally save the predictions (``prediction_dir``) and a JSON file,
    whose paths are checked first. Returns ``{mode name: scores}``."""
    if save_pred_dir:
        check_output_dir(save_pred_dir, "--save-pred")
    if json_path:
        check_output_file(json_path, "--json")
    model = load_model(cfg, read_state_dict(weights, ema=True) if ema else weights, device, **(runtime or {}))
    results = evaluate_modes(cfg, model, device, modes, save_pred_dir, progress)
    report(results, modes, cfg.data.class_names, runtime, json_path, weights=weights, ema=ema)
    if save_pred_dir and distributed.is_main_process():
        for name, result in results.items():
            folder = prediction_dir(save_pred_dir, name, len(results))
            if result.get("saved_predictions"):
                print(f"predictions{'' if len(results) == 1 else f' of {name}'}: {result['saved_predictions']} "
                      f"images in {os.path.join(folder, 'labelIds')} (labelIds, official format) and "
                      f"{os.path.join(folder, 'color')}")
    return results
