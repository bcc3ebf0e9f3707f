"""What the command-line tools share: the argument parser, the config and weights they resolve,
``run``, the one place where bad input becomes a message and an exit code, and ``command``, the
``bisenet <tool>`` command that runs a tool of an installed package."""
import argparse
import ast
import math
import os
import re
import runpy
import shlex
import sys

import torch

from bisenet import distributed
from bisenet.config import ConfigError
from bisenet.config_check import load_config
from bisenet.data.io import describe
from bisenet.deploy.runtime import PRECISIONS
from bisenet.errors import MissingFileError, UserError
from bisenet.resources import CONFIG_DIR, TOOLS_DIR
from bisenet.signals import interrupts_exit
from bisenet.weights import PUBLISHED, config_path, fetch


def run(main, argv=None):
    """Run a tool's ``main(argv)``: a ``UserError`` (bad config, data, checkpoint, ...) prints its
    message and exits with its code (1), Ctrl-C exits with 130 (``bisenet.signals``); neither
    prints a traceback, which is kept for bisenet's own bugs."""
    try:
        with interrupts_exit():
            main(argv)
    except UserError as exc:
        rank = distributed.launched_rank()
        where = f" (rank {rank})" if rank is not None else ""
        print(f"{getattr(exc, 'label', 'error')}{where}: {describe(exc)}", file=sys.stderr)
        sys.exit(exc.exit_code)


class ToolParser(argparse.ArgumentParser):
    """The tools' argument parser: the docstring's examples keep their lines, and usage errors
    exit with 1, like every other bad input."""

    def __init__(self, description, **kwargs):
        super().__init__(description=description, formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs)

    def error(self, message):
        self.print_usage(sys.stderr)
        self.exit(1, f"{self.prog}: error: {message}\n")


def add_weights_option(parser):
    parser.add_argument("--weights", help="checkpoint, or a published model's name such as coincheung/bisenetv1_city "
                                          "(default: <train.output_dir>/model_final.pth)")


def add_device_options(parser, threads=True):
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if available)")
    if threads:
        parser.add_argument("--threads", type=positive_int, default=None, help="CPU threads (default: torch's)")


def device_of(args):
    """The device of ``add_device_options``' arguments, with the thread count applied."""
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    return distributed.resolve_device(args.device)


def inference_parser(description, positionals=(), overrides_example="eval.protocol=standard"):
    """The arguments of a tool that runs a trained model: config, weights, device and how the
    model runs (``runtime_of``)."""
    parser = config_parser(description, positionals, overrides_example=overrides_example)
    add_weights_option(parser)
    add_device_options(parser, threads=False)
    parser.add_argument("--fast", action="store_true",
                        help="deployment inference: folded BN, onnxruntime on the CPU, fp16 channels-last on CUDA")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto",
                        help="the fast path's arithmetic (implies --fast): auto (fp32 on the CPU, fp16 on CUDA), "
                             "fp32, bf16, fp16, or int8 (CPU: onnxruntime, calibrated on --calib-images images of "
                             "the training split)")
    parser.add_argument("--calib-images", type=positive_int, default=32,
                        help="int8: images of the config's training split to calibrate on (default: %(default)s)")
    return parser


def runtime_of(args):
    """``load_model``'s keyword arguments for ``inference_parser``'s options."""
    return {"fast": args.fast, "precision": args.precision, "calib_images": args.calib_images}


def export_parser(description, out_help, default_size, size_help, overrides_example="model.num_classes=19"):
    """The export tools' arguments: config, weights, the file to write and an example size."""
    parser = config_parser(description, overrides_example=overrides_example)
    add_weights_option(parser)
    parser.add_argument("--out", required=True, metavar="FILE", help=out_help)
    parser.add_argument("--size", type=positive_int, nargs=2, default=default_size, metavar=("H", "W"),
                        help=f"example input size (default: %(default)s; {size_help})")
    return parser


