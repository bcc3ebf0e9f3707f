# BiSeNetV1 (ResNet-18) on ADE20K (150 classes): the reference's recipe, 40k iterations of 64
# images (8 per GPU on 8 GPUs), 512x512 crops, fp16, SyncBN; evaluation first resizes each image
# to a short side of 512 and scores at the label's size. Published mIoU on validation: ss 36.15,
# ssc 36.04, msf 37.27, mscf 36.58. Data layout: bisenet/data/ade20k.py.
from bisenet.config import base_config
from bisenet.data.catalog import data_config

cfg = base_config("bisenetv1_city.py")
cfg.model.num_classes = 150
cfg.data = data_config("ade20k", scale_range=(0.5, 2.0), crop_size=(512, 512), color_jitter=0.4, num_workers=4)
cfg.train.max_iters = 40000
cfg.train.batch_size = 64
cfg.train.base_lr = 4e-2
cfg.train.weight_decay = 1e-4
cfg.train.sync_bn = True  # over the GPUs of a torchrun run; one process uses plain BatchNorm
cfg.eval.batch_size = 1  # images differ in size
cfg.eval.short_side = 512
cfg.eval.crop_size = (512, 512)
