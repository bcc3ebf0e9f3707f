"""Calibration images for int8 quantisation: images of the config's training split, preprocessed
as for inference. They are read here and handed to ``bisenet.deploy``, which never reads data."""
import os

import numpy as np

from bisenet.data.dataset import SegmentationDataset
from bisenet.data.io import DatasetError, describe
from bisenet.data.transforms import build_eval_transform


def calibration_inputs(cfg, count, seed=0, otherwise="use fp32 instead (--fast, or --precision fp32)"):
    """``count`` images (1x3xHxW float32 arrays) drawn at random from the config's training
    split and preprocessed as for inference (normalised, full size). Raises ``DatasetError``
    when the split cannot be read, saying that int8 needs it to calibrate and, ``otherwise``,
    what to do without it."""
    data = cfg.data
    try:
        dataset = SegmentationDataset(data, data.train_split, transform=build_eval_transform(data),
                                      list_file=data.train_list, num_classes=cfg.model.num_classes)
    except DatasetError as exc:
        # The dataset's own message tells how to download it, which is not the question here: a
        # model trained elsewhere calibrates on any images of the kind it was trained on.
        where = data.train_list or os.path.join(data.root, data.image_dir.format(split=data.train_split))
        reason = f"{where} does not exist" if not os.path.exists(where) else describe(exc)
        raise DatasetError(f"int8 calibrates on {count} images of the config's training split "
                           f"(data.train_split={data.train_split!r} under data.root={data.root}), which cannot be "
                           f"read: {reason}. Point data.root at a dataset of the kind the model was trained on "
                           f"(data.root=/path/to/it), or {otherwise}") from None
    order = np.random.default_rng(seed).permutation(len(dataset))[:count]
    return [dataset[int(i)]["image"][None].numpy() for i in order]
