# BiSeNetV2 on COCO-Stuff-164k (171 classes): the reference's recipe, 180k iterations of 16 images
# (2 per GPU on 8 GPUs), 640x640 crops, fp16, SyncBN. Published mIoU on val2017: ss 30.49,
# ssc 30.55, msf 31.81, mscf 31.73. Data layout: bisenet/data/cocostuff.py.
from bisenet.config import base_config

cfg = base_config("bisenetv1_coco.py")
cfg.model.name = "bisenetv2"
cfg.data.scale_range = (0.75, 2.0)
cfg.data.crop_size = (640, 640)
cfg.train.max_iters = 180000
cfg.train.base_lr = 5e-3
cfg.eval.crop_size = (640, 640)