def config_parser(description, positionals=(), default_config="configs/bisenetv1_city.py",
                  overrides_example="train.max_iters=1000 data.root=/data/cityscapes"):
    """A parser with ``--config`` and trailing ``KEY=VALUE`` overrides (``overrides_example``: some
    that make sense for the tool); ``positionals`` are (name, help) pairs that come before the
    overrides. Parse with ``parse_args`` below, so that options and overrides may come in any
    order. Without ``--config``, published ``--weights`` bring their own config, else
    ``default_config`` is used."""
    parser = ToolParser(description)
    for name, text in positionals:
        parser.add_argument(name, help=text)
    parser.add_argument("--config", help=f"config file (default: {default_config}, or that of published --weights)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help=f"config fields to override, e.g. {overrides_example}")
    parser.set_defaults(default_config=default_config)
    return parser


def parse_args(parser, argv=None):
    """Options and overrides in any order. An optional value that is really an override
    (``--resume train.max_iters=5``) is given back to the overrides."""
    args = parser.parse_intermixed_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # for the commands messages suggest
    for action in parser._actions:
        value = getattr(args, action.dest, None)
        if action.nargs == "?" and isinstance(value, str) and _is_override(value) and not os.path.exists(value):
            setattr(args, action.dest, action.const)
            args.overrides.insert(0, value)
    return args


def _is_override(text):
    key = text.split("=", 1)[0]
    return "=" in text and key.count(".") == 1 and key.replace(".", "").replace("_", "").isalnum()


def _number_type(parse, kind, ok, requirement):
    """An argparse type: ``parse`` the text (``kind`` names what it must be), then ``ok(value)``
    or the message ``<value> <requirement>``."""
    def convert(text):
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {kind}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"{text} {requirement}")
        return value
    return convert


# Sizes and counts; scales; tolerances.
positive_int = _number_type(int, "an integer", lambda v: v >= 1, "must be at least 1")
positive_float = _number_type(float, "a number", lambda v: math.isfinite(v) and v > 0, "must be a positive number")
non_negative_float = _number_type(float, "a number", lambda v: math.isfinite(v) and v >= 0,
                                  "must be a finite number of at least 0")


def tool_config(args):
    """The config of a tool's arguments: ``--config`` (``config_file``), else that of published
    ``--weights``, else the default."""
    path = args.config
    if path is None:
        named = PUBLISHED.get(getattr(args, "weights", None) or "")
        path = config_path(named) if named and named.config else getattr(args, "default_config", None)
    return load_config(config_file(path), args.overrides)


def config_file(path):
    """The file of a ``--config`` value: ``path`` itself when it is a file, else the shipped
    config it names, ``configs/bisenetv1_city.py`` or ``bisenetv1_city.py``, from any folder and
    in an installed package (``bisenet.resources.CONFIG_DIR``)."""
    if path is None or os.path.isfile(path):
        return path
    parts = os.path.normpath(path).split(os.sep)
    parts = parts[1:] if parts[0] == "configs" else parts
    if parts and not os.path.isabs(path) and ".." not in parts and os.path.isfile(os.path.join(CONFIG_DIR, *parts)):
        return os.path.join(CONFIG_DIR, *parts)
    names = sorted(name for name in os.listdir(CONFIG_DIR) if name.endswith(".py")) if os.path.isdir(CONFIG_DIR) else []
    raise ConfigError(f"config file not found: {path} (nor among the shipped configs in {CONFIG_DIR}: "
                      f"{', '.join(names) or 'none'})")


def tool_command(tool_file, args):
    """The command line that ran a tool (``python tools/demo.py img.png ...``), without its
    ``--config`` and ``--weights``, for messages that suggest other ones."""
    path = os.path.relpath(tool_file)
    argv, skip = [], False
    for token in args.argv:
        if skip:
            skip = False
        elif token in ("--config", "--weights"):
            skip = True
        elif not token.startswith(("--config=", "--weights=")):
            argv.append(token)
    return ["python", path if not path.startswith("..") else os.path.abspath(tool_file), *argv]


