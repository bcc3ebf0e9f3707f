"""Model construction: a plain dict of architectures, no registry."""
from bisenet.errors import UserError
from bisenet.models.bisenetv1 import BiSeNetV1
from bisenet.models.bisenetv2 import BiSeNetV2

MODELS = {"bisenetv1": BiSeNetV1, "bisenetv2": BiSeNetV2}


def build_model(cfg, load_backbone=False):
    """Build the model described by ``cfg.model``.

    With ``load_backbone`` (what training does) the backbone starts from
    ``cfg.model.backbone_weights``; without it, weights are random until ``load_weights``.
    """
    name = cfg.model.name
    if name not in MODELS:
        raise UserError(f"unknown model.name {name!r}; available: {', '.join(sorted(MODELS))}")
    model = MODELS[name](num_classes=cfg.model.num_classes)
    if load_backbone and cfg.model.backbone_weights:
        model.load_backbone_weights(cfg.model.backbone_weights)
    return model
