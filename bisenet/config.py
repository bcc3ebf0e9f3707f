"""Typed experiment configuration: data, and the checks it can make on its own.

A config file is a Python file that builds one ``Config`` object named ``cfg``. Every field is
typed; ``load_config`` gives each value its declared type, applies command-line overrides of the
form ``section.field=value`` and checks types, ranges and the fields that must agree. Unknown
keys fail loudly with the key's name, so a typo never falls back to a silent default.

Names that only the rest of the package knows (models, losses, datasets, evaluation modes) are
checked by ``bisenet.config_check``, whose ``load_config`` (``bisenet.load_config``) is this
one's followed by those checks: the config imports nothing of what it configures.
"""
import ast
import dataclasses
import difflib
import math
import os
import runpy
import traceback
from dataclasses import dataclass, field
from typing import Any, Dict, List, Sequence, Tuple, Union, get_args, get_origin, get_type_hints

from bisenet.data import cityscapes
from bisenet.errors import UserError
from bisenet.outputs import write_text


class ConfigError(UserError):
    """A config file or override that cannot be used as written."""


@dataclass
class ModelConfig:
    name: str = "bisenetv1"
    num_classes: int = 19
    # Where training starts the backbone from: "" for random init; "imagenet" for the published
    # ImageNet weights in torch's hub cache (V1: torchvision's resnet18-f37072fd.pth; V2: the
    # reference's backbone_v2.pth), never downloaded silently; or a path to such a file.
    backbone_weights: str = ""


@dataclass
class DataConfig:
    # A known dataset (bisenet/data/catalog.py: cityscapes, cocostuff, ade20k, camvid) or "custom":
    # which hints errors and tools/check_dataset.py give; the fields below describe the data.
    dataset: str = "cityscapes"
    root: str = "datasets/cityscapes"
    # Pairs are found as {root}/{image_dir}/**/*{image_suffix} and the same relative path under
    # {root}/{label_dir} ending in {label_suffix}; "{split}" is replaced by the split name.
    image_dir: str = "leftImg8bit/{split}"
    label_dir: str = "gtFine/{split}"
    image_suffix: str = "_leftImg8bit.png"
    label_suffix: str = "_gtFine_labelIds.png"
    train_split: str = "train"
    val_split: str = "val"
    # Optional list files of "image,label" lines (relative to root); they replace the folder
    # scan when set.
    train_list: str = ""
    val_list: str = ""
    class_names: Tuple[str, ...] = cityscapes.CLASS_NAMES
    palette: Tuple[Tuple[int, int, int], ...] = tuple(tuple(int(c) for c in rgb) for rgb in cityscapes.PALETTE)
    # Raw label value -> train id (or the ignore index) for every valid raw value; empty means
    # the files hold train ids already. The default turns Cityscapes labelIds into trainIds.
    label_map: Dict[int, int] = field(default_factory=lambda: dict(cityscapes.LABEL_MAP))
    ignore_index: int = 255
    # RGB statistics of Cityscapes on [0, 1] images; the reference weights expect exactly these.
    mean: Tuple[float, float, float] = (0.3257, 0.3690, 0.3223)
    std: Tuple[float, float, float] = (0.2112, 0.2148, 0.2115)
    scale_range: Tuple[float, float] = (0.75, 2.0)
    crop_size: Tuple[int, int] = (1024, 1024)  # (height, width)
    flip_prob: float = 0.5
    # Brightness, contrast and saturation are each scaled by a factor in [1 - j, 1 + j].
    color_jitter: float = 0.4
    num_workers: int = 4
    # Training only: replace up to this many unreadable samples by the next one (counted and
    # reported) instead of stopping. Evaluation always stops on a bad sample.
    max_skipped_samples: int = 0


