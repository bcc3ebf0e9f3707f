# BiSeNetV1 (ResNet-18) on CamVid (11 classes, void ignored) at the papers' 960x720. The reference
# implementation has no CamVid recipe; this follows the BiSeNetV1 paper's training text (SGD,
# batch 16, momentum 0.9, weight decay 1e-4, initial LR 2.5e-2, poly 0.9, random scales 0.75-2.0,
# flip, fixed-size crops). Our choices where the paper is silent: 10k iterations and 720x960
# crops (the BiSeNetV2 paper's CamVid setting), its random scales drawn from the continuous
# range rather than the set {0.75, 1, 1.5, 1.75, 2}, ImageNet's mean/std, the OHEM loss and the
# 10x head LR of our Cityscapes recipe. Data layout: bisenet/data/camvid.py (SegNet's folders;
# tools/prepare_camvid.py writes the 960x720 original in them). With SegNet's 480x360 copy add
# data.crop_size=[360,480].
from bisenet.config import base_config
from bisenet.data.catalog import data_config

cfg = base_config("bisenetv1_city.py")
cfg.model.num_classes = 11
cfg.data = data_config("camvid", scale_range=(0.75, 2.0), crop_size=(720, 960), color_jitter=0.4, num_workers=4)
cfg.train.max_iters = 10000
cfg.train.base_lr = 2.5e-2
cfg.train.weight_decay = 1e-4
cfg.train.warmup_iters = 500
cfg.train.checkpoint_interval = 1000
cfg.eval.crop_size = (720, 960)
