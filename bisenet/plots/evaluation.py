"""Pictures of evaluation results: the confusion matrix, the per-class IoU, and two results side
by side (two runs, two modes such as ss and msf, or ours against a published table).

Results are read from what ``tools/evaluate.py --json`` writes (one mode, or ``{"modes": {...}}``)
or from a published table typed by hand, a JSON file of percentages as papers print them::

    {"name": "BiSeNetV1 paper", "miou": 74.8, "iou": {"road": 98.1, "sidewalk": 84.2}}

(``name`` defaults to the file's name, ``miou`` to the mean of the classes listed).
"""
import json
import math
import os
import re
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from bisenet.engine.evaluator import result_to_dict
from bisenet.errors import UserError
from bisenet.outputs import check_output_dir
from bisenet.plots import figure, require_matplotlib, save, short_name

PUBLISHED_FORMAT = '{"name": "BiSeNetV1 paper", "miou": 74.8, "iou": {"road": 98.1, "sidewalk": 84.2, ...}}'
FEATURE = "plotting evaluation results"
NAME_LIMIT = 24  # characters of a class name on an axis


class ResultsFileError(UserError):
    """A results file that is neither an evaluation JSON nor a published table."""


@dataclass
class Scores:
    """One result: per-class IoU as fractions (NaN: not scored), and the confusion matrix
    (rows ground truth, columns prediction) when it was evaluated here."""
    name: str
    class_names: Tuple[str, ...]
    iou: np.ndarray
    miou: float
    confusion_matrix: Optional[np.ndarray] = None
    source: str = ""  # the file it was read from, for messages


def _number(value):
    return float("nan") if value is None else float(value)


def scores_from_evaluation(entry, name, source=""):
    """``Scores`` of one ``result_to_dict`` entry (a mode of an evaluation JSON)."""
    where = source or name
    per_class = entry.get("per_class") if isinstance(entry, dict) else None
    if not isinstance(per_class, dict) or not all(isinstance(v, dict) and "iou" in v for v in per_class.values()):
        raise ResultsFileError(f"{where}: 'per_class' must map each class name to {{\"iou\": ...}}, as "
                               "tools/evaluate.py --json writes it")
    names = tuple(per_class)
    try:
        iou = np.array([_number(v["iou"]) for v in per_class.values()])
        miou = _number(entry.get("miou"))
    except (TypeError, ValueError) as exc:
        raise ResultsFileError(f"{where}: an IoU that is not a number ({exc})") from None
    matrix = entry.get("confusion_matrix")
    if matrix is not None:
        matrix = np.asarray(matrix)
        if matrix.shape != (len(names), len(names)) or not np.issubdtype(matrix.dtype, np.number):
            raise ResultsFileError(f"{where}: 'confusion_matrix' must be {len(names)}x{len(names)} counts (one row "
                                   f"and column per class), got shape {matrix.shape}")
    return Scores(name, names, iou, miou, matrix, source)


def scores_from_published(data, path):
    """``Scores`` of a published table (see the module's docstring)."""
    table = data["iou"]
    if not isinstance(table, dict) or not table:
        raise ResultsFileError(f"{path}: 'iou' must map class names to IoU percentages, e.g. {PUBLISHED_FORMAT}")
    bad = [name for name, value in table.items()
           if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 100]
    if bad:
        raise ResultsFileError(f"{path}: the IoU of {', '.join(repr(b) for b in bad[:5])} is not a percentage "
                               f"between 0 and 100; write e.g. {PUBLISHED_FORMAT}")
    values = np.array([float(v) for v in table.values()])
    if values.max() <= 1 and values.max() > 0:
        raise ResultsFileError(f"{path}: every IoU is at most 1: these look like fractions; write percentages as "
                               f"papers print them (98.1, not 0.981)")
    miou = data.get("miou", float(np.mean(values)))
    if isinstance(miou, bool) or not isinstance(miou, (int, float)) or not 0 <= miou <= 100:
        raise ResultsFileError(f"{path}: 'miou' must be a percentage between 0 and 100, got {miou!r}")
    name = data.get("name", os.path.splitext(os.path.basename(path))[0])
    return Scores(str(name), tuple(table), values / 100, miou / 100, None, path)