@dataclass
class TrainConfig:
    max_iters: int = 80000
    batch_size: int = 16  # images per optimiser step, over all processes
    base_lr: float = 1e-2
    momentum: float = 0.9
    weight_decay: float = 5e-4
    head_lr_multiplier: float = 10.0
    warmup_iters: int = 1000
    warmup_ratio: float = 0.1
    poly_power: float = 0.9
    loss: str = "ohem"  # "ohem" (the BiSeNet recipe) or "cross_entropy", on every output
    ohem_thresh: float = 0.7  # keep pixels whose predicted probability of the truth is below this
    ohem_min_fraction: float = 1.0 / 16
    aux_weight: float = 1.0
    amp: bool = True
    # Mixed-precision type: "auto" (fp16 with a gradient scaler on CUDA, bf16 on the CPU),
    # "fp16" or "bf16".
    amp_dtype: str = "auto"
    # fp16 only: a step whose loss or gradients overflow is skipped and the loss scale lowered, as
    # the gradient scaler intends; the run stops after this many skips in a row.
    max_consecutive_skips: int = 20
    # NHWC activations: about 20% faster training steps on CPU (oneDNN) and on tensor cores.
    channels_last: bool = True
    sync_bn: bool = False
    # Without sync_bn each process keeps its own BatchNorm running statistics (only the first's
    # are saved): "reduce" averages them over the processes after every step, "broadcast" gives
    # every process the first's before each evaluation and save, "" leaves them (timm's --dist-bn).
    dist_bn: str = ""
    # Weight EMA: an exponential moving average of the weights and BatchNorm statistics, updated
    # after every optimiser step, saved as "model_ema" beside "model" (e.g. 0.9998; 0: off).
    ema_decay: float = 0.0
    # Warm the EMA's decay up as min(ema_decay, (1 + n) / (10 + n)) after n updates, so that a
    # short run's average does not keep the initial weights (TensorFlow's num_updates form).
    ema_warmup: bool = False
    # Scale the gradients down to this global norm over all parameters (after unscaling under
    # fp16); the norm is logged. 0: off.
    clip_grad_norm: float = 0.0
    # Cross-entropy against (1 - s) one-hot + s / num_classes targets; OHEM still picks its hard
    # pixels by the unsmoothed probability of the true class. 0: off.
    label_smoothing: float = 0.0
    seed: int = 0
    log_interval: int = 50
    checkpoint_interval: int = 5000
    keep_checkpoints: int = 3  # periodic checkpoints kept; older ones are deleted
    eval_interval: int = 0  # evaluate on the val split every this many iterations (0: never)
    # Where checkpoints and logs go; empty: output/<config file name>, so that a copied config
    # never writes into another experiment's folder.
    output_dir: str = ""


