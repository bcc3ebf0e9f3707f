"""Checkpoints: atomic save, strict load with a readable report, and converters."""
import os
import tempfile

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