def read_scores(spec):
    """The results in a file: ``PATH`` (every mode it holds) or ``PATH:MODE`` (one mode of a
    ``--modes`` evaluation). Named after the file and the mode."""
    path, mode = spec, None
    if not os.path.isfile(spec) and ":" in spec:
        path, mode = spec.rsplit(":", 1)
    if not os.path.isfile(path):
        raise ResultsFileError(f"results file {path} not found; write one with tools/evaluate.py --json FILE, or "
                               f"type a published table as {PUBLISHED_FORMAT}")
    try:
        with open(path) as f:
            data = json.load(f)
    except ValueError as exc:
        raise ResultsFileError(f"{path}: not valid JSON ({exc})") from None
    stem = os.path.splitext(os.path.basename(path))[0]
    if isinstance(data, dict) and isinstance(data.get("modes"), dict):
        entries = data["modes"]
    elif isinstance(data, dict) and "per_class" in data:
        entries = {data.get("mode") or "": data}
    elif isinstance(data, dict) and "iou" in data:
        if mode:
            raise ResultsFileError(f"{path} is a published table: it has no modes (drop ':{mode}')")
        return [scores_from_published(data, path)]
    else:
        raise ResultsFileError(f"{path} is neither an evaluation result (tools/evaluate.py --json: 'per_class' and "
                               f"'confusion_matrix') nor a published table ({PUBLISHED_FORMAT})")
    if mode is not None:
        if mode not in entries:
            raise ResultsFileError(f"{path} has no mode {mode!r}; it holds {', '.join(entries) or 'none'}")
        entries = {mode: entries[mode]}
    return [scores_from_evaluation(entry, _result_name(stem, name), path) for name, entry in entries.items()]


def _result_name(stem, mode):
    """"eval ss" for mode ss of eval.json; "ss" for ss.json, "bisenetv1_msf" for bisenetv1_msf.json."""
    return stem if not mode or mode in re.split(r"[^A-Za-z0-9]+", stem) else f"{stem} {mode}"


def file_stem(name):
    """A file-name-safe form of a result's name."""
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", name).strip("_") or "result"


def _pct(value):
    return "n/a" if not math.isfinite(value) else f"{100 * value:.1f}"


def plot_confusion_matrix(scores, path):
    """Heatmap of the confusion matrix with each row normalised by its ground-truth pixels (in %),
    class names on both axes. The colour scale is a square root, so that the confusions of a few
    percent, the ones worth seeing, are not white. Cells shrink from 0.42 to 0.16 inches as
    classes are added, and the figure grows beyond that, so that 150 classes keep legible
    6-point names; a row without ground truth is grey."""
    if scores.confusion_matrix is None:
        raise ResultsFileError(f"{scores.source or scores.name} holds no confusion matrix (a published table, or "
                               "an evaluation JSON written before it was saved): evaluate with tools/evaluate.py "
                               "--json")
    counts = np.asarray(scores.confusion_matrix, dtype=np.float64)
    n = len(counts)
    with np.errstate(invalid="ignore", divide="ignore"):
        rows = 100 * counts / counts.sum(axis=1, keepdims=True)
    cell = min(0.42, max(0.16, 8 / n))  # inches
    side = n * cell
    font = min(9.0, max(6.0, cell * 72 * 0.55))
    names = [short_name(name, NAME_LIMIT) for name in scores.class_names]
    with figure(FEATURE, figsize=(side, side)) as fig:
        import matplotlib

        axis = fig.add_axes((0, 0, 1, 1))
        colormap = matplotlib.colormaps["Blues"].with_extremes(bad="#d9d9d9")
        image = axis.imshow(np.ma.masked_invalid(rows), cmap=colormap, norm=matplotlib.colors.PowerNorm(0.5, 0, 100),
                            interpolation="nearest")
        axis.set_xticks(range(n), names, rotation=90, fontsize=font)
        axis.set_yticks(range(n), names, fontsize=font)
        axis.set_xticks(np.arange(n + 1) - 0.5, minor=True)
        axis.set_yticks(np.arange(n + 1) - 0.5, minor=True)
        axis.grid(which="minor", color="white", linewidth=0.4)
        axis.tick_params(which="minor", length=0)
        axis.set_xlabel("prediction", fontsize=10)
        axis.set_ylabel("ground truth", fontsize=10)
        axis.set_title(f"{scores.name}: confusion matrix, % of each ground-truth row (mIoU {_pct(scores.miou)}%)",
                       fontsize=11, pad=10)
        if n <= 40:  # numbers fit in the cells
            for (row, col), value in np.ndenumerate(rows):
                if math.isfinite(value) and value >= 0.5:
                    axis.text(col, row, f"{value:.0f}", ha="center", va="center", fontsize=font * 0.8,
                              color="white" if value > 40 else "black")
            for row in np.flatnonzero(~np.isfinite(rows[:, 0])):
                axis.text((n - 1) / 2, row, "no ground-truth pixels", ha="center", va="center", fontsize=font * 0.8)
        bar = fig.add_axes((1.02, 0.25, 0.2 / side, 0.5))
        fig.colorbar(image, cax=bar, label="% of the ground-truth row", ticks=[0, 1, 5, 10, 25, 50, 75, 100])
        return save(fig, path)