@dataclass
class EvalConfig:
    batch_size: int = 2
    scales: Tuple[float, ...] = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)
    crop_size: Tuple[int, int] = (1024, 1024)  # (height, width)
    num_workers: int = 2
    # "coincheung": the reference implementation's evaluator, pixel for pixel, so that its
    # weights give its published table; "standard": ours, without its size rounding and window
    # summing (see bisenet/inference.py).
    protocol: str = "coincheung"
    # Resize each image so that its short side is this many pixels before the scales (bilinear),
    # and score the prediction at the label's own size: the reference's eval_start_shortside
    # (ADE20K). 0: images at their own size.
    short_side: int = 0
    # Modes reported after training, in the reference's names: ss, ssc, msf, mscf (or ms, ssf, ...).
    final_modes: Tuple[str, ...] = ("ss",)


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> Dict[str, Dict[str, Any]]:
        """Plain types only, so checkpoints holding it load with ``weights_only=True``."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Dict[str, Dict[str, Any]]) -> "Config":
        cfg = cls()
        for section, values in data.items():
            for key, value in values.items():
                _set(cfg, f"{section}.{key}", value)
        return cfg


_loading = []  # config files being executed, outermost first: a config may load its base


def load_config(path: Union[str, os.PathLike, None] = None, overrides: Sequence[str] = ()) -> Config:
    """Read ``cfg`` from a config file (or the defaults) and apply ``section.key=value`` overrides,
    with the checks of ``validate``; ``bisenet.load_config`` also checks the names of models,
    losses, datasets and evaluation modes (``bisenet.config_check``).

    A config file may start from another one (``cfg = base_config("bisenetv1_city.py")`` and a
    few changes). An empty ``train.output_dir`` becomes ``output/<name of the outermost file>``.
    """
    if path is None:
        cfg = Config()
    else:
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise ConfigError(f"config file not found: {path} (configs live in configs/, e.g. "
                              "configs/bisenetv1_city.py)")
        _loading.append(path)
        try:
            namespace = runpy.run_path(path)
        except UserError:
            raise  # from a base config: already names its file
        except SyntaxError as exc:
            raise ConfigError(f"{path}:{exc.lineno}: SyntaxError: {exc.msg}") from None
        except Exception as exc:  # an import error, a misspelt keyword (TypeError), ...
            lines = [frame.lineno for frame in traceback.extract_tb(exc.__traceback__)
                     if os.path.abspath(frame.filename) == os.path.abspath(path)]
            where = f"{path}:{lines[-1]}" if lines else path
            raise ConfigError(f"{where}: {type(exc).__name__}: {exc}") from None
        finally:
            _loading.pop()
        cfg = namespace.get("cfg")
        if not isinstance(cfg, Config):
            raise ConfigError(f"{path} must define `cfg = Config(...)` (bisenet.config.Config)")
        _coerce_fields(cfg)  # the file may have set cfg.train.base_lr = 1 or cfg.data.crop_size = [512, 512]
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.key=value, e.g. train.max_iters=100")
        key, text = item.split("=", 1)
        key = key.strip()
        _set(cfg, key, _parse_override(text.strip(), _field_type(cfg, key)))
    if not _loading and not cfg.train.output_dir:
        name = os.path.splitext(os.path.basename(path))[0] if path else "default"
        cfg.train.output_dir = os.path.join("output", name)
    validate(cfg)
    return cfg


def base_config(name: str) -> Config:
    """In a config file: the config of ``name`` (a path relative to that file, the one
    ``load_config`` is running; outside of one, relative to the current folder), to change a few
    fields of. Its ``train.output_dir`` stays empty unless it sets one, so the new config gets
    its own folder."""
    folder = os.path.dirname(os.path.abspath(_loading[-1])) if _loading else "."
    return load_config(os.path.join(folder, name))


def format_config(cfg: Config) -> str:
    """Python source that builds ``cfg``: readable, and usable as ``--config``."""
    lines = ["from bisenet.config import Config, DataConfig, EvalConfig, ModelConfig, TrainConfig", "",
             "cfg = Config("]
    for section in dataclasses.fields(cfg):
        sub = getattr(cfg, section.name)
        lines.append(f"    {section.name}={type(sub).__name__}(")
        lines += [f"        {f.name}={getattr(sub, f.name)!r}," for f in dataclasses.fields(sub)]
        lines.append("    ),")
    return "\n".join(lines + [")", ""])


def write_config(cfg: Config, path: str) -> None:
    """``format_config`` into ``path``, with a header saying what it is."""
    write_text(path, "# The complete config of this run (defaults and overrides resolved), written when it started.\n"
                     f"# Train again with it: python tools/train.py --config {path}\n" + format_config(cfg))


def validate(cfg: Config) -> None:
    """Check every field's type, range and the fields that must agree, so a wrong value fails
    here rather than mid-run. Changes nothing: values get their types where they are set
    (``load_config``, overrides, ``Config.from_dict``)."""
    for key, sub, name, typ in _fields(cfg):
        value = getattr(sub, name)
        if not _has_type(value, typ):  # e.g. a list where a tuple is declared, in a config built in code
            raise ConfigError(f"config key {key!r} expects {_type_name(typ)}, got {value!r}")
    check_ranges(cfg)
    data, num_classes = cfg.data, cfg.model.num_classes
    if len(data.class_names) != num_classes:
        raise ConfigError(f"model.num_classes={num_classes} but data.class_names has {len(data.class_names)} "
                          "names; give one name per class")
    if data.palette and len(data.palette) != num_classes:
        raise ConfigError(f"data.palette has {len(data.palette)} colours for {num_classes} classes; give one RGB "
                          "triple per class, or () for generated colours")
    for raw, train_id in data.label_map.items():
        if not 0 <= raw <= 255:
            raise ConfigError(f"data.label_map key {raw} is not an 8-bit label value (0-255)")
        if not (0 <= train_id < num_classes or train_id == data.ignore_index):
            raise ConfigError(f"data.label_map maps {raw} to {train_id}, which is neither a class id "
                              f"(0-{num_classes - 1}) nor data.ignore_index={data.ignore_index}")
    repeated = sorted({mode for mode in cfg.eval.final_modes if cfg.eval.final_modes.count(mode) > 1})
    if repeated:
        raise ConfigError(f"eval.final_modes={list(cfg.eval.final_modes)}: {', '.join(repeated)} is listed twice; "
                          "list each mode once")
    if cfg.train.amp_dtype not in ("auto", "fp16", "bf16"):
        raise ConfigError(f"train.amp_dtype must be auto, fp16 or bf16, got {cfg.train.amp_dtype!r}")


DIST_BN = ("", "reduce", "broadcast")


def check_ranges(cfg: Config) -> None:
    """Values that type-check but cannot work, refused with the key and the valid range."""
    model, data, train, ev = cfg.model, cfg.data, cfg.train, cfg.eval

    def need(ok, key, value, requirement):
        if not ok:
            raise ConfigError(f"{key}={value!r}: {requirement}")

    # inf and NaN pass every comparison below the wrong way (NaN is neither < nor >=): refuse
    # them in every number of the config first.
    for section in dataclasses.fields(cfg):
        for f in dataclasses.fields(getattr(cfg, section.name)):
            value = getattr(getattr(cfg, section.name), f.name)
            numbers = value if isinstance(value, tuple) else (value,)
            need(all(math.isfinite(v) for v in numbers if isinstance(v, float)), f"{section.name}.{f.name}",
                 _plain(value), "must be a finite number (not inf or nan)")

    need(model.num_classes >= 1, "model.num_classes", model.num_classes, "must be at least 1")
    need(not 0 <= data.ignore_index < model.num_classes, "data.ignore_index", data.ignore_index,
         f"is a class id (0-{model.num_classes - 1}), so that class would never be learned nor scored; use a "
         "value outside the classes, e.g. 255")
    need(ev.short_side >= 0, "eval.short_side", ev.short_side, "is a size in pixels, or 0 for none")
    for key, size in (("data.crop_size", data.crop_size), ("eval.crop_size", ev.crop_size)):
        need(min(size) >= 1, key, list(size), "height and width must be at least 1 pixel")
    need(0 < data.scale_range[0] <= data.scale_range[1], "data.scale_range", list(data.scale_range),
         "must be [low, high] with 0 < low <= high")
    for key, value in (("data.flip_prob", data.flip_prob), ("data.color_jitter", data.color_jitter),
                       ("train.ohem_min_fraction", train.ohem_min_fraction)):
        need(0 <= value <= 1, key, value, "must be between 0 and 1")
    need(0 < train.ohem_thresh <= 1, "train.ohem_thresh", train.ohem_thresh, "is a probability: 0 < thresh <= 1")
    for key, value in (("train.ema_decay", train.ema_decay), ("train.label_smoothing", train.label_smoothing)):
        need(0 <= value < 1, key, value, "must be in [0, 1) (0: off)")
    need(train.clip_grad_norm >= 0, "train.clip_grad_norm", train.clip_grad_norm, "must not be negative (0: off)")
    need(train.dist_bn in DIST_BN, "train.dist_bn", train.dist_bn, "choose reduce, broadcast or \"\" (off)")
    need(0 < train.warmup_ratio <= 1, "train.warmup_ratio", train.warmup_ratio, "must be in (0, 1]")
    need(0 <= train.momentum < 1, "train.momentum", train.momentum, "must be in [0, 1)")
    need(train.base_lr > 0, "train.base_lr", train.base_lr, "must be positive")
    for key, value in (("train.weight_decay", train.weight_decay), ("train.poly_power", train.poly_power),
                       ("train.head_lr_multiplier", train.head_lr_multiplier), ("train.aux_weight", train.aux_weight)):
        need(value >= 0, key, value, "must not be negative")
    need(train.max_iters >= 1, "train.max_iters", train.max_iters, "must be at least 1")
    need(0 <= train.warmup_iters < train.max_iters, "train.warmup_iters", train.warmup_iters,
         f"must be at least 0 and less than train.max_iters={train.max_iters}")
    need(train.batch_size >= 2, "train.batch_size", train.batch_size,
         "must be at least 2 images per process: BatchNorm needs more than one value per channel")
    for key, value in (("train.log_interval", train.log_interval),
                       ("train.checkpoint_interval", train.checkpoint_interval),
                       ("train.keep_checkpoints", train.keep_checkpoints),
                       ("train.max_consecutive_skips", train.max_consecutive_skips),
                       ("eval.batch_size", ev.batch_size)):
        need(value >= 1, key, value, "must be at least 1")
    for key, value in (("train.eval_interval", train.eval_interval), ("data.num_workers", data.num_workers),
                       ("eval.num_workers", ev.num_workers), ("data.max_skipped_samples", data.max_skipped_samples)):
        need(value >= 0, key, value, "must be 0 or more")
    need(len(ev.scales) >= 1 and min(ev.scales) > 0, "eval.scales", list(ev.scales),
         "must be one or more positive scales")
    need(min(data.std) > 0, "data.std", list(data.std),
         "each channel's standard deviation must be positive: images are divided by it")


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _fields(cfg: Config):
    """``(key, section object, field name, declared type)`` of every field of ``cfg``; refuses an
    attribute that is no field (``cfg.train.max_iter = 5`` in a config file)."""
    for section in dataclasses.fields(cfg):
        sub = getattr(cfg, section.name)
        hints = get_type_hints(type(sub))
        names = [f.name for f in dataclasses.fields(sub)]
        for extra in sorted(set(vars(sub)) - set(names)):
            close = difflib.get_close_matches(extra, names, n=1)
            raise ConfigError(f"unknown config key '{section.name}.{extra}'"
                              + (f" (did you mean {section.name}.{close[0]}?)" if close else ""))
        for name in names:
            yield f"{section.name}.{name}", sub, name, hints[name]


def typed(cfg: Config) -> Config:
    """A copy of ``cfg`` whose values have their declared types (a list where a tuple is
    declared, an int where a float is), as ``load_config`` gives them: for a config built in
    code. ``cfg`` is left as it is; a value that cannot be converted is refused with its key."""
    copy = Config()
    for key, sub, name, _ in _fields(cfg):
        _set(copy, key, getattr(sub, name))
    return copy


def _coerce_fields(cfg: Config) -> None:
    """Give every field the declared type of its value as a config file may write it: a list
    where a tuple is declared, an int where a float is."""
    for key, sub, name, typ in _fields(cfg):
        setattr(sub, name, _coerce(getattr(sub, name), typ, key))


def _has_type(value: Any, typ: Any) -> bool:
    """Whether ``value`` is of the declared type ``typ`` (an int counts as a float)."""
    if typ is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if typ in (bool, int, str):
        return type(value) is typ
    args = get_args(typ)
    if get_origin(typ) in (tuple, Tuple):
        if type(value) is not tuple:
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_has_type(v, args[0]) for v in value)
        return len(value) == len(args) and all(_has_type(v, a) for v, a in zip(value, args))
    if get_origin(typ) in (dict, Dict):
        return type(value) is dict and all(_has_type(k, args[0]) and _has_type(v, args[1]) for k, v in value.items())
    if get_origin(typ) in (list, List):
        return type(value) is list and all(_has_type(v, args[0]) for v in value)
    return False


def _set(cfg: Config, key: str, value: Any) -> None:
    parts = key.split(".")
    sections = [f.name for f in dataclasses.fields(cfg)]
    if len(parts) != 2 or parts[0] not in sections:
        raise ConfigError(f"unknown config key {key!r}; keys look like section.field with section one of {sections}")
    sub = getattr(cfg, parts[0])
    names = [f.name for f in dataclasses.fields(sub)]
    if parts[1] not in names:
        close = difflib.get_close_matches(parts[1], names, n=1)
        hint = f" (did you mean {parts[0]}.{close[0]}?)" if close else f"; valid: {', '.join(names)}"
        raise ConfigError(f"unknown config key {key!r}{hint}")
    hints = get_type_hints(type(sub))
    setattr(sub, parts[1], _coerce(value, hints[parts[1]], key))


def _field_type(cfg: Config, key: str) -> Any:
    """The declared type of ``section.field``, or None for a key ``_set`` will refuse."""
    section, _, name = key.partition(".")
    sub = getattr(cfg, section, None)
    if not dataclasses.is_dataclass(sub) or name not in {f.name for f in dataclasses.fields(sub)}:
        return None
    return get_type_hints(type(sub))[name]


def _parse_override(text: str, typ: Any) -> Any:
    """The value of an override's text: a Python literal (numbers, lists, True), except for a
    text field, which takes the text as the shell gave it (data.root=2024 is the folder "2024",
    not a number to quote); a quoted literal is unquoted there too."""
    if typ is str:
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return text
        return value if isinstance(value, str) else text
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text  # a bare word: _coerce says what the field expects


def _coerce(value: Any, typ: Any, key: str) -> Any:
    def fail():
        raise ConfigError(f"config key {key!r} expects {_type_name(typ)}, got {value!r}")

    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        fail()
    if typ is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        fail()
    if typ is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        fail()
    if typ is str:
        if isinstance(value, str):
            return value
        fail()
    if get_origin(typ) in (tuple, Tuple):
        if not isinstance(value, (list, tuple)):
            fail()
        args = get_args(typ)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], key) for v in value)
        if len(value) != len(args):
            fail()
        return tuple(_coerce(v, a, key) for v, a in zip(value, args))
    if get_origin(typ) in (dict, Dict):
        if not isinstance(value, dict):
            fail()
        key_type, value_type = get_args(typ)
        # JSON (config.json) turns int keys into strings: take them back.
        return {_coerce(int(k) if key_type is int and isinstance(k, str) and k.lstrip("-").isdigit() else k,
                        key_type, key): _coerce(v, value_type, key) for k, v in value.items()}
    if get_origin(typ) in (list, List):
        if not isinstance(value, (list, tuple)):
            fail()
        return [_coerce(v, get_args(typ)[0], key) for v in value]
    raise ConfigError(f"config key {key!r} has an unsupported type {typ}")


def _type_name(typ: Any) -> str:
    return getattr(typ, "__name__", None) or str(typ).replace("typing.", "")
