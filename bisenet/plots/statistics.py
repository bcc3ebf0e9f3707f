"""Pictures of a dataset's statistics, from the report of ``bisenet.data.check.check_dataset``:
how often each class occurs and which image sizes there are."""
import os
from collections import Counter

import numpy as np

from bisenet.plots import figure, save, short_name

FEATURE = "plotting dataset statistics"
MAX_SIZES = 20  # image sizes drawn one by one; the rarer ones are summed as "other"


def plot_class_pixels(report, path):
    """Each class's share of the labelled pixels (all splits checked) as horizontal bars, most
    frequent first, on a log scale so that the rare classes show; classes without a pixel are
    named in red at the bottom, the ignore region is the grey bar."""
    names = list(report["class_names"])
    counts = np.asarray(report["class_pixels"], dtype=np.float64)
    labelled = counts.sum() + report["ignore_pixels"]
    order = sorted(range(len(names)), key=lambda k: -counts[k])
    labels = [short_name(names[k], 24) for k in order] + ["(ignore)"]
    shares = 100 * np.append(counts[order], report["ignore_pixels"]) / max(labelled, 1)
    colors = ["#4878a8"] * len(order) + ["#9a9a9a"]
    n = len(labels)
    row = min(0.26, max(0.15, 20 / n))
    font = min(9.0, max(6.0, row * 72 * 0.6))
    positive = shares[shares > 0]
    low = 10 ** np.floor(np.log10(positive.min())) if len(positive) else 1e-3
    with figure(FEATURE, figsize=(7, n * row)) as fig:
        axis = fig.add_axes((0, 0, 1, 1))
        positions = np.arange(n)
        # On a log axis a bar starts at the axis' left end, not at 0.
        axis.barh(positions, np.where(shares > 0, shares - low, np.nan), color=colors, height=0.75, left=low)
        for y, share in zip(positions, shares):
            text = f"{share:.3g}%" if share > 0 else "no pixel"
            axis.text(max(share, low) * 1.15, y, text, va="center", fontsize=font * 0.9,
                      color="black" if share > 0 else "#c0392b")
        axis.set_xscale("log")
        axis.set_xlim(low, 300)
        ticks = [low * 10 ** k for k in range(int(round(np.log10(100 / low))) + 1)]
        axis.set_xticks(ticks, [f"{t:g}%" for t in ticks])
        axis.minorticks_off()
        axis.set_yticks(positions, labels, fontsize=font)
        for tick, share in zip(axis.get_yticklabels(), shares):
            if share == 0:
                tick.set_color("#c0392b")
        axis.set_ylim(n - 0.5, -0.5)
        axis.set_xlabel("share of the labelled pixels (log scale)")
        axis.grid(axis="x", alpha=0.3)
        axis.set_axisbelow(True)  # grid lines behind the bars
        if n > 40:
            axis.tick_params(top=True, labeltop=True)
        splits = ", ".join(report["splits"])
        axis.set_title(f"class pixel frequency ({splits}: {int(labelled):,} labelled pixels)", fontsize=11,
                       pad=24 if n > 40 else 6)
        return save(fig, path)


def plot_image_sizes(report, path):
    """How many images of each size (width x height) each split holds, most common first."""
    splits = list(report["splits"])
    total = sum((report["splits"][s]["sizes"] for s in splits), Counter())
    sizes = [size for size, _ in total.most_common(MAX_SIZES)]
    other = [size for size in total if size not in sizes]
    labels = sizes + ([f"other ({len(other)} sizes)"] if other else [])
    with figure(FEATURE, figsize=(7, max(1.5, 0.25 * len(labels) * max(1, len(splits))))) as fig:
        from matplotlib.ticker import MaxNLocator

        axis = fig.add_axes((0, 0, 1, 1))
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        height = 0.8 / max(1, len(splits))
        largest = 1
        for k, split in enumerate(splits):
            counter = report["splits"][split]["sizes"]
            counts = [counter[size] for size in sizes] + ([sum(counter[size] for size in other)] if other else [])
            positions = np.arange(len(labels)) + (k - (len(splits) - 1) / 2) * height
            axis.barh(positions, counts, height=height, label=f"{split} ({sum(counter.values())} images)")
            largest = max([largest, *counts])
            for y, count in zip(positions, counts):
                if count:
                    axis.text(count, y, f" {count}", va="center", fontsize=8)
        axis.set_yticks(np.arange(len(labels)), labels)
        axis.set_ylim(len(labels) - 0.5, -0.5)
        axis.set_xlim(0, largest * 1.15)
        axis.set_xlabel("images")
        axis.set_ylabel("width x height")
        axis.grid(axis="x", alpha=0.3)
        axis.set_axisbelow(True)  # grid lines behind the bars
        axis.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(splits), fontsize=9, frameon=False)
        axis.set_title("image sizes", fontsize=11, pad=22)
        return save(fig, path)


def write_dataset_plots(report, out_dir):
    """``class_pixels.png`` and ``image_sizes.png`` in ``out_dir``; returns their paths."""
    return [plot_class_pixels(report, os.path.join(out_dir, "class_pixels.png")),
            plot_image_sizes(report, os.path.join(out_dir, "image_sizes.png"))]
