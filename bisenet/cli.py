"""Argument handling shared by the command-line tools."""
import argparse
import contextlib
import os
import sys

from bisenet.checkpoint import CheckpointError
from bisenet.config import ConfigError, load_config
from bisenet.data.io import DatasetError, describe
from bisenet.weights import PUBLISHED, config_path, fetch

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class ToolParser(argparse.ArgumentParser):
    """The tools' argument parser: usage errors exit with 1, like every other bad input."""

    def __init__(self, description, **kwargs):
        super().__init__(description=description, formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs)

    def error(self, message):
        self.print_usage(sys.stderr)
        self.exit(1, f"{self.prog}: error: {message}\n")


def config_parser(description, positionals=(), default_config="configs/bisenetv1_city.py"):
    """A parser with ``--config`` and trailing ``KEY=VALUE`` overrides; ``positionals`` are
    (name, help) pairs that come before the overrides. Parse with ``parse_intermixed_args`` so
    options and overrides may come in any order. Without ``--config``, published ``--weights``
    bring their own config, else ``default_config`` is used."""
    parser = ToolParser(description)
    for name, text in positionals:
        parser.add_argument(name, help=text)
    parser.add_argument("--config", help=f"config file (default: {default_config}, or that of published --weights)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="config fields to override, e.g. train.max_iters=1000 data.root=/data/cityscapes")
    parser.set_defaults(default_config=default_config)
    return parser


def positive_int(text):
    """argparse type: an integer of at least 1 (sizes, counts)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def load_config_or_exit(args):
    path = args.config
    if path is None:
        named = PUBLISHED.get(getattr(args, "weights", None) or "")
        path = config_path(named) if named and named.config else getattr(args, "default_config", None)
    if path and not os.path.isfile(path) and os.path.isfile(os.path.join(REPO_ROOT, path)):
        path = os.path.join(REPO_ROOT, path)  # configs/... from outside the checkout
    try:
        return load_config(path, args.overrides)
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
    """The checkpoint to use: ``weights`` (a path, or a published name such as
    coincheung/bisenetv1_city, fetched into torch's hub cache on first use) or, when not given,
    the final checkpoint of the config's training run."""
    if weights in PUBLISHED:
        with user_errors():
            return fetch(weights)
    path = weights or os.path.join(cfg.train.output_dir, "model_final.pth")
    if not os.path.isfile(path):
        published = ", ".join(name for name, entry in PUBLISHED.items() if entry.config)
        sys.exit(f"error: weights {path} not found; train first (tools/train.py), pass --weights PATH, or a "
                 f"published model by name ({published})")
    return path


@contextlib.contextmanager
def user_errors():
    """Bad input (data, checkpoint, config, a missing file) ends the tool with its message and
    exit code 1, not a traceback: the message already names the file and the fix."""
    try:
        yield
    except (DatasetError, CheckpointError, ConfigError, FileNotFoundError) as exc:
        sys.exit(f"error: {describe(exc)}")
