# BiSeNetV2 on CamVid (11 classes, void ignored) at 960x720. The reference implementation has no
# CamVid recipe; this follows the BiSeNetV2 paper's training text (SGD, batch 16, momentum 0.9,
# weight decay 5e-4, initial LR 5e-2, poly 0.9, 10k iterations, 960x720 crops, random scales
# 0.75-2.0, flip). Our choices: scales drawn from the continuous range rather than the paper's
# set {0.75, 1, 1.25, 1.5, 1.75, 2}, ImageNet's mean/std, 500 warmup iterations, and training
# from the reference's ImageNet backbone_v2.pth (the paper's 72.4 is trained from scratch
# with no pretraining; set model.backbone_weights="" for that). Data layout:
# bisenet/data/camvid.py.
from bisenet.config import base_config

cfg = base_config("bisenetv1_camvid.py")
cfg.model.name = "bisenetv2"
cfg.train.base_lr = 5e-2
cfg.train.weight_decay = 5e-4
cfg.train.sync_bn = True  # over the GPUs of a torchrun run; one process uses plain BatchNorm
