"""Checkpoints: atomic save, the one strict load with a readable report, reading and resuming.
Other implementations' formats are converted by ``bisenet.convert``."""
import os
import re
import warnings

import torch

from bisenet.errors import MissingFileError, UserError
from bisenet.models import MODELS, architecture_of
from bisenet.outputs import atomic_open, free_bytes, mount_point
from bisenet.processes import process_alive


class CheckpointError(UserError):
    """A checkpoint that does not fit the model; the message lists every mismatch."""


class DiskFullError(CheckpointError):
    """The disk filled up while a checkpoint was written; the file being replaced is intact."""

    def __init__(self, message, size_mb):
        super().__init__(message)
        self.size_mb = size_mb


TEMP_PATTERN = re.compile(r"^\.tmp-(?:(\d+)-)?.*\.pth$")  # bisenet.outputs' temporary files of checkpoints


def save_checkpoint(state, path):
    """Write ``state`` to ``path`` atomically (``bisenet.outputs.atomic_open``): a crash mid-write
    leaves the old file intact, and the temporary file beside it carries the writer's PID, so a
    later run can tell an abandoned one (``remove_stale_temp_files``).

    A full disk raises ``DiskFullError``, recognised by the filesystem's free space rather than
    by an error's wording (torch reports a failed write as ``RuntimeError: [enforce fail at
    inline_container.cc] unexpected pos``, its wording varies between versions): before the write
    when less is free than the tensors alone take, after a failed write when less is free than
    the file can take."""
    tensor_bytes, at_most = _file_size_bounds(state)
    if free_bytes(path) < tensor_bytes:
        raise _disk_full(path, tensor_bytes)
    try:
        with atomic_open(path, "wb") as f:
            torch.save(state, f)
    except Exception as exc:
        if getattr(exc, "no_space", False) or free_bytes(path) < at_most:
            raise _disk_full(path, tensor_bytes) from None
        raise


def _disk_full(path, size):
    return DiskFullError(f"no space left on {mount_point(path)} while writing {path} (about {size / 2**20:.0f} MB "
                         f"needed, {free_bytes(path) / 2**20:.0f} MB free)", size / 2**20)


def _file_size_bounds(state):
    """What ``torch.save(state)`` writes at least (the tensors' bytes) and at most: the tensors,
    each with its zip records and 64-byte alignment (well under 1 KiB), and 1 MiB for the
    pickled rest (configs, RNG states)."""
    tensors = list(_tensors(state))
    size = sum(t.numel() * t.element_size() for t in tensors)
    return size, size + 1024 * len(tensors) + 2**20


def _tensors(obj):
    if torch.is_tensor(obj):
        yield obj
    elif isinstance(obj, dict):
        for value in obj.values():
            yield from _tensors(value)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            yield from _tensors(value)


def remove_stale_temp_files(directory):
    """Delete the temporary files of checkpoint writers that are no longer running (a SIGKILL
    mid-save); returns their paths."""
    removed = []
    for name in os.listdir(directory) if os.path.isdir(directory) else []:
        match = TEMP_PATTERN.match(name)
        if match and not (match.group(1) and process_alive(int(match.group(1)))):
            os.remove(os.path.join(directory, name))
            removed.append(os.path.join(directory, name))
    return removed


