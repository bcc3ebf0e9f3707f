"""Scan a whole dataset for what would break or skew training, or leave data unused, before a run
starts."""
import os
from collections import Counter
from multiprocessing import Pool

import numpy as np
from tabulate import tabulate

from bisenet.data.catalog import diagnose
from bisenet.data.dataset import read_list_file, scan_pairs
from bisenet.data.io import ColourLabelError, DatasetError, LabelDecoder, describe, read_image, read_label_raw
from bisenet.progress import progress_bar


def _inspect(job):
    """Everything the report needs from one (image, label) pair, faults included."""
    image_path, label_path, decoder = job
    result = {"image": image_path, "label": label_path, "faults": []}
    image = raw = None
    try:
        image = read_image(image_path)
        pixels = image.reshape(-1, 3).astype(np.float64)
        result["size"] = image.shape[:2]
        result["channel_sum"] = pixels.sum(axis=0)
        result["channel_sumsq"] = np.square(pixels).sum(axis=0)
        result["pixels"] = len(pixels)
    except DatasetError as exc:
        result["faults"].append(("unreadable image", describe(exc)))
    try:
        raw = read_label_raw(label_path)
        result["raw_counts"] = np.bincount(raw.ravel(), minlength=256)
    except ColourLabelError as exc:
        result["faults"].append(("colour label", describe(exc)))
        result["colour_label"] = label_path
    except DatasetError as exc:
        result["faults"].append(("unreadable label", describe(exc)))
    if image is not None and raw is not None and image.shape[:2] != raw.shape:
        result["faults"].append(("size mismatch", f"image {image_path} is {image.shape[1]}x{image.shape[0]}, label "
                                                  f"{label_path} is {raw.shape[1]}x{raw.shape[0]}"))
    if raw is not None:
        bad = [int(v) for v in np.flatnonzero(result["raw_counts"]) if not decoder.valid[v]]
        if bad:
            result["faults"].append(("label value out of range",
                                     f"label {label_path} holds value(s) {bad[:10]} that are {decoder.expected()}"))
    return result


def check_dataset(data_cfg, num_classes, splits, workers=None, progress=True):
    """Inspect every pair of the given splits; returns a report dict (see ``format_report``)."""
    decoder = LabelDecoder(num_classes, data_cfg.ignore_index, data_cfg.label_map)
    report = {"splits": {}, "faults": [], "class_pixels": np.zeros(num_classes, dtype=np.int64),
              "ignore_pixels": 0, "values_seen": Counter(), "channel_sum": np.zeros(3), "channel_sumsq": np.zeros(3),
              "pixels": 0, "class_names": data_cfg.class_names, "fix": decoder.fix(), "raw_values": set(),
              "colour_labels": []}
    for split in splits:
        list_file = {data_cfg.train_split: data_cfg.train_list, data_cfg.val_split: data_cfg.val_list}.get(split, "")
        try:
            if list_file:
                path = list_file if os.path.isabs(list_file) else os.path.join(data_cfg.root, list_file)
                pairs, missing, orphans = read_list_file(data_cfg.root, path), [], []
            else:
                pairs, missing, orphans = scan_pairs(data_cfg, split, allow_missing=True)
        except DatasetError as exc:
            report["faults"].append((split, "split", "unusable split", describe(exc)))
            report["splits"][split] = {"images": 0, "sizes": Counter()}
            continue
        for image, label in missing:
            report["faults"].append((split, image, "missing label", f"image {image} has no label, expected {label}"))
        for image, label in orphans:  # training passes over these without a word: labelled data left unused
            report["faults"].append((split, label, "missing image", f"label {label} has no image, expected {image}"))
        sizes = Counter()
        jobs = [(image, label, decoder) for image, label in pairs]
        with Pool(workers or os.cpu_count()) as pool:
            results = pool.imap_unordered(_inspect, jobs, chunksize=4)
            for result in progress_bar(results, progress, total=len(jobs), desc=f"check {split}"):
                for kind, message in result["faults"]:
                    report["faults"].append((split, result["image"], kind, message))
                if "size" in result:
                    sizes[f"{result['size'][1]}x{result['size'][0]}"] += 1
                    report["channel_sum"] += result["channel_sum"]
                    report["channel_sumsq"] += result["channel_sumsq"]
                    report["pixels"] += result["pixels"]
                if "colour_label" in result:
                    report["colour_labels"].append(result["colour_label"])
                if "raw_counts" in result:
                    counts = result["raw_counts"]
                    present = np.flatnonzero(counts)
                    report["raw_values"].update(present.tolist())
                    for raw in present:
                        mapped = int(decoder.table[raw])
                        report["values_seen"][mapped if mapped != decoder.INVALID else f"raw {raw} (invalid)"] += \
                            int(counts[raw])
        report["splits"][split] = {"images": len(pairs) + len(missing), "sizes": sizes}
    for value, count in report["values_seen"].items():
        if isinstance(value, int) and value < num_classes:
            report["class_pixels"][value] += count
        elif value == data_cfg.ignore_index:
            report["ignore_pixels"] += count
    report["faults"].sort()
    report["hints"] = diagnose(data_cfg, report.pop("raw_values"), sorted(report.pop("colour_labels")))
    return report


def format_report(report, limit=50):
    """The report as text: splits, class frequencies, colour statistics, then every fault."""
    lines = []
    rows = [[split, info["images"], ", ".join(f"{size} ({n})" for size, n in info["sizes"].most_common(5))]
            for split, info in report["splits"].items()]
    lines.append(tabulate(rows, headers=["split", "images", "image sizes (count)"], tablefmt="github"))
    labelled = report["class_pixels"].sum() + report["ignore_pixels"]
    rows = [[k, name, int(n), 100.0 * n / max(labelled, 1)] for k, (name, n) in
            enumerate(zip(report["class_names"], report["class_pixels"]))]
    rows.append(["ignore", "", int(report["ignore_pixels"]), 100.0 * report["ignore_pixels"] / max(labelled, 1)])
    lines.append(tabulate(rows, headers=["id", "class", "pixels", "%"], tablefmt="github", floatfmt=".3f"))
    absent = [name for name, n in zip(report["class_names"], report["class_pixels"]) if n == 0]
    if absent:
        lines.append(f"classes with no pixel: {', '.join(absent)}")
    if report["pixels"]:
        mean = report["channel_sum"] / report["pixels"]
        std = np.sqrt(np.maximum(report["channel_sumsq"] / report["pixels"] - mean ** 2, 0))
        lines.append(f"RGB mean {tuple(round(float(v) / 255, 4) for v in mean)}, "
                     f"std {tuple(round(float(v) / 255, 4) for v in std)} (on [0, 1]; data.mean / data.std)")
    faults = report["faults"]
    if faults:
        kinds = Counter(kind for _, _, kind, _ in faults)
        block = [f"{len(faults)} problem(s) to fix before training: "
                 + ", ".join(f"{n} {kind}" for kind, n in kinds.most_common())]
        block += [f"  [{split}] {kind}: {message}" for split, _, kind, message in faults[:limit]]
        if len(faults) > limit:
            block.append(f"  ... and {len(faults) - limit} more")
        if kinds.get("label value out of range"):
            block.append(f"fix for out-of-range values: {report['fix']}")
        lines.append("\n".join(block))
    else:
        lines.append("no problems found")
    if report.get("hints"):
        lines.append("\n".join(["what the labels suggest:"] + [f"  - {hint}" for hint in report["hints"]]))
    return "\n\n".join(lines)
