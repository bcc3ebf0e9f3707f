"""Converters from other implementations' checkpoint formats to ours, by the name users pass to
``tools/convert_checkpoint.py --from``, and the architecture a checkpoint holds."""
from bisenet.checkpoint import CheckpointError, load_state_strict
from bisenet.models import MODELS, architecture_of


def convert_coincheung(state, model):
    """A CoinCheung/BiSeNet state dict -> ours, validated against ``model`` (which it is loaded
    into).

    Our module names are the reference's, so the mapping is the identity; what this adds is the
    check. Auxiliary heads, which exist only in training, may be absent from a checkpoint saved
    for inference: they are then taken from ``model`` (freshly initialised) and reported.
    Returns ``(state_dict, notes)``.
    """
    filled = load_state_strict(model, state, "the checkpoint", fill=getattr(model, "aux_head_modules", ()))
    notes = []
    if filled:
        notes.append(f"{len(filled)} auxiliary-head entries were not in the checkpoint and are freshly "
                     "initialised (they are used only in training): " + ", ".join(filled[:6]) + " ...")
    return model.state_dict(), notes


CONVERTERS = {"coincheung": convert_coincheung}


def detect_architecture(state, source="the checkpoint"):
    """``(model name, num_classes)`` of a CoinCheung/BiSeNet (or our) state dict, from its keys."""
    found = architecture_of(state)
    if found is None:
        names = " nor a ".join(model.__name__ for model in MODELS.values())
        classifiers = " or ".join(model.classifier_weight for model in MODELS.values())
        raise CheckpointError(f"{source} is neither a {names} state dict (no {classifiers}); "
                              f"its first keys: {', '.join(list(state)[:5])}")
    return found
