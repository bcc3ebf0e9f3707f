# BiSeNetV2 on Cityscapes: the reference's recipe, 150k iterations of 16 images (8 per GPU on 2
# GPUs). It is BiSeNetV1's recipe (bisenetv1_city.py) with these changes. The detail and semantic
# branches start from the reference's ImageNet-pretrained backbone_v2.pth
# (python tools/download_weights.py coincheung/backbone_v2). SyncBN is on over the GPUs of a
# torchrun run (one process uses plain BatchNorm; several CPU processes need train.sync_bn=false).
from bisenet.config import base_config

cfg = base_config("bisenetv1_city.py")
cfg.model.name = "bisenetv2"
cfg.data.scale_range = (0.25, 2.0)
cfg.data.crop_size = (512, 1024)  # (height, width)
cfg.train.max_iters = 150000
cfg.train.base_lr = 5e-3
cfg.train.sync_bn = True
