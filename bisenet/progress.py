"""Progress bars, with one writer: the main process of a launch draws them, and only on a
terminal. Redirected output (a log file, CI, ``torchrun ... > log``) gets the tools' lines
alone, not a bar's carriage-return redraws mixed into them; the trainer's ``iter`` lines carry
the progress there."""
import sys

from tqdm import tqdm

from bisenet import distributed


def draws_progress(enabled=True):
    """Whether this process shows progress bars: ``enabled``, the main process (also before
    torchrun's process group exists) and stderr a terminal."""
    rank = distributed.launched_rank() or distributed.get_rank()
    return bool(enabled) and rank == 0 and sys.stderr.isatty()


def progress_bar(iterable=None, enabled=True, **kwargs):
    """A ``tqdm`` bar over ``iterable`` (or ``total=``), drawn when ``draws_progress(enabled)``."""
    return tqdm(iterable, disable=not draws_progress(enabled), dynamic_ncols=True, **kwargs)