def read_torch_file(path):
    """``torch.load`` of ``path`` (tensors and plain types only), or ``CheckpointError`` saying
    what the file is instead (empty, truncated, text, another format)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"cannot read {path}: {describe_unreadable(path, exc)}") from None


def read_state_dict(path, ema=False):
    """The model state dict in ``path``: one of our checkpoints (``{"model": ...}``), another
    training checkpoint (``state_dict`` / ``model_state_dict``), or a bare state dict. A
    ``module.`` prefix from DistributedDataParallel is removed. With ``ema``, the EMA weights
    (``model_ema``) of one of our checkpoints trained with ``train.ema_decay``."""
    if not os.path.isfile(path):
        raise MissingFileError(f"weights file not found: {path}")
    obj = read_torch_file(path)
    if ema:
        if not (isinstance(obj, dict) and isinstance(obj.get("model_ema"), dict)):
            raise CheckpointError(f"{path} holds no EMA weights (trained without train.ema_decay); evaluate its "
                                  "weights without --ema")
        obj = obj["model_ema"]
    if isinstance(obj, dict):
        for key in ("model", "state_dict", "model_state_dict"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(torch.is_tensor(v) for v in obj.values()):
        raise CheckpointError(f"{path} holds no model state dict (expected a dict of tensors)")
    if obj and all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj


def compare_state_dicts(expected, given):
    """Lists of (missing, unexpected, shape mismatches) between two name -> tensor mappings."""
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    mismatched = [
        (k, tuple(given[k].shape), tuple(expected[k].shape))
        for k in expected if k in given and tuple(given[k].shape) != tuple(expected[k].shape)
    ]
    return missing, unexpected, mismatched


def format_mismatch(missing, unexpected, mismatched, limit=20):
    lines = []
    for title, items in (("missing", missing), ("unexpected", unexpected)):
        if items:
            more = " ..." if len(items) > limit else ""
            lines.append(f"{len(items)} {title} key(s): " + ", ".join(items[:limit]) + more)
    for key, got, want in mismatched[:limit]:
        lines.append(f"shape of {key}: checkpoint {got}, model {want}")
    return "\n".join(lines)


def load_state_strict(target, state, source, what=None, hint="", fill=(), limit=20):
    """Load ``state`` into ``target`` once every name and shape is checked: every loader of
    weights goes through here. On any mismatch nothing is loaded and ``CheckpointError`` says
    "``source`` does not fit ``what``:" (default: the module's class name), lists every missing,
    unexpected and mis-shaped entry (``limit`` of each kind), then ``hint``: a text, or a function
    of the ``(missing, unexpected, mismatched)`` lists that returns one.

    ``target`` is a module, or a dict part name -> module when ``state`` is a dict part name ->
    state dict (a file holding several modules, such as BiSeNetV2's backbone), reported part by
    part. Entries under the module names in ``fill`` may be absent: those keep the module's own
    values. Returns the names of the entries so kept."""
    parts, states = (target, state) if isinstance(target, dict) else ({"": target}, {"": state})
    prefixes = tuple(f"{name}." for name in fill)
    reports, kept, found = [], [], ([], [], [])
    for name, module in parts.items():
        missing, unexpected, mismatched = compare_state_dicts(module.state_dict(), states[name])
        kept += [k for k in missing if prefixes and k.startswith(prefixes)]
        missing = [k for k in missing if not (prefixes and k.startswith(prefixes))]
        report = format_mismatch(missing, unexpected, mismatched, limit)
        if report:
            reports.append(f"{name}:\n{report}" if name else report)
        for total, part in zip(found, (missing, unexpected, mismatched)):
            total += part
    if reports:
        hint = hint(*found) if callable(hint) else hint
        what = what or type(target).__name__
        raise CheckpointError(f"{source} does not fit {what}:\n" + "\n".join(reports) + (hint or ""))
    for name, module in parts.items():
        module.load_state_dict({**module.state_dict(), **states[name]} if kept else states[name], strict=True)
    return kept


def load_weights(model, path):
    """Load ``path`` (a checkpoint, or a state dict that ``read_state_dict`` read) into ``model``
    strictly; raises ``CheckpointError`` listing every mismatch, with what to do about it."""
    state = path if isinstance(path, dict) else read_state_dict(path)
    source = "the state dict" if isinstance(path, dict) else path
    load_state_strict(model, state, source, hint=lambda *found: _mismatch_hint(model, state, *found))
    return model


# The configs/<architecture>_<dataset>.py that a class count suggests.
DATASET_OF_CLASSES = {19: "city", 171: "coco", 150: "ade20k", 11: "camvid"}


def _mismatch_hint(model, state, missing, unexpected, mismatched):
    """What to do about weights that do not fit ``model``: another architecture's config, the
    converter, or the config with their class count."""
    hint = ""
    theirs, ours = architecture_of(state), architecture_of(model.state_dict())
    if theirs and ours and theirs[0] != ours[0]:
        name, classes = MODELS[theirs[0]].__name__, theirs[1]
        dataset = DATASET_OF_CLASSES.get(classes)
        example = f"configs/{theirs[0]}_{dataset}.py" if dataset else f"configs/{theirs[0]}_*.py"
        hint = (f"\nThese are {name} weights ({classes} classes); pass a {name} config, e.g. {example}, or the "
                "config.py saved beside them")
    elif len(missing) == len(model.state_dict()):
        hint = ("\nNo name matches: if this is another implementation's checkpoint, convert it with "
                "tools/convert_checkpoint.py")
    classes = {(theirs[0], ours[0]) for _, theirs, ours in mismatched if theirs[1:] == ours[1:]}
    if len(classes) == 1 and not missing and not unexpected:
        theirs, ours = classes.pop()
        hint = (f"\nThe checkpoint predicts {theirs} classes and the config's model {ours}: pass the config it "
                "was trained with (a training run saves it as config.py beside its checkpoints), or "
                "--finetune-from it to train on these classes")
    return hint


def load_for_finetune(model, path):
    """Load every entry of ``path`` whose name and shape fit ``model``; the rest of the model
    keeps its fresh initialisation. Returns report lines naming every entry not loaded."""
    state = read_state_dict(path)
    own = model.state_dict()
    missing, unexpected, mismatched = compare_state_dicts(own, state)
    fitting = {k: v for k, v in state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    model.load_state_dict({**own, **fitting}, strict=True)
    report = [f"loaded {len(fitting)} of {len(own)} entries from {path}"]
    report += [f"re-initialised {k}: checkpoint {got}, model {want}" for k, got, want in mismatched]
    report += [f"re-initialised {k}: not in the checkpoint" for k in missing]
    report += [f"not used {k}: not in the model" for k in unexpected]
    return report


CHECKPOINT_PATTERN = re.compile(r"^checkpoint_(\d+)\.pth$")


def list_checkpoints(output_dir):
    """Periodic checkpoints in ``output_dir``, oldest first."""
    if not os.path.isdir(output_dir):
        return []
    found = [(int(m.group(1)), n) for n in os.listdir(output_dir) if (m := CHECKPOINT_PATTERN.match(n))]
    return [os.path.join(output_dir, n) for _, n in sorted(found)]


def checkpoint_iteration(path):
    """The iteration in a periodic checkpoint's name (``checkpoint_000170.pth``: 170)."""
    return int(CHECKPOINT_PATTERN.match(os.path.basename(path)).group(1))


def load_checkpoint(path):
    """A training checkpoint (plain types: loads with ``weights_only=True``)."""
    return torch.load(path, map_location="cpu", weights_only=True)


def describe_unreadable(path, exc):
    """Why ``path`` could not be loaded, in words: empty, truncated, text, or another format."""
    with open(path, "rb") as f:
        head = f.read(64)
    if not head:
        return "it is empty (0 bytes)"
    if head.startswith(b"PK\x03\x04"):
        return "it is truncated or damaged (an interrupted copy or a full disk?)"
    try:
        head.decode("utf-8")
        return "it is a text file, not a PyTorch checkpoint"
    except UnicodeDecodeError:
        return f"it is not a PyTorch checkpoint ({type(exc).__name__})"


WEIGHTS_ONLY = "it holds model weights without the training state (optimiser, iteration)"


def _read_training_checkpoint(path):
    """``(checkpoint, None)``, or ``(None, why it cannot be resumed from)``."""
    if not os.path.isfile(path):
        return None, "no such file"
    try:
        checkpoint = load_checkpoint(path)
    except Exception as exc:
        return None, describe_unreadable(path, exc)
    if not isinstance(checkpoint, dict) or "iteration" not in checkpoint or "optimizer" not in checkpoint:
        return None, WEIGHTS_ONLY
    return checkpoint, None


def load_training_checkpoint(path):
    """A checkpoint to resume from, or ``CheckpointError`` saying what ``path`` is instead and
    what to do: a missing, damaged or foreign file, or weights without the training state."""
    checkpoint, problem = _read_training_checkpoint(path)
    if problem == WEIGHTS_ONLY:
        raise CheckpointError(f"cannot resume from {path}: {problem}, like model_final.pth or a converted model. "
                              f"To train on from these weights, start a new run with --finetune-from {path}")
    if problem:
        raise CheckpointError(f"cannot resume from {path}: {problem}. Resume from another checkpoint "
                              "(--resume CKPT) or start a new run in another train.output_dir")
    return checkpoint


def load_latest_checkpoint(output_dir):
    """``(path, checkpoint)`` of the newest readable checkpoint, or ``(None, None)`` when there
    is none. A file that cannot be read (a crash mid-copy, a full disk) is skipped with a
    warning; if every one is unreadable, ``CheckpointError`` lists them."""
    unreadable = []
    for path in reversed(list_checkpoints(output_dir)):
        checkpoint, problem = _read_training_checkpoint(path)
        if checkpoint is not None:
            return path, checkpoint
        warnings.warn(f"skipping {path}: {problem}; trying the previous one")
        unreadable.append(f"{path}: {problem}")
    if unreadable:
        raise CheckpointError(f"none of the {len(unreadable)} checkpoint(s) in {output_dir} can be read:\n  "
                              + "\n  ".join(unreadable) + "\nResume from a good copy with --resume CKPT, or set "
                              "train.output_dir to a new folder to start again (the files are left as they are)")
    return None, None
