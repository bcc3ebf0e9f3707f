"""Datasets and loaders built from the config."""
import signal

import torch
from torch.utils.data import DataLoader

from bisenet.data.cityscapes import CityscapesDataset
from bisenet.data.samplers import InfiniteSampler, ShardSampler
from bisenet.data.transforms import build_eval_transform, build_train_transform

DATASETS = {"cityscapes": CityscapesDataset}


def build_dataset(data_cfg, train):
    if data_cfg.dataset not in DATASETS:
        raise ValueError(f"unknown data.dataset {data_cfg.dataset!r}; available: {', '.join(DATASETS)}")
    transform = build_train_transform(data_cfg) if train else build_eval_transform(data_cfg)
    return DATASETS[data_cfg.dataset](
        data_cfg.root,
        data_cfg.train_split if train else data_cfg.val_split,
        transform=transform,
        list_file=data_cfg.train_list if train else data_cfg.val_list,
    )


def _ignore_stop_signals(worker_id):
    # Ctrl-C and torchrun's SIGTERM reach the whole process group: workers must keep serving
    # batches until the main process has finished its step and saved.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def build_train_loader(cfg, rank=0, world_size=1, start=0):
    """Endless loader of this process's share of ``cfg.train.batch_size`` images per step,
    starting at global sample ``start``."""
    if cfg.train.batch_size % world_size:
        raise ValueError(f"train.batch_size={cfg.train.batch_size} does not divide over {world_size} processes")
    dataset = build_dataset(cfg.data, train=True)
    sampler = InfiniteSampler(len(dataset), cfg.train.seed, rank, world_size, start)
    return DataLoader(dataset, batch_size=cfg.train.batch_size // world_size, sampler=sampler,
                      num_workers=cfg.data.num_workers, pin_memory=torch.cuda.is_available(),
                      drop_last=True, persistent_workers=cfg.data.num_workers > 0,
                      worker_init_fn=_ignore_stop_signals)


def build_eval_loader(cfg, rank=0, world_size=1):
    dataset = build_dataset(cfg.data, train=False)
    return DataLoader(dataset, batch_size=cfg.eval.batch_size, sampler=ShardSampler(len(dataset), rank, world_size),
                      num_workers=cfg.eval.num_workers, pin_memory=torch.cuda.is_available())
