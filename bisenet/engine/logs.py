"""What a training run writes about itself: lines for people through the standard ``logging``
module (to the console and to ``log.txt``, on the main process), ``metrics.jsonl`` for tools
(one JSON object per line), and ``read_metrics`` to read that back (``bisenet.plots.training``
draws it)."""
import json
import logging
import logging.handlers
import os
import warnings

from tqdm import tqdm

from bisenet.outputs import write_error


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
        # Appended to line by line as the run goes, so not through bisenet.outputs' atomic
        # writes (a killed run keeps the lines before); a failure to open is named all the same.
        path, file_handler = os.path.join(self.output_dir, "log.txt"), None
        try:
            os.makedirs(self.output_dir, exist_ok=True)
            file_handler = logging.FileHandler(path)
            path = os.path.join(self.output_dir, "metrics.jsonl")
            self.metrics = open(path, "a", buffering=1)
        except OSError as exc:
            if file_handler is not None:
                file_handler.close()
            raise write_error(path, exc) from None
        file_handler.setFormatter(logging.Formatter("[%(asctime)s] %(message)s", "%Y-%m-%d %H:%M:%S"))
        self.pending_lines.setTarget(file_handler)
        self.pending_lines.flush()
        self.logger.removeHandler(self.pending_lines)
        self.pending_lines.close()
        self.logger.addHandler(file_handler)
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
