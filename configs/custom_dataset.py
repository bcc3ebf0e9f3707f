# A dataset of your own. Copy this file, change what the comments point at, then:
#   python tools/check_dataset.py --config configs/my_dataset.py   # finds bad files before a run
#   python tools/train.py --config configs/my_dataset.py
#   python tools/evaluate.py --config configs/my_dataset.py
from bisenet.config import Config, DataConfig, EvalConfig, ModelConfig, TrainConfig

# One name per class, in train-id order (0, 1, 2, ...).
CLASS_NAMES = ("background", "road", "building", "vegetation", "vehicle")

cfg = Config(
    model=ModelConfig(
        name="bisenetv1",
        num_classes=len(CLASS_NAMES),
        backbone_weights="imagenet",  # or a path to resnet18-f37072fd.pth, or "" to train from scratch
    ),
    data=DataConfig(
        dataset="custom",
        root="datasets/my_dataset",
        # Folder layout: <root>/images/train/a/b.jpg pairs with <root>/masks/train/a/b.png
        # ("{split}" becomes train_split / val_split).
        image_dir="images/{split}",
        label_dir="masks/{split}",
        image_suffix=".jpg",
        label_suffix=".png",
        train_split="train",
        val_split="val",
        # Or list files of "image,label" lines, paths relative to root (they replace the scan):
        # train_list="train.txt",
        # val_list="val.txt",
        class_names=CLASS_NAMES,
        # One RGB colour per class for the demo and saved predictions; () picks colours.
        palette=((0, 0, 0), (128, 64, 128), (70, 70, 70), (107, 142, 35), (0, 0, 142)),
        # Mask value -> class id, for every value the masks use (anything else is reported as an
        # error naming the file). Map "unlabelled" values to the ignore index. If the masks
        # already hold class ids 0..num_classes-1 (and the ignore index), use label_map={}.
        label_map={0: 0, 10: 1, 20: 2, 30: 3, 40: 4, 255: 255},
        ignore_index=255,
        # Normalisation on [0, 1] RGB: ImageNet's here; tools/check_dataset.py prints your data's.
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
        scale_range=(0.5, 2.0),
        crop_size=(512, 512),  # (height, width)
        num_workers=4,
        max_skipped_samples=0,  # >0: skip up to this many unreadable training samples (reported)
    ),
    train=TrainConfig(
        max_iters=20000,
        batch_size=16,  # images per step over all GPUs
        base_lr=1e-2,
        warmup_iters=1000,
        eval_interval=2000,
        checkpoint_interval=2000,
    ),
    eval=EvalConfig(batch_size=1, scales=(0.75, 1.0, 1.25), crop_size=(512, 512)),
)