def _best_first(iou):
    """Class indices by IoU, best first; classes without a score last."""
    return sorted(range(len(iou)), key=lambda k: (not math.isfinite(iou[k]), -np.nan_to_num(iou[k], nan=0.0)))


def _class_rows(axis, class_names, order, font, xmax):
    """One row per class of ``order`` (the first at the top), an IoU axis up to ``xmax`` with its
    grid behind the bars."""
    axis.set_yticks(np.arange(len(order)), [short_name(class_names[k], NAME_LIMIT) for k in order], fontsize=font)
    axis.set_ylim(len(order) - 0.5, -0.5)
    axis.set_xlim(0, xmax)
    axis.set_xlabel("IoU (%)")
    axis.grid(axis="x", alpha=0.3)
    axis.set_axisbelow(True)  # grid lines behind the bars


def plot_iou(scores, path):
    """Per-class IoU as horizontal bars, best first, the mIoU as a dashed line; classes without a
    score (absent from ground truth and prediction) listed at the bottom as n/a."""
    order = _best_first(scores.iou)
    n = len(order)
    row = min(0.26, max(0.15, 20 / n))  # inches per class
    font = min(9.0, max(6.0, row * 72 * 0.6))
    values = [100 * scores.iou[k] for k in order]
    with figure(FEATURE, figsize=(7, n * row)) as fig:
        axis = fig.add_axes((0, 0, 1, 1))
        positions = np.arange(n)
        axis.barh(positions, np.nan_to_num(values, nan=0.0), color="#4878a8", height=0.75)
        for y, value in zip(positions, values):
            axis.text((value if math.isfinite(value) else 0) + 0.8, y, "n/a" if not math.isfinite(value) else
                      f"{value:.1f}", va="center", fontsize=font * 0.9,
                      bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 0.5})
        if math.isfinite(scores.miou):
            axis.axvline(100 * scores.miou, color="#c0392b", linestyle="--", linewidth=1.2,
                         label=f"mIoU {100 * scores.miou:.1f}")
            axis.legend(loc="lower right", fontsize=9)
        _class_rows(axis, scores.class_names, order, font, 108)
        if n > 40:  # a tall chart: the scale at the top too
            axis.tick_params(top=True, labeltop=True)
        axis.set_title(f"{scores.name}: per-class IoU (mIoU {_pct(scores.miou)}%, dashed)", fontsize=11,
                       pad=24 if n > 40 else 6)
        return save(fig, path)


def _matched(first, second):
    """``second``'s IoU in ``first``'s class order (NaN where it has no score). A class that only
    ``second`` names is a typo or another dataset: refused, naming it."""
    known = set(first.class_names)
    extra = [name for name in second.class_names if name not in known]
    if extra:
        import difflib

        hints = []
        for name in extra[:5]:
            close = difflib.get_close_matches(name, first.class_names, n=1)
            hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ResultsFileError(f"{second.source or second.name} names classes that {first.source or first.name} does "
                               f"not have: {', '.join(hints)}; use the evaluation's class names")
    lookup = dict(zip(second.class_names, second.iou))
    return np.array([lookup.get(name, float("nan")) for name in first.class_names])


