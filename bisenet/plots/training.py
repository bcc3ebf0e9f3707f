"""Pictures of a training run: its loss, learning-rate and mIoU curves, drawn from the records
of its ``metrics.jsonl`` (``bisenet.engine.logs.read_metrics``)."""
import os

from bisenet.engine.logs import read_metrics
from bisenet.errors import MissingFileError, UserError
from bisenet.outputs import check_output_file
from bisenet.plots import figure, require_matplotlib, save

FEATURE = "plotting the training curves"


def draw_curves(fig, train, evals):
    """Loss (main and auxiliary), the LR of each parameter group and the val mIoU against the
    iteration, on three axes of ``fig``; returns the axes. ``train`` and ``evals`` are
    ``read_metrics``' records."""
    axes = fig.subplots(1, 3)
    iterations = [r["iteration"] for r in train]
    axes[0].plot(iterations, [r["loss"] for r in train], label="main")
    for k in range(len(train[0]["aux_losses"])):
        axes[0].plot(iterations, [r["aux_losses"][k] for r in train], label=f"aux {k + 1}", alpha=0.7)
    axes[0].set_title("loss")
    for name in train[0]["lr"]:
        axes[1].plot(iterations, [r["lr"][name] for r in train], label=name)
    axes[1].set_title("learning rate")
    axes[1].set_yscale("log")
    if evals:
        axes[2].plot([r["iteration"] for r in evals], [100 * r["miou"] for r in evals], marker="o", label="weights")
        if "miou_ema" in evals[-1]:  # train.ema_decay
            ema = [r for r in evals if "miou_ema" in r]
            axes[2].plot([r["iteration"] for r in ema], [100 * r["miou_ema"] for r in ema], marker="o", label="EMA")
            axes[2].legend()
    axes[2].set_title("val mIoU (%)")
    for axis in axes:
        axis.set_xlabel("iteration")
        axis.grid(alpha=0.3)
    for axis in axes[:2]:
        axis.legend()
    return axes


def plot_metrics(metrics_path, out_path):
    """Draw the curves of ``metrics_path`` (``draw_curves``) into the PNG ``out_path``; returns
    ``out_path``."""
    require_matplotlib(FEATURE)  # before reading: a missing extra is said whatever the file
    train, evals = read_metrics(metrics_path)
    if not train:
        raise UserError(f"{metrics_path} holds no training records yet")
    with figure(FEATURE, figsize=(15, 4)) as fig:
        draw_curves(fig, train, evals)
        fig.tight_layout()
        return save(fig, out_path, dpi=100, tight=False)


def plot_run(run, out_path=None):
    """The curves of a training output folder (its ``metrics.jsonl``) or of a ``metrics.jsonl``
    file, into ``out_path`` (default: ``curves.png`` beside the metrics), checked before
    drawing; returns the path written."""
    metrics = run if run.endswith(".jsonl") else os.path.join(run, "metrics.jsonl")
    if not os.path.isfile(metrics):
        raise MissingFileError(f"{metrics} not found; it is written by tools/train.py into train.output_dir")
    out_path = check_output_file(out_path or os.path.join(os.path.dirname(metrics), "curves.png"), "--out")
    return plot_metrics(metrics, out_path)
