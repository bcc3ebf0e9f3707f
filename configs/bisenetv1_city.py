# BiSeNetV1 (ResNet-18) on Cityscapes: the published recipe, 80k iterations of 16 images
# (8 per GPU on 2 GPUs). Override single fields on the command line, e.g. train.max_iters=1000.
from bisenet.config import Config, DataConfig, EvalConfig, ModelConfig, TrainConfig

cfg = Config(
    model=ModelConfig(name="bisenetv1", num_classes=19, backbone_weights="imagenet"),
    data=DataConfig(
        dataset="cityscapes",
        root="datasets/cityscapes",
        ignore_index=255,
        mean=(0.3257, 0.3690, 0.3223),
        std=(0.2112, 0.2148, 0.2115),
        scale_range=(0.75, 2.0),
        crop_size=(1024, 1024),
        color_jitter=0.4,
        num_workers=4,
    ),
    train=TrainConfig(
        max_iters=80000,
        batch_size=16,
        base_lr=1e-2,
        momentum=0.9,
        weight_decay=5e-4,
        head_lr_multiplier=10.0,
        warmup_iters=1000,
        warmup_ratio=0.1,
        poly_power=0.9,
        amp=True,
        sync_bn=False,
        checkpoint_interval=5000,
    ),
    eval=EvalConfig(
        batch_size=2,
        scales=(0.5, 0.75, 1.0, 1.25, 1.5, 1.75),
        crop_size=(1024, 1024),
        protocol="coincheung",  # the reference's evaluator: its weights give its table
        final_modes=("ss", "ssc", "msf", "mscf"),  # after training, as the reference reports
    ),
)
