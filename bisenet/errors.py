"""The one error type for bad input: every problem a user can cause (a config key, a data file,
a checkpoint, a run that cannot go on) raises a ``UserError`` whose message names the file or
key and the fix. The tools catch it in one place (``bisenet.cli.run``) and exit with the message
and ``exit_code``; any other exception is a bug in bisenet and keeps its traceback."""


class UserError(Exception):
    exit_code = 1


class MissingFileError(UserError, FileNotFoundError):
    """A file the user has to provide (weights, a backbone, a config) is not there."""


class MissingExtraError(UserError, ImportError):
    """A feature needs an optional dependency; the message gives the pip line."""


class TrainingError(UserError):
    """Training cannot start or go on; the message says why and what to do."""


class TrainingInterrupted(TrainingError):
    """SIGTERM or SIGINT arrived: a checkpoint was saved at a step boundary (or, before training
    or after it, nothing was lost). Exits with 128 plus the signal's number, as a process killed by
    it would."""

    def __init__(self, message, signal_number):
        super().__init__(message)
        self.signal_number = signal_number
        self.exit_code = 128 + int(signal_number)
        self.label = "stopped"


def require(module, extra, feature):
    """Import ``module`` for ``feature``, or say which extra installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        # pip installs the top package (onnxruntime), not a submodule (onnxruntime.quantization)
        raise MissingExtraError(f"{feature} needs {module}, which is not installed: pip install -e \".[{extra}]\" "
                                f"(or pip install {module.split('.')[0]})") from None
