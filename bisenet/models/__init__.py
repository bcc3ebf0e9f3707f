"""Model construction: a plain dict of architectures, no registry. Models hold no weights files
and read none: ``bisenet.checkpoint`` and ``bisenet.weights`` load weights into them."""
from bisenet.errors import UserError
from bisenet.models.bisenetv1 import BiSeNetV1
from bisenet.models.bisenetv2 import BiSeNetV2

MODELS = {"bisenetv1": BiSeNetV1, "bisenetv2": BiSeNetV2}


def build_model(cfg):
    """Build the model described by ``cfg.model``, with random weights: training starts its
    backbone from ``cfg.model.backbone_weights`` with ``bisenet.weights.load_backbone``,
    inference loads a checkpoint with ``bisenet.checkpoint.load_weights``."""
    name = cfg.model.name
    if name not in MODELS:
        raise UserError(f"unknown model.name {name!r}; available: {', '.join(sorted(MODELS))}")
    return MODELS[name](num_classes=cfg.model.num_classes)


def architecture_of(state):
    """``(model name, num_classes)`` of a state dict of one of ``MODELS`` (ours, or the reference
    implementation's: the names are the same), read from its classifier; None for any other."""
    for name, model_class in MODELS.items():
        weight = state.get(model_class.classifier_weight)
        if weight is not None and weight.ndim == 4:
            return name, int(weight.shape[0])
    return None
