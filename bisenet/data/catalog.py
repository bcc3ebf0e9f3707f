"""The datasets the toolbox knows by name: their classes, colours, label mapping, statistics and
official folder layout, and what their typical mistakes look like.

A config starts from ``data_config("ade20k", crop_size=..., ...)``; ``data.dataset`` names the
entry, which chooses the hints of error messages and of ``tools/check_dataset.py``.
"""
from bisenet.config import DataConfig
from bisenet.data import ade20k, camvid, cityscapes, cocostuff

DATASETS = {"cityscapes": cityscapes, "cocostuff": cocostuff, "ade20k": ade20k, "camvid": camvid}
NAMES = (*DATASETS, "custom")


def data_config(name, **changes):
    """A ``DataConfig`` for the known dataset ``name`` (its layout, classes, palette, label map,
    mean and std), with ``changes`` (e.g. the recipe's crop size) applied."""
    info = DATASETS[name]
    fields = dict(dataset=name, class_names=tuple(info.CLASS_NAMES),
                  palette=tuple(tuple(int(c) for c in rgb) for rgb in info.PALETTE),
                  label_map=dict(info.LABEL_MAP), mean=info.MEAN, std=info.STD, **getattr(info, "LAYOUT", {}))
    fields.update(changes)
    return DataConfig(**fields)


def dataset_hint(data_cfg):
    """Where the dataset of ``data_cfg`` goes and how to get it, for error messages."""
    info = DATASETS.get(data_cfg.dataset)
    if info is None:
        return ("Set data.root, data.image_dir and data.label_dir to where your images and labels are "
                "(see configs/custom_dataset.py).")
    return info.DATASET_HINT.format(root=data_cfg.root)


def diagnose(data_cfg, raw_values, rgb_labels):
    """Dataset-specific explanations of what the raw label values seen (a set) and the colour
    labels found (paths) say about the data: the typical mistakes of each dataset."""
    info = DATASETS.get(data_cfg.dataset)
    return [] if info is None else info.diagnose(set(raw_values), list(rgb_labels))
