"""Argument handling shared by the command-line tools."""
import argparse
import contextlib
import os
import sys

from bisenet.checkpoint import CheckpointError
from bisenet.config import ConfigError, load_config
from bisenet.data.io import DatasetError, describe


def config_parser(description, positionals=(), default_config="configs/bisenetv1_city.py"):
    """A parser with ``--config`` and trailing ``KEY=VALUE`` overrides; ``positionals`` are
    (name, help) pairs that come before the overrides. Parse with ``parse_intermixed_args`` so
    options and overrides may come in any order."""
    parser = argparse.ArgumentParser(description=description)
    for name, text in positionals:
        parser.add_argument(name, help=text)
    parser.add_argument("--config", default=default_config, help="config file (default: %(default)s)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="config fields to override, e.g. train.max_iters=1000 data.root=/data/cityscapes")
    return parser


def load_config_or_exit(args):
    try:
        return load_config(args.config, args.overrides)
    except ConfigError as exc:
        sys.exit(f"error: {exc}")


def trained_model(cfg, weights):
    """The model of ``cfg`` with ``weights`` (default: the config's final checkpoint), in eval
    mode; bad input ends the tool with its message."""
    from bisenet.checkpoint import load_weights
    from bisenet.models import build_model

    with user_errors():
        model = build_model(cfg)
        load_weights(model, default_weights(cfg, weights))
    return model.eval()


def default_weights(cfg, weights):
    """``weights`` or, when not given, the final checkpoint of the config's training run."""
    path = weights or os.path.join(cfg.train.output_dir, "model_final.pth")
    if not os.path.isfile(path):
        sys.exit(f"error: weights {path} not found; train first (tools/train.py) or pass --weights PATH")
    return path


@contextlib.contextmanager
def user_errors():
    """Bad input (data, checkpoint, config, a missing file) ends the tool with its message and
    exit code 1, not a traceback: the message already names the file and the fix."""
    try:
        yield
    except (DatasetError, CheckpointError, ConfigError, FileNotFoundError) as exc:
        sys.exit(f"error: {describe(exc)}")
