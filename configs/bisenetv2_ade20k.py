# BiSeNetV2 on ADE20K (150 classes): the reference's recipe, 160k iterations of 16 images (2 per
# GPU on 8 GPUs), 640x640 crops, fp16, SyncBN; evaluation at a short side of 640. Published mIoU
# on validation: ss 32.53, ssc 32.43, msf 33.23, mscf 31.72. Data layout: bisenet/data/ade20k.py.
from bisenet.config import base_config

cfg = base_config("bisenetv1_ade20k.py")
cfg.model.name = "bisenetv2"
cfg.data.crop_size = (640, 640)
cfg.train.max_iters = 160000
cfg.train.batch_size = 16
cfg.train.base_lr = 5e-3
cfg.eval.short_side = 640
cfg.eval.crop_size = (640, 640)
