"""What a training run writes about itself: lines for people through the standard ``logging``
module (to the console and to ``log.txt``, on the main process), ``metrics.jsonl`` for tools
(one JSON object per line), and a plot of both."""
import io
import json
import logging
import logging.handlers
import os
import warnings

from tqdm import tqdm

from bisenet.errors import UserError, require
from bisenet.outputs import write_bytes


class _ConsoleHandler(logging.Handler):
    """Writes through tqdm, above any progress bar, to the stdout of the moment."""

    def emit(self, record):
        tqdm.write(self.format(record))


class RunLog:
    """A run's records; silent on processes other than the main one. ``close()`` detaches it.

    The console shows every line at once; ``log.txt`` and ``metrics.jsonl`` are created only by
    ``open_files()``, when the run has been accepted, and then receive what came before too, so
    that a refused launch writes nothing into the folder."""

    def __init__(self, output_dir, enabled=True, console=True):
        self.output_dir = output_dir
        self.enabled = enabled
        self.metrics = None
        self.pending_records = []  # metrics before open_files()
        self.logger = logging.getLogger(f"bisenet.run.{id(self)}")
        self.logger.setLevel(logging.INFO)
        self.logger.propagate = False
        if not enabled:
            self.logger.addHandler(logging.NullHandler())
            return
        # Lines for log.txt, kept until the file exists (flushed by hand, never by size or level).
        self.pending_lines = logging.handlers.MemoryHandler(capacity=2**31, flushLevel=logging.CRITICAL + 1,
                                                            flushOnClose=False)
        self.logger.addHandler(self.pending_lines)
        if console:
            console_handler = _ConsoleHandler()
            console_handler.setFormatter(logging.Formatter("%(message)s"))
            self.logger.addHandler(console_handler)

    def open_files(self):
        """Create (or append to) ``log.txt`` and ``metrics.jsonl``, with what was logged so far."""
        if not self.enabled or self.metrics is not None:
            return
        os.makedirs(self.output_dir, exist_ok=True)
        file_handler = logging.FileHandler(os.path.join(self.output_dir, "log.txt"))
        file_handler.setFormatter(logging.Formatter("[%(asctime)s] %(message)s", "%Y-%m-%d %H:%M:%S"))
        self.pending_lines.setTarget(file_handler)
        self.pending_lines.flush()
        self.logger.removeHandler(self.pending_lines)
        self.pending_lines.close()
        self.logger.addHandler(file_handler)
        self.metrics = open(os.path.join(self.output_dir, "metrics.jsonl"), "a", buffering=1)
        for values in self.pending_records:
            self.record(**values)
        self.pending_records = []

    def info(self, message):
        self.logger.info(message)

    def warning(self, message):
        self.logger.warning(f"warning: {message}")

    def record(self, **values):
        if not self.enabled:
            return
        if self.metrics is None:
            self.pending_records.append(values)
        else:
            self.metrics.write(json.dumps(values) + "\n")

    def close(self):
        for handler in list(self.logger.handlers):
            handler.close()
            self.logger.removeHandler(handler)
        if self.metrics is not None and not self.metrics.closed:
            self.metrics.close()


def read_metrics(path):
    """The records of a ``metrics.jsonl``; a resumed run's repeated iterations keep the latest."""
    train, evals = {}, {}
    with open(path) as f:
        lines = [(number, line.strip()) for number, line in enumerate(f, 1) if line.strip()]
    damaged = []
    for number, line in lines:
        try:
            record = json.loads(line)
        except ValueError:  # a run killed while writing a record (then resumed after it)
            damaged.append(number)
            continue
        if isinstance(record, dict) and "iteration" in record:
            if "miou" in record:
                evals[record["iteration"]] = record
            elif "loss" in record:  # not the notes of skipped fp16 steps
                train[record["iteration"]] = record
    if damaged:
        warnings.warn(f"{path}: skipped {len(damaged)} damaged line(s) ({', '.join(map(str, damaged[:5]))}"
                      f"{', ...' if len(damaged) > 5 else ''}), left by a run that was killed while writing",
                      stacklevel=2)
    return [train[k] for k in sorted(train)], [evals[k] for k in sorted(evals)]


def plot_metrics(metrics_path, out_path):
    """Loss (main and auxiliary), LR of each parameter group and mIoU against the iteration."""
    matplotlib = require("matplotlib", "plot", "plotting the training curves")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train, evals = read_metrics(metrics_path)
    if not train:
        raise UserError(f"{metrics_path} holds no training records yet")
    figure, axes = plt.subplots(1, 3, figsize=(15, 4))
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
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, dpi=100, format="png")
    plt.close(figure)
    return write_bytes(out_path, buffer.getvalue())
