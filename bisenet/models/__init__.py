"""Model construction: a plain dict of architectures, no registry."""
from bisenet.models.bisenetv1 import BiSeNetV1

MODELS = {"bisenetv1": BiSeNetV1}


def build_model(cfg):
    """Build the model described by ``cfg.model``; loads ImageNet backbone weights if asked."""
    name = cfg.model.name
    if name not in MODELS:
        raise ValueError(f"unknown model.name {name!r}; available: {', '.join(sorted(MODELS))}")
    model = MODELS[name](num_classes=cfg.model.num_classes)
    if cfg.model.backbone_weights:
        model.load_backbone_weights(cfg.model.backbone_weights)
    return model
