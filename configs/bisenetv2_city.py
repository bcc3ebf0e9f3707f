# BiSeNetV2 on Cityscapes: the published recipe, 150k iterations of 16 images (8 per GPU on 2
# GPUs), the detail and semantic branches starting from the reference's ImageNet-pretrained
# backbone_v2.pth (python tools/download_weights.py coincheung/backbone_v2). SyncBN is on, so
# multi-GPU training needs CUDA; on the CPU add train.sync_bn=false.
from bisenet.config import Config, DataConfig, EvalConfig, ModelConfig, TrainConfig

cfg = Config(
    model=ModelConfig(name="bisenetv2", num_classes=19, backbone_weights="imagenet"),
    data=DataConfig(
        dataset="cityscapes",
        root="datasets/cityscapes",
        ignore_index=255,
        mean=(0.3257, 0.3690, 0.3223),
        std=(0.2112, 0.2148, 0.2115),
        scale_range=(0.25, 2.0),
        crop_size=(512, 1024),
        color_jitter=0.4,
        num_workers=4,
    ),
    train=TrainConfig(
        max_iters=150000,
        batch_size=16,
        base_lr=5e-3,
        momentum=0.9,
        weight_decay=5e-4,  # on conv weights only: 1-D parameters get none (bisenet.optim)
        warmup_iters=1000,
        warmup_ratio=0.1,
        poly_power=0.9,
        amp=True,
        sync_bn=True,
        checkpoint_interval=5000,
        output_dir="output/bisenetv2_city",
    ),
    eval=EvalConfig(
        batch_size=2,
        scales=(0.5, 0.75, 1.0, 1.25, 1.5, 1.75),
        crop_size=(1024, 1024),
        protocol="coincheung",  # the reference's evaluator: its weights give its table
        final_modes=("ss", "ssc", "msf", "mscf"),  # after training, as the reference reports
    ),
)