def trained_models(folder):
    """``(weights, config or None)`` of each training run in a subfolder of ``folder``: its
    model_final.pth and the config.py the trainer saved beside it."""
    found = []
    for entry in sorted(os.scandir(folder) if os.path.isdir(folder) else [], key=lambda e: e.name):
        weights, config = (os.path.join(folder, entry.name, name) for name in ("model_final.pth", "config.py"))
        if entry.is_dir() and os.path.isfile(weights):
            found.append((weights, config if os.path.isfile(config) else None))
    return found


def resolve_weights(cfg, weights, command=None):
    """The checkpoint to use: ``weights`` (a path, or a published name such as
    coincheung/bisenetv1_city, fetched into torch's hub cache on first use) or, when not given,
    the final checkpoint of the config's training run. When that is missing, the message names
    the runs trained beside it, each with ``command`` (``tool_command``) completed to use it."""
    if weights in PUBLISHED:
        return fetch(weights)
    path = weights or os.path.join(cfg.train.output_dir, "model_final.pth")
    if not os.path.isfile(path):
        published = ", ".join(name for name, entry in PUBLISHED.items() if entry.config)
        parent = os.path.dirname(os.path.normpath(cfg.train.output_dir))
        runs = trained_models(parent) if weights is None else []
        if runs:
            lines = [shlex.join([*(command or []), *(["--config", config] if config else []), "--weights", found])
                     for found, config in runs]
            raise MissingFileError(f"weights {path} not found (the final weights of the config's train.output_dir); "
                                   f"to use a model trained under {parent or '.'}{os.sep}, run:\n  "
                                   + "\n  ".join(lines))
        raise MissingFileError(f"weights {path} not found; train first (tools/train.py), pass --weights PATH, or a "
                               f"published model by name ({published})")
    return path


def tool_names():
    """The tools ``bisenet <tool>`` runs: tools/*.py (``bisenet.resources.TOOLS_DIR``)."""
    if not os.path.isdir(TOOLS_DIR):
        return []
    return sorted(name[:-3] for name in os.listdir(TOOLS_DIR) if name.endswith(".py") and not name.startswith("_"))


def _summary(name):
    """The first sentence of a tool's docstring, read without running the tool."""
    with open(os.path.join(TOOLS_DIR, f"{name}.py"), encoding="utf-8") as f:
        doc = ast.get_docstring(ast.parse(f.read())) or ""
    paragraph = " ".join(doc.split("\n\n")[0].split())
    sentence = re.match(r"(.*?\.)(\s|$)", paragraph)
    return sentence.group(1) if sentence else paragraph


def command_main(argv=None):
    """``bisenet TOOL [ARGS]``: runs tools/TOOL.py as ``python tools/TOOL.py ARGS`` would (the
    same file, as ``__main__``), so that an installed package, which has no tools/ folder to
    run, has every tool; ``check-dataset`` and ``check_dataset`` both name one."""
    argv = sys.argv[1:] if argv is None else list(argv)
    names = tool_names()
    if not argv or argv[0] in ("-h", "--help"):
        width = max(map(len, names), default=0)
        print("usage: bisenet TOOL [ARGS ...]   (bisenet TOOL --help for a tool's options)\n\ntools:\n"
              + "\n".join(f"  {name.replace('_', '-'):<{width}}  {_summary(name)}" for name in names))
        return
    name = argv[0].replace("-", "_")
    if name not in names:
        raise UserError(f"no tool named {argv[0]!r}; the tools are {', '.join(n.replace('_', '-') for n in names)}")
    path = os.path.join(TOOLS_DIR, f"{name}.py")
    sys.argv = [path, *argv[1:]]  # what the tool parses; its usage names it by its file
    runpy.run_path(path, run_name="__main__")


def command():
    """The ``bisenet`` console script (setup.py's entry point) and ``python -m bisenet``."""
    run(command_main)
