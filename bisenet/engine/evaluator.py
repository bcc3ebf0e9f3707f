"""Evaluation loop: a loader of (image, label) -> confusion matrix -> scores."""
import collections
import dataclasses
import math
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Optional, Tuple

import numpy as np
import torch
from tabulate import tabulate

from bisenet import distributed
from bisenet.data.cityscapes import colorize
from bisenet.data.loaders import build_eval_loader
from bisenet.errors import UserError, require
from bisenet.inference import check_scales, crop_stride_of, parse_mode, predict
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


@dataclasses.dataclass(frozen=True)
class EvalMode:
    """How an evaluation predicts (``bisenet.inference.predict``'s options): at ``scales``, with
    or without the flip, in sliding crops of ``crop_size`` every ``crop_stride`` (both resolved,
    so that what is printed is what runs), under ``protocol`` with ``short_side``. The default is
    the single-scale mode of the standard protocol."""

    scales: Tuple[float, ...] = (1.0,)
    flip: bool = False
    crop_size: Optional[Tuple[int, int]] = None
    crop_stride: Optional[Tuple[int, int]] = None
    protocol: str = "standard"
    short_side: int = 0

    @property
    def name(self):
        return mode_name(self.scales, self.flip, self.crop_size)


@torch.no_grad()
def evaluate(model, loader, num_classes, device, ignore_index=255, mode=EvalMode(), save_pred_dir=None,
             progress=True):
    """Scores of ``model`` over ``loader`` (summed over processes when distributed), predicting
    as ``mode`` (an ``EvalMode``) says.

    Predictions are made at each label's full resolution under the mode's protocol (see
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
        for batch in progress_bar(loader, progress, desc=f"evaluate {mode.name}"):
            images = batch["image"].to(device, non_blocking=True)
            labels = batch["label"].to(device, non_blocking=True)
            pred = predict(model, images, num_classes, out_size=labels.shape[-2:], scales=mode.scales, flip=mode.flip,
                           crop_size=mode.crop_size, crop_stride=mode.crop_stride, protocol=mode.protocol,
                           short_side=mode.short_side)
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
    """The ``EvalMode`` of a mode name under ``eval_cfg``: its scales (``scales`` for a
    multi-scale mode, else ``eval.scales``), crop size and stride (``crop_size`` and
    ``crop_stride`` for a crop mode, else ``eval.crop_size`` and 2/3 of it) and protocol."""
    multi_scale, crop, flip = parse_mode(mode)
    return _settings(eval_cfg, (scales or eval_cfg.scales) if multi_scale else (1.0,), flip,
                     (crop_size or eval_cfg.crop_size) if crop else None, crop_stride)


def _settings(eval_cfg, scales, flip, crop_size, crop_stride):
    """The ``EvalMode`` of one mode, stride resolved, so that what is printed is what runs."""
    crop_size = tuple(crop_size) if crop_size else None
    return EvalMode(scales=check_scales(tuple(scales)), flip=flip, crop_size=crop_size,
                    crop_stride=crop_stride_of(crop_size, crop_stride) if crop_size else None,
                    protocol=eval_cfg.protocol, short_side=eval_cfg.short_side)


@dataclasses.dataclass(frozen=True)
class ModeChoice:
    """``tools/evaluate.py``'s options that choose the modes: ``modes`` ("ss,msf" or "all") with
    ``scales`` for its multi-scale modes and ``crop_size`` / ``crop_stride`` for its crop modes;
    or, without ``modes``, the one mode ``msc``, ``flip`` and ``crop`` describe (``scales``
    implies ``msc``, ``crop_size`` and ``crop_stride`` imply ``crop``)."""

    modes: Optional[str] = None
    msc: bool = False
    flip: bool = False
    crop: bool = False
    scales: Optional[Tuple[float, ...]] = None
    crop_size: Optional[Tuple[int, int]] = None
    crop_stride: Optional[Tuple[int, int]] = None


def evaluation_modes(eval_cfg, choice=ModeChoice()):
    """The ``EvalMode`` of each mode that ``choice`` (a ``ModeChoice``) picks under
    ``eval_cfg``. Options that would be ignored or that contradict ``choice.modes`` are refused,
    naming both."""
    modes, scales, crop_size, crop_stride = choice.modes, choice.scales, choice.crop_size, choice.crop_stride
    if not modes:
        scales = scales or (eval_cfg.scales if choice.msc else (1.0,))
        crop_size = crop_size or (eval_cfg.crop_size if choice.crop or crop_stride else None)
        return [_settings(eval_cfg, scales, choice.flip, crop_size, crop_stride)]
    for option, given, what in (("--msc", choice.msc, "the scales"), ("--flip", choice.flip, "the flip"),
                                ("--crop", choice.crop, "the sliding crops")):
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
    ran = [mode.name for mode in settings]
    for index, name in enumerate(ran):
        if name in ran[:index]:
            first, second = names[ran.index(name)], names[index]
            if first == second:
                raise UserError(f"--modes {modes} lists {first} twice: list each mode once")
            raise UserError(f"--modes {modes} runs {first} and {second} the same way, as {name} (scales "
                            f"{list(settings[index].scales)}): list one of them")
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
    """Evaluate ``model`` on the validation split of ``cfg`` in each of ``modes`` (``EvalMode``),
    the images shared out over the processes of the current process group, if any. Returns
    ``{mode name: scores}``."""
    loader = build_eval_loader(cfg, distributed.get_rank(), distributed.get_world_size())
    results = {}
    for mode in modes:
        results[mode.name] = evaluate(model, loader, cfg.model.num_classes, device, cfg.data.ignore_index, mode,
                                      prediction_dir(save_pred_dir, mode.name, len(modes)), progress)
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
    for name, mode in zip(results, modes):
        crop = mode.crop_size
        lines.append(f"{name}: scales {list(mode.scales)}, flip {mode.flip}, crop {list(crop) if crop else None}, "
                     + (f"stride {list(crop_stride_of(crop, mode.crop_stride))}, " if crop else "")
                     + (f"short side {mode.short_side}, " if mode.short_side else "")
                     + f"protocol {mode.protocol}, {results[name]['num_images']} images, "
                     f"{distributed.get_world_size()} process(es){runtime_text(runtime)}")
    if len(results) == 1:
        lines.append(format_scores(next(iter(results.values())), class_names))
    else:
        lines.append(format_mode_table(results, class_names))
    return "\n".join(lines)


def plain_settings(mode):
    """An ``EvalMode``'s fields with lists for tuples, as JSON holds them."""
    return {key: list(value) if isinstance(value, tuple) else value for key, value in dataclasses.asdict(mode).items()}


