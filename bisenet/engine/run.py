"""``build_run``: everything one process trains with (model, optimiser, schedule, gradient scaler,
loss, weight EMA), built from the config, fresh or from a checkpoint, in named steps."""
import dataclasses
import random
from typing import Dict, List, Optional

import numpy as np
import torch
import torch.nn as nn

from bisenet import weights
from bisenet.checkpoint import load_for_finetune
from bisenet.engine.ema import ModelEma
from bisenet.losses import build_loss
from bisenet.lr_scheduler import WarmupPolyLR
from bisenet.models import build_model
from bisenet.optim import build_optimizer
from bisenet.rng import restore_rng_state


@dataclasses.dataclass
class TrainingRun:
    """Everything one process trains with, built from the config by ``build_run``."""

    cfg: object
    device: torch.device
    rank: int
    world_size: int
    model: nn.Module
    net: nn.Module  # the model, wrapped in DistributedDataParallel when distributed
    optimizer: torch.optim.Optimizer
    scheduler: WarmupPolyLR
    scaler: torch.amp.GradScaler
    criterion: nn.Module
    amp_dtype: Optional[torch.dtype]
    memory_format: torch.memory_format
    start_iter: int = 0
    best_miou: Optional[float] = None  # of the EMA weights when there are some
    checkpoints: List[str] = dataclasses.field(default_factory=list)  # names this run wrote and keeps
    ema: Optional[ModelEma] = None  # train.ema_decay > 0: the weight EMA, the same on every process
    # The distinct unreadable samples replaced so far (their messages, which name the file), over
    # every process and across resumes: a bad file met again in the next epoch counts once.
    bad_samples: Dict[str, None] = dataclasses.field(default_factory=dict)

    @property
    def is_main(self):
        return self.rank == 0


def build_run(cfg, device, rank=0, world_size=1, *, checkpoint=None, finetune_from=None, log=None):
    """Model, optimiser, schedule, scaler and loss of ``cfg`` on ``device``; from ``checkpoint``
    when resuming (the schedule and the optimiser's settings still follow ``cfg``), else seeded
    the same on every process (from ``finetune_from``, or the config's backbone weights).
    ``log``: where the fine-tuning report and the notes go (None: nowhere)."""
    seed_everything(cfg.train.seed)  # the same on every process, so initial weights agree
    fresh = checkpoint is None
    model = _build_model(cfg, device, world_size, load_backbone=fresh and not finetune_from,
                         finetune_from=finetune_from if fresh else None, log=log)
    optimizer = build_optimizer(model, cfg.train)
    amp_dtype = autocast_dtype(device, cfg.train.amp, cfg.train.amp_dtype)
    run = TrainingRun(
        cfg=cfg, device=device, rank=rank, world_size=world_size, model=model, net=model, optimizer=optimizer,
        scheduler=WarmupPolyLR(optimizer, cfg.train.max_iters, cfg.train.warmup_iters, cfg.train.warmup_ratio,
                               cfg.train.poly_power),
        scaler=torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16),
        criterion=build_loss(cfg.train, cfg.data.ignore_index), amp_dtype=amp_dtype,
        memory_format=_memory_format(cfg))
    if checkpoint is not None:
        _restore(run, checkpoint)
    run.ema = _build_ema(cfg, model, checkpoint, log)
    _create_loss_scale(run.scaler, device)
    run.net = _distributed(model, device, world_size)
    return run


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def autocast_dtype(device, enabled, name="auto"):
    """The autocast type of ``train.amp`` / ``train.amp_dtype``: "auto" is fp16 (with a gradient
    scaler) on CUDA and bf16 on the CPU; None when mixed precision is off."""
    if not enabled:
        return None
    if name == "auto":
        return torch.float16 if device.type == "cuda" else torch.bfloat16
    return {"fp16": torch.float16, "bf16": torch.bfloat16}[name]


def _memory_format(cfg):
    return torch.channels_last if cfg.train.channels_last else torch.contiguous_format


def _build_model(cfg, device, world_size, *, load_backbone, finetune_from, log):
    """The model on ``device``, with the config's backbone weights (``load_backbone``) or those of
    ``finetune_from`` (its report goes to ``log``), and SyncBatchNorm under ``train.sync_bn`` on
    several processes."""
    model = build_model(cfg)
    if load_backbone:
        weights.load_backbone(model, cfg)
    if finetune_from:
        for line in load_for_finetune(model, finetune_from):
            if log:
                log.info(line)
    if cfg.train.sync_bn and world_size > 1:  # one process: BatchNorm's statistics are already the batch's
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model.to(device, memory_format=_memory_format(cfg))
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed crops: pick the fastest kernels once
    return model


def _restore(run, checkpoint):
    """Continue ``checkpoint``'s run: weights, optimiser, schedule, scaler, this process's random
    generators, and the bookkeeping (best mIoU, the checkpoints it keeps, its bad samples)."""
    run.model.load_state_dict(checkpoint["model"])
    _restore_optimizer(run.optimizer, checkpoint["optimizer"])
    run.start_iter = int(checkpoint["iteration"])
    run.scheduler.start_at(run.start_iter)
    run.scaler.load_state_dict(checkpoint["scaler"])
    rng_states = checkpoint.get("rng", [])
    if len(rng_states) == run.world_size:  # else another process count: each starts from the seed
        restore_rng_state(rng_states[run.rank])
    run.best_miou = checkpoint.get("best_miou")
    run.checkpoints = list(checkpoint.get("checkpoints", []))
    run.bad_samples = dict.fromkeys(checkpoint.get("bad_samples", []))


def _restore_optimizer(optimizer, state):
    """The saved momentum buffers, with this config's LR, momentum and weight decay (a forced
    resume may have changed them)."""
    settings = [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]
    optimizer.load_state_dict(state)
    for group, own in zip(optimizer.param_groups, settings):
        group.update(own)


def _build_ema(cfg, model, checkpoint, log):
    """The weight EMA of ``train.ema_decay`` (None when 0), from the checkpoint's when it has one."""
    if cfg.train.ema_decay <= 0:
        return None
    ema = ModelEma(model, cfg.train.ema_decay, cfg.train.ema_warmup)
    if checkpoint is not None and "model_ema" in checkpoint:
        ema.load_state_dict(checkpoint["model_ema"], checkpoint["ema_updates"])
    elif checkpoint is not None and log:
        log.info("the checkpoint holds no EMA weights (trained without train.ema_decay): the EMA starts from "
                 "its weights")
    return ema


def _create_loss_scale(scaler, device):
    """GradScaler creates its scale tensor lazily, at the first ``scale``: a first step skipped
    before it (an fp16 overflow in the forward pass) would then have no scale to lower."""
    if scaler.is_enabled():
        scaler.scale(torch.ones((), device=device))


def _distributed(model, device, world_size):
    """The model wrapped in DistributedDataParallel on several processes (it broadcasts the first
    process's weights); the model itself on one."""
    if world_size == 1:
        return model
    return nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
