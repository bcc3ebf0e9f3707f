"""bisenet.errors: the one user-error type and the optional-dependency message."""
import pytest

from bisenet.checkpoint import CheckpointError
from bisenet.config import ConfigError
from bisenet.data.io import DatasetError
from bisenet.engine.lock import OutputLockError
from bisenet.engine.trainer import TrainingError, TrainingInterrupted
from bisenet.errors import MissingExtraError, MissingFileError, UserError, require
from bisenet.weights import WeightsError


def test_every_user_error_is_one_type():
    for error in (ConfigError, DatasetError, CheckpointError, WeightsError, TrainingError, OutputLockError,
                  MissingFileError, MissingExtraError):
        assert issubclass(error, UserError) and error("x").exit_code == 1
    assert issubclass(MissingFileError, FileNotFoundError)
    assert TrainingInterrupted("stopped", 15).exit_code == 143  # 128 + SIGTERM, as the signal would


def test_require_names_the_extra_to_install():
    assert require("json", "plot", "x").dumps([1]) == "[1]"
    with pytest.raises(MissingExtraError, match=r'plotting needs no_such_module.*pip install -e "\.\[plot\]"'):
        require("no_such_module", "plot", "plotting")
