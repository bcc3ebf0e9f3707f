# The quickstart: BiSeNetV1 from scratch on the small synthetic Cityscapes-layout set that
# tools/make_synthetic_cityscapes.py writes, sized to train on 2 CPU cores in a few minutes.
# It is the Cityscapes recipe (bisenetv1_city.py) with small crops, few iterations and fp32.
from bisenet.config import base_config

cfg = base_config("bisenetv1_city.py")
cfg.model.backbone_weights = ""  # no ImageNet weights offline; the synthetic scenes do without
cfg.data.root = "datasets/synthetic_cityscapes"
cfg.data.scale_range = (0.75, 1.5)
cfg.data.crop_size = (192, 192)
cfg.data.num_workers = 1
cfg.train.max_iters = 170
cfg.train.batch_size = 4  # at equal time, more small steps learn more than fewer large ones
cfg.train.base_lr = 5e-3
cfg.train.warmup_iters = 10
cfg.train.amp = False  # bf16 is slower than fp32 on most CPUs
cfg.train.log_interval = 50
cfg.train.checkpoint_interval = 100
cfg.eval.crop_size = (192, 192)
cfg.eval.num_workers = 1
cfg.eval.final_modes = ("ss",)
