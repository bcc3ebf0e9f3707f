"""Checkpoints: atomic save, strict load with a readable report, and converters."""
import os
import random
import re
import tempfile
import warnings

import numpy as np
import torch

# Checkpoint formats other implementations save, by the name users pass to --from.
CONVERTERS = {}


class CheckpointError(RuntimeError):
    """A checkpoint that does not fit the model; the message lists every mismatch."""


def save_checkpoint(state, path):
    """Write ``state`` to ``path`` atomically: a crash mid-write leaves the old file intact."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".pth", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def read_state_dict(path):
    """The model state dict in ``path``: one of our checkpoints (``{"model": ...}``), another
    training checkpoint (``state_dict`` / ``model_state_dict``), or a bare state dict. A
    ``module.`` prefix from DistributedDataParallel is removed."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"cannot read {path} as a PyTorch checkpoint: {exc}") from exc
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
            lines.append(f"{len(items)} {title} key(s): " + ", ".join(items[:limit]) + (" ..." if len(items) > limit else ""))
    for key, got, want in mismatched[:limit]:
        lines.append(f"shape of {key}: checkpoint {got}, model {want}")
    return "\n".join(lines)


def load_weights(model, path):
    """Load ``path`` into ``model`` strictly; raises ``CheckpointError`` listing every mismatch."""
    state = read_state_dict(path)
    missing, unexpected, mismatched = compare_state_dicts(model.state_dict(), state)
    report = format_mismatch(missing, unexpected, mismatched)
    if report:
        hint = ""
        if len(missing) == len(model.state_dict()):
            hint = "\nNo name matches: if this is another implementation's checkpoint, convert it with tools/convert_checkpoint.py"
        raise CheckpointError(f"{path} does not fit {type(model).__name__}:\n{report}{hint}")
    model.load_state_dict(state, strict=True)
    return model


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


def load_checkpoint(path):
    """A training checkpoint (plain types: loads with ``weights_only=True``)."""
    return torch.load(path, map_location="cpu", weights_only=True)


def load_latest_checkpoint(output_dir):
    """``(path, checkpoint)`` of the newest readable checkpoint, or ``(None, None)``. A file that
    cannot be read (a crash mid-copy, a full disk) is skipped with a warning."""
    for path in reversed(list_checkpoints(output_dir)):
        try:
            checkpoint = load_checkpoint(path)
            if isinstance(checkpoint, dict) and "iteration" in checkpoint and "model" in checkpoint:
                return path, checkpoint
            raise ValueError("not a training checkpoint")
        except Exception as exc:  # a truncated zip raises RuntimeError, others OSError/ValueError
            warnings.warn(f"skipping unreadable checkpoint {path} ({type(exc).__name__}: {exc}); "
                          "trying the previous one")
    return None, None


def capture_rng_state():
    """Python, numpy and torch (CPU and CUDA) generator states, as plain types."""
    numpy_state = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": [numpy_state[0], numpy_state[1].tolist(), *numpy_state[2:]],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng_state(state):
    random.setstate(state["python"])
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def convert_coincheung(state, model):
    """A CoinCheung/BiSeNet state dict -> ours, validated against ``model``.

    Our module names are the reference's, so the mapping is the identity; what this adds is the
    check. Auxiliary heads, which exist only in training, may be absent from a checkpoint saved
    for inference: they are then taken from ``model`` (freshly initialised) and reported.
    Returns ``(state_dict, notes)``.
    """
    expected = model.state_dict()
    missing, unexpected, mismatched = compare_state_dicts(expected, state)
    aux_prefixes = tuple(f"{name}." for name in getattr(model, "aux_head_modules", ()))
    filled = [k for k in missing if k.startswith(aux_prefixes)]
    missing = [k for k in missing if k not in filled]
    report = format_mismatch(missing, unexpected, mismatched)
    if report:
        raise CheckpointError(f"the checkpoint does not match {type(model).__name__}:\n{report}")
    converted = {k: state[k].to(v.dtype) if k in state else v for k, v in expected.items()}
    notes = []
    if filled:
        notes.append(f"{len(filled)} auxiliary-head entries were not in the checkpoint and are freshly "
                     "initialised (they are used only in training): " + ", ".join(filled[:6]) + " ...")
    return converted, notes


CONVERTERS["coincheung"] = convert_coincheung

# The classifier of each architecture, whose first dimension is the class count.
CLASSIFIERS = {"bisenetv1": "conv_out.conv_out.weight", "bisenetv2": "head.conv_out.1.weight"}


def detect_architecture(state, source="the checkpoint"):
    """``(model name, num_classes)`` of a CoinCheung/BiSeNet (or our) state dict, from its keys."""
    for name, classifier in CLASSIFIERS.items():
        if classifier in state and state[classifier].ndim == 4:
            return name, int(state[classifier].shape[0])
    raise CheckpointError(f"{source} is neither a BiSeNetV1 nor a BiSeNetV2 state dict (no {' or '.join(CLASSIFIERS.values())}); "
                          f"its first keys: {', '.join(list(state)[:5])}")
