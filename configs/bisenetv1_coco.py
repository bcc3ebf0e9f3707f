# BiSeNetV1 (ResNet-18) on COCO-Stuff-164k (171 classes): the reference's recipe, 90k iterations
# of 16 images (4 per GPU on 4 GPUs), 512x512 crops, fp16, SyncBN. Published mIoU on val2017:
# ss 31.49, ssc 31.42, msf 32.46, mscf 32.55. Data layout: bisenet/data/cocostuff.py.
from bisenet.config import base_config
from bisenet.data.catalog import data_config

cfg = base_config("bisenetv1_city.py")
cfg.model.num_classes = 171
cfg.data = data_config("cocostuff", scale_range=(0.5, 2.0), crop_size=(512, 512), color_jitter=0.4, num_workers=4)
cfg.train.max_iters = 90000
cfg.train.base_lr = 1e-2
cfg.train.weight_decay = 1e-4
cfg.train.sync_bn = True  # over the GPUs of a torchrun run; one process uses plain BatchNorm
cfg.eval.batch_size = 1  # images differ in size
cfg.eval.crop_size = (512, 512)
