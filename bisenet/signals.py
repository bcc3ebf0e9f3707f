"""What SIGINT (Ctrl-C) and SIGTERM (a scheduler, torchrun) do, in one place, by stage of a command:

- while a tool imports its libraries: a quiet exit with 130 (``exit_quietly_on_interrupt``);
- in a tool's ``main``: Ctrl-C is a ``KeyboardInterrupt``, which ends the command with
  "interrupted" and 130, without a traceback (``interrupts_exit``, around every tool in
  ``bisenet.cli.run``); where training can say what was kept, it is a ``TrainingInterrupted``
  with that message instead (``interrupt_means``);
- during training: a ``StopRequest``, which the loop checks at step boundaries; the run saves a
  checkpoint and stops with ``StopRequest.interrupted`` (exit code 128 plus the signal's number).

Only the standard library and ``bisenet.errors`` are imported, so that a tool can install the
first policy before the heavy imports start.
"""
import contextlib
import signal
import sys

from bisenet.errors import TrainingInterrupted

INTERRUPTED_EXIT_CODE = 128 + signal.SIGINT  # 130, as a shell reports a process that Ctrl-C ended


def _exit_quietly(signal_number, frame):
    sys.exit(INTERRUPTED_EXIT_CODE)


def exit_quietly_on_interrupt():
    """Ctrl-C from now on ends the process with 130 and no traceback: for the seconds a tool
    spends importing torch, before there is anything to save or report."""
    signal.signal(signal.SIGINT, _exit_quietly)


@contextlib.contextmanager
def interrupts_exit():
    """Run a tool's ``main``: Ctrl-C is a ``KeyboardInterrupt`` inside (also after
    ``exit_quietly_on_interrupt``), and one that reaches here prints "interrupted" and exits with
    130. A tool whose SIGINT is ignored (started in the background) keeps it ignored."""
    previous = None
    if signal.getsignal(signal.SIGINT) is _exit_quietly:
        previous = _set_handler(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(INTERRUPTED_EXIT_CODE)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def interrupt_means(message):
    """Ctrl-C inside is a ``TrainingInterrupted(message)``: for the stages of training that have
    nothing to save but something to say (what was kept, how to go on)."""
    try:
        yield
    except KeyboardInterrupt:
        raise TrainingInterrupted(message, signal.SIGINT) from None


class StopRequest:
    """Turns SIGTERM and SIGINT into a request (``requested``) that the training loop checks at
    step boundaries; the previous handlers come back on exit. torchrun sends SIGKILL about 30 s
    after SIGTERM: enough to finish a step and save."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.signal_number = 0
        self.previous = {}

    @property
    def requested(self):
        return self.signal_number > 0

    def interrupted(self, message):
        """The error that ends the run once it saved: exits as the signal that asked would (a
        process that only learnt of the request from another gets SIGTERM's code)."""
        return TrainingInterrupted(message, self.signal_number or signal.SIGTERM)

    def __enter__(self):
        for sig in self.SIGNALS:
            previous = _set_handler(sig, self._handle)
            if previous is not None:
                self.previous[sig] = previous
        return self

    def _handle(self, signal_number, frame):
        self.signal_number = signal_number

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def _set_handler(sig, handler):
    """Install ``handler``; returns the previous one, or None outside the main thread, where
    Python sets no handler (the signals are then left alone)."""
    try:
        return signal.signal(sig, handler)
    except ValueError:
        return None
