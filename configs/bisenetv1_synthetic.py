# The quickstart: BiSeNetV1 from scratch on the small synthetic Cityscapes-layout set that
# tools/make_synthetic_cityscapes.py writes, sized to train on 2 CPU cores in a few minutes.
from bisenet.config import Config, DataConfig, EvalConfig, ModelConfig, TrainConfig

cfg = Config(
    model=ModelConfig(name="bisenetv1", num_classes=19, backbone_weights=""),
    data=DataConfig(
        root="datasets/synthetic_cityscapes",
        scale_range=(0.75, 1.5),
        crop_size=(192, 192),
        num_workers=1,
    ),
    train=TrainConfig(
        max_iters=300,
        batch_size=8,
        base_lr=1e-2,
        warmup_iters=30,
        amp=False,
        log_interval=10,
        checkpoint_interval=100,
        eval_interval=100,
    ),
    eval=EvalConfig(batch_size=2, crop_size=(192, 192), num_workers=1),
)