def plot_comparison(first, second, path):
    """Per-class IoU of two results as paired bars (classes in ``first``'s order of IoU, best
    first), each mIoU in the legend and as a dashed line, and beside them the difference
    ``second - first`` per class."""
    other = _matched(first, second)
    order = _best_first(first.iou)
    n = len(order)
    row = min(0.32, max(0.16, 24 / n))
    font = min(9.0, max(6.0, row * 72 * 0.5))
    a = np.array([100 * first.iou[k] for k in order])
    b = np.array([100 * other[k] for k in order])
    positions = np.arange(n)
    colors = ("#4878a8", "#e08a3c")
    with figure(FEATURE, figsize=(10, n * row)) as fig:
        bars = fig.add_axes((0, 0, 0.62, 1))
        difference = fig.add_axes((0.7, 0, 0.3, 1), sharey=bars)
        for values, result, color, shift in ((a, first, colors[0], -0.2), (b, second, colors[1], 0.2)):
            bars.barh(positions + shift, np.nan_to_num(values, nan=0.0), height=0.4, color=color,
                      label=f"{result.name} (mIoU {_pct(result.miou)})")
            if math.isfinite(result.miou):
                bars.axvline(100 * result.miou, color=color, linestyle="--", linewidth=1.2)
        _class_rows(bars, first.class_names, order, font, 100)
        bars.legend(loc="upper center", bbox_to_anchor=(0.5, -0.6 / (n * row)), ncol=2, fontsize=9, frameon=False)
        bars.set_title("per-class IoU", fontsize=11)
        delta = b - a
        shown = np.nan_to_num(delta, nan=0.0)
        difference.barh(positions, shown, height=0.7, color=["#2e8b57" if d >= 0 else "#c0392b" for d in shown])
        difference.axvline(0, color="black", linewidth=0.8)
        span = max(1.0, float(np.nanmax(np.abs(delta))) if np.isfinite(delta).any() else 1.0) * 1.35
        difference.set_xlim(-span, span)
        for y, d in zip(positions, delta):
            if math.isfinite(d):
                difference.text(d, y, f" {d:+.1f} ", ha="left" if d >= 0 else "right", va="center",
                                fontsize=font * 0.9)
            else:
                difference.text(0, y, " n/a", ha="left", va="center", fontsize=font * 0.9)
        difference.tick_params(axis="y", labelleft=False)
        difference.grid(axis="x", alpha=0.3)
        difference.set_axisbelow(True)  # grid lines behind the bars
        difference.set_xlabel("IoU difference (points)")
        difference.set_title(f"{short_name(second.name, 30)} − {short_name(first.name, 30)}", fontsize=11)
        return save(fig, path)


def write_result_plots(results, out_dir):
    """For each result its IoU bars and, when it has one, its confusion matrix; then the first
    result against each of the others. Returns the paths written."""
    paths, stems = [], []
    for scores in results:
        stem = file_stem(scores.name)
        stem += f"_{len(stems) + 1}" if stem in stems else ""  # two files of the same name
        stems.append(stem)
        if scores.confusion_matrix is not None:
            paths.append(plot_confusion_matrix(scores, os.path.join(out_dir, f"{stem}_confusion_matrix.png")))
        paths.append(plot_iou(scores, os.path.join(out_dir, f"{stem}_iou.png")))
    for other, stem in zip(results[1:], stems[1:]):
        paths.append(plot_comparison(results[0], other, os.path.join(out_dir, f"{stems[0]}_vs_{stem}.png")))
    return paths


def plot_results(specs, out_dir):
    """``write_result_plots`` of the results that ``specs`` name (``read_scores``: PATH, PATH:MODE
    or a published table), matplotlib and ``out_dir`` checked first. Comparing several files
    needs one mode of each."""
    require_matplotlib("plotting evaluation results")
    check_output_dir(out_dir, "--out")
    results = []
    for spec in specs:
        scores = read_scores(spec)
        if len(specs) > 1 and len(scores) > 1:
            modes = ", ".join(f"{spec}:{s.name.rsplit(' ', 1)[-1]}" for s in scores)
            raise ResultsFileError(f"{spec} holds {len(scores)} modes; to compare files, pick one ({modes})")
        results += scores
    return write_result_plots(results, out_dir)


def plot_evaluation(results, class_names, out_dir):
    """``write_result_plots`` of an evaluation's ``{mode name: scores}``, through the JSON's form
    (``result_to_dict``), so that these are the pictures ``plot_results`` draws from its --json."""
    return write_result_plots([scores_from_evaluation(result_to_dict(result, class_names), name)
                               for name, result in results.items()], out_dir)