@dataclasses.dataclass(frozen=True)
class EvalOutputs:
    """What an evaluation writes besides the printed table: the predictions (``prediction_dir``),
    the scores as JSON, and the pictures (drawn by ``bisenet.plots.evaluation``)."""

    save_pred_dir: Optional[str] = None
    json_path: Optional[str] = None
    plots_dir: Optional[str] = None

    def check(self):
        """Refuse now, before any work, an output that could not be written (and the pictures
        without matplotlib), naming the option."""
        if self.plots_dir:
            require("matplotlib", "plot", "evaluate --plots")
            check_output_dir(self.plots_dir, "--plots")
        if self.save_pred_dir:
            check_output_dir(self.save_pred_dir, "--save-pred")
        if self.json_path:
            check_output_file(self.json_path, "--json")


def report(results, modes, class_names, outputs=EvalOutputs(), runtime=None, **json_settings):
    """On the main process: print ``report_text``, write the scores to ``outputs.json_path`` (with
    ``json_settings``) and say where the predictions were saved."""
    if not distributed.is_main_process():
        return
    print(report_text(results, modes, class_names, runtime))
    if outputs.json_path:
        entries = {name: result_to_dict(results[name], class_names, mode=name, **plain_settings(mode),
                                        **json_settings)
                   for name, mode in zip(results, modes)}
        write_json(outputs.json_path, next(iter(entries.values())) if len(entries) == 1 else {"modes": entries})
    for name, result in results.items() if outputs.save_pred_dir else ():
        folder = prediction_dir(outputs.save_pred_dir, name, len(results))
        if result.get("saved_predictions"):
            print(f"predictions{'' if len(results) == 1 else f' of {name}'}: {result['saved_predictions']} "
                  f"images in {os.path.join(folder, 'labelIds')} (labelIds, official format) and "
                  f"{os.path.join(folder, 'color')}")
