"""Datasets and loaders built from the config."""
import os

import torch
from torch.utils.data import DataLoader

from bisenet.config import ConfigError
from bisenet.data.dataset import SegmentationDataset
from bisenet.data.io import DatasetError
from bisenet.data.samplers import InfiniteSampler, ShardSampler
from bisenet.data.transforms import build_eval_transform, build_train_transform


def build_dataset(data_cfg, train, num_classes=None):
    """The training (augmented) or validation split of ``data_cfg``."""
    return SegmentationDataset(
        data_cfg,
        data_cfg.train_split if train else data_cfg.val_split,
        transform=build_train_transform(data_cfg) if train else build_eval_transform(data_cfg),
        list_file=data_cfg.train_list if train else data_cfg.val_list,
        num_classes=num_classes,
        skip_bad=train and data_cfg.max_skipped_samples > 0,
    )


def collate(samples):
    """Stacks images and labels; paths and skipped-sample errors stay lists."""
    sizes = {tuple(s["image"].shape[-2:]) for s in samples}
    if len(sizes) > 1:
        listed = ", ".join(f"{s['path']} ({s['image'].shape[-1]}x{s['image'].shape[-2]})" for s in samples)
        raise DatasetError(f"the images of one batch differ in size: {listed}. Datasets whose images vary in size "
                           "(COCO-Stuff, ADE20K) are evaluated one image at a time: set eval.batch_size=1")
    batch = {"image": torch.stack([s["image"] for s in samples]),
             "label": torch.stack([s["label"] for s in samples]),
             "path": [s["path"] for s in samples]}
    if "skipped" in samples[0]:
        batch["skipped"] = [error for s in samples for error in s["skipped"]]
    return batch


def _own_process_group(worker_id):
    # Ctrl-C and torchrun's SIGTERM go to the trainer's whole process group; out of it, workers
    # keep serving batches until the trainer has finished its step and saved, and still stop
    # when the loader shuts them down (or the trainer dies: they watch it).
    os.setpgrp()


def build_train_loader(cfg, rank=0, world_size=1, start=0):
    """Endless loader of this process's share of ``cfg.train.batch_size`` images per step,
    starting at global sample ``start``."""
    if cfg.train.batch_size % world_size:
        raise ConfigError(f"train.batch_size={cfg.train.batch_size} does not divide over {world_size} processes: set "
                          f"train.batch_size to a multiple of {world_size}, or launch a number of processes that "
                          "divides it")
    dataset = build_dataset(cfg.data, train=True, num_classes=cfg.model.num_classes)
    sampler = InfiniteSampler(len(dataset), cfg.train.seed, rank, world_size, start)
    return DataLoader(dataset, batch_size=cfg.train.batch_size // world_size, sampler=sampler,
                      num_workers=cfg.data.num_workers, pin_memory=torch.cuda.is_available(), collate_fn=collate,
                      drop_last=True, persistent_workers=cfg.data.num_workers > 0,
                      worker_init_fn=_own_process_group)


def build_eval_loader(cfg, rank=0, world_size=1):
    dataset = build_dataset(cfg.data, train=False, num_classes=cfg.model.num_classes)
    return DataLoader(dataset, batch_size=cfg.eval.batch_size, sampler=ShardSampler(len(dataset), rank, world_size),
                      num_workers=cfg.eval.num_workers, pin_memory=torch.cuda.is_available(), collate_fn=collate)
