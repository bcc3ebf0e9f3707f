"""A config checked against what the package has: model and loss names, datasets, evaluation
protocols and modes. ``bisenet.config`` checks what a config can check on its own and imports
nothing of what it configures; these checks need the registries of the layers above it, so they
live here, above them. ``load_config`` here is ``bisenet.load_config``, what the tools use."""
import os
from typing import Sequence, Union

from bisenet import config
from bisenet.config import Config, ConfigError
from bisenet.data.catalog import NAMES
from bisenet.errors import UserError
from bisenet.inference import PROTOCOLS, parse_mode
from bisenet.losses import LOSSES
from bisenet.models import MODELS


def load_config(path: Union[str, os.PathLike, None] = None, overrides: Sequence[str] = ()) -> Config:
    """``bisenet.config.load_config`` (read the file, apply ``section.key=value`` overrides, check
    types and ranges), then ``check_config``."""
    cfg = config.load_config(path, overrides)
    check_config(cfg)
    return cfg


def check_config(cfg: Config) -> None:
    """Every check of a config: ``bisenet.config.validate`` (types, ranges, fields that must
    agree), then the names it gives of models, losses, datasets and evaluation modes. Changes
    nothing."""
    config.validate(cfg)
    model, data, train, ev = cfg.model, cfg.data, cfg.train, cfg.eval
    if model.name not in MODELS:
        raise ConfigError(f"model.name={model.name!r}: choose one of {', '.join(sorted(MODELS))}")
    if train.loss not in LOSSES:
        raise ConfigError(f"train.loss={train.loss!r}: choose one of {', '.join(LOSSES)}")
    if data.dataset not in NAMES:
        raise ConfigError(f"data.dataset must be one of {', '.join(NAMES)}, got {data.dataset!r}")
    if ev.protocol not in PROTOCOLS:
        raise ConfigError(f"eval.protocol must be one of {', '.join(PROTOCOLS)}, got {ev.protocol!r}")
    for mode in ev.final_modes:
        try:
            parse_mode(mode)
        except UserError as exc:
            raise ConfigError(f"eval.final_modes: {exc}") from None
