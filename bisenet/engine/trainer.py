"""The training engine: ``build_run`` makes what a run needs, ``train_step`` is one optimiser step
(the training benchmark times this same function), ``Checkpointer`` saves, and ``train`` is the
loop, iteration-based, data-parallel under torchrun, resumable to the bit.

Every process runs the same code. Per step, one all-reduce carries the losses (for the log) and
the flags every process must agree on (bad samples, a non-finite loss, a stop signal), so all
take the same decision at the same step boundary. Saving is collective too: a check that the
weights are finite, then the write on the main process, then agreement that it succeeded.
"""
import copy
import dataclasses
import json
import math
import os
import random
import re
import signal
import time
import warnings
from typing import Dict, List, Optional

import numpy as np
import torch
import torch.nn as nn

from bisenet import distributed
from bisenet.checkpoint import (
    DiskFullError,
    capture_rng_state,
    checkpoint_iteration,
    list_checkpoints,
    load_checkpoint,
    load_for_finetune,
    load_latest_checkpoint,
    load_training_checkpoint,
    read_state_dict,
    remove_stale_temp_files,
    restore_rng_state,
    save_checkpoint,
)
from bisenet.config import Config, ConfigError, write_config
from bisenet.config_check import check_config
from bisenet.data.loaders import build_eval_loader, build_train_loader
from bisenet.engine.ema import ModelEma
from bisenet.engine.evaluator import (
    evaluate,
    evaluate_modes,
    mode_settings,
    plain_settings,
    report_text,
    result_to_dict,
)
from bisenet.engine.lock import OutputLock, OutputLockError
from bisenet.engine.logs import RunLog
from bisenet.errors import MissingFileError, UserError
from bisenet.losses import build_loss
from bisenet.lr_scheduler import WarmupPolyLR
from bisenet.models import build_model
from bisenet.optim import build_optimizer
from bisenet.outputs import check_output_dir, nearest_existing, write_json
from bisenet.progress import progress_bar
from bisenet.weights import load_backbone


class TrainingError(UserError):
    """Training cannot start or go on; the message says why and what to do."""


class TrainingInterrupted(TrainingError):
    """SIGTERM or SIGINT arrived: a checkpoint was saved at a step boundary. Exits with 128 plus
    the signal's number, as a process killed by it would."""

    def __init__(self, message, signal_number):
        super().__init__(message)
        self.signal_number = signal_number
        self.exit_code = 128 + int(signal_number)
        self.label = "stopped"


class StopRequest:
    """Turns SIGTERM and SIGINT into a flag checked at step boundaries (the handlers are
    restored on exit). torchrun sends SIGKILL about 30 s after SIGTERM: enough to finish a step
    and save."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.signal_number = 0
        self.previous = {}

    def __enter__(self):
        for sig in self.SIGNALS:
            try:
                self.previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave the signals alone
                pass
        return self

    def _handle(self, signal_number, frame):
        self.signal_number = signal_number

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def autocast_dtype(device, enabled, name="auto"):
    """The autocast type of ``train.amp`` / ``train.amp_dtype``: "auto" is fp16 (with a gradient
    scaler) on CUDA and bf16 on the CPU; None when mixed precision is off."""
    if not enabled:
        return None
    if name == "auto":
        return torch.float16 if device.type == "cuda" else torch.bfloat16
    return {"fp16": torch.float16, "bf16": torch.bfloat16}[name]


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# Settings that do not change what a run computes: a resume may change them freely.
FREE_ON_RESUME = {"model.backbone_weights", "train.output_dir", "train.log_interval", "train.checkpoint_interval",
                  "train.keep_checkpoints", "train.eval_interval", "train.max_consecutive_skips", "data.root",
                  "data.num_workers", "data.max_skipped_samples", "data.val_split", "data.val_list"}
ARCHITECTURE = ("model.name", "model.num_classes")


def setting_changes(saved, cfg):
    """``(key, value in the checkpoint, value now)`` for every setting that changes the run,
    between the configs ``saved`` and ``cfg``."""
    changes = []
    for section in ("model", "data", "train"):
        before, now = getattr(saved, section), getattr(cfg, section)
        for field in dataclasses.fields(now):
            name = f"{section}.{field.name}"
            if name not in FREE_ON_RESUME and getattr(before, field.name) != getattr(now, field.name):
                changes.append((name, getattr(before, field.name), getattr(now, field.name)))
    return changes


def _changes_text(changes, where="in the checkpoint"):
    return "; ".join(f"{name}: {before} {where}, {now} now" for name, before, now in changes)


def check_resumable(checkpoint, cfg, path, force):
    """Refuse a resume that would silently change the run; with ``force``, return the changes,
    which then take effect (the schedule follows the config in force). A different architecture
    cannot be resumed at all."""
    try:
        saved = Config.from_dict(checkpoint.get("config", {}))
    except ConfigError as exc:
        raise TrainingError(f"{path} holds a config this version cannot read ({exc}); resume it with the version "
                            f"that wrote it, or start from its weights with --finetune-from {path}") from None
    changes = setting_changes(saved, cfg)
    text = _changes_text(changes)
    if any(name in ARCHITECTURE for name, _, _ in changes):
        raise TrainingError(f"{path} holds another model ({text}): its weights cannot continue this run. To start "
                            f"a new run from them, use --finetune-from {path} with a new train.output_dir "
                            "(layers that do not fit are re-initialised and listed).")
    if changes and not force:
        raise TrainingError(f"{path} was saved with other settings ({text}). Restore them, or pass --force-resume "
                            "to continue with the new ones.")
    return changes


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


def build_run(cfg, device, rank=0, world_size=1, checkpoint=None, finetune_from=None, log=None):
    """Model, optimiser, schedule, scaler and loss of ``cfg`` on ``device``; from ``checkpoint``
    when resuming (the schedule and the optimiser's settings still follow ``cfg``), else seeded
    the same on every process (from ``finetune_from``, or the config's backbone weights)."""
    seed_everything(cfg.train.seed)  # the same on every process, so initial weights agree
    model = build_model(cfg)
    if checkpoint is None and not finetune_from:
        load_backbone(model, cfg)
    if finetune_from and checkpoint is None:
        for line in load_for_finetune(model, finetune_from):
            if log:
                log.info(line)
    if cfg.train.sync_bn and world_size > 1:  # one process: BatchNorm's statistics are already the batch's
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    memory_format = torch.channels_last if cfg.train.channels_last else torch.contiguous_format
    model.to(device, memory_format=memory_format)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed crops: pick the fastest kernels once
    optimizer = build_optimizer(model, cfg.train)
    scheduler = WarmupPolyLR(optimizer, cfg.train.max_iters, cfg.train.warmup_iters, cfg.train.warmup_ratio,
                             cfg.train.poly_power)
    amp_dtype = autocast_dtype(device, cfg.train.amp, cfg.train.amp_dtype)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    start_iter, best_miou, kept, bad_samples = 0, None, [], {}
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        settings = [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]
        optimizer.load_state_dict(checkpoint["optimizer"])  # the momentum buffers...
        for group, own in zip(optimizer.param_groups, settings):
            group.update(own)  # ...with this config's LR, momentum and weight decay
        start_iter = int(checkpoint["iteration"])
        scheduler.start_at(start_iter)
        scaler.load_state_dict(checkpoint["scaler"])
        rng_states = checkpoint.get("rng", [])
        if len(rng_states) == world_size:
            restore_rng_state(rng_states[rank])
        best_miou, kept = checkpoint.get("best_miou"), list(checkpoint.get("checkpoints", []))
        bad_samples = dict.fromkeys(checkpoint.get("bad_samples", []))
    ema = None
    if cfg.train.ema_decay > 0:
        ema = ModelEma(model, cfg.train.ema_decay, cfg.train.ema_warmup)
        if checkpoint is not None and "model_ema" in checkpoint:
            ema.load_state_dict(checkpoint["model_ema"], checkpoint["ema_updates"])
        elif checkpoint is not None and log:
            log.info("the checkpoint holds no EMA weights (trained without train.ema_decay): the EMA starts from "
                     "its weights")
    if scaler.is_enabled():
        scaler.scale(torch.ones((), device=device))  # creates the scale tensor that a skipped step lowers
    criterion = build_loss(cfg.train, cfg.data.ignore_index)
    net = model
    if world_size > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    return TrainingRun(cfg, device, rank, world_size, model, net, optimizer, scheduler, scaler, criterion, amp_dtype,
                       memory_format, start_iter, best_miou, kept, ema, bad_samples)


@dataclasses.dataclass
class StepStatus:
    """What every process knows after a step's all-reduce."""

    losses: List[float]  # main then auxiliary, averaged over the processes
    bad_samples: int  # distinct unreadable samples replaced so far, over all processes
    non_finite: int  # processes whose loss was not finite
    stop: bool  # a process received SIGTERM or SIGINT
    stepped: bool = False  # the optimiser updated the weights
    lrs: List[float] = dataclasses.field(default_factory=list)  # each group's LR for this step
    skipped: Optional[str] = None  # fp16: "the loss" or "a gradient" overflowed, the step was skipped
    loss_scale_before: float = 1.0
    loss_scale: float = 1.0
    # train.clip_grad_norm: the gradients' global norm before clipping (not finite if one
    # overflowed); a tensor, so that only logging it waits for the device.
    grad_norm: Optional[torch.Tensor] = None


def train_step(run, images, labels, bad_samples=(), stop=False):
    """One step on a batch: forward, losses, the status all-reduce, then (unless a process's loss
    is non-finite outside fp16, or too many samples were bad) backward, gradient clipping,
    optimiser, scaler, schedule, the BatchNorm statistics of ``train.dist_bn=reduce`` and the
    weight EMA. Under fp16 an overflow skips the step on every process and lowers the loss scale.

    ``bad_samples``: the messages of the unreadable samples this process's batch replaced; those
    new to the run are shared between the processes (only on a step that met one), so that
    ``status.bad_samples`` counts distinct files over all of them."""
    cfg = run.cfg
    images = images.to(run.device, non_blocking=True, memory_format=run.memory_format)
    labels = labels.to(run.device, non_blocking=True)
    lrs = [group["lr"] for group in run.optimizer.param_groups]
    with torch.autocast(run.device.type, dtype=run.amp_dtype or torch.float32, enabled=run.amp_dtype is not None):
        outputs = run.net(images)
    losses = torch.stack([run.criterion(output, labels) for output in outputs])
    new_bad = list(dict.fromkeys(error for error in bad_samples if error not in run.bad_samples))
    flags = torch.tensor([len(new_bad), float(not torch.isfinite(losses).all()), float(stop)], device=run.device)
    summed = distributed.all_reduce_sum(torch.cat([losses.detach().float(), flags])).tolist()  # also the host sync
    if summed[-3] > 0:
        for errors in distributed.gather_objects(new_bad):
            run.bad_samples.update(dict.fromkeys(errors))
    status = StepStatus([v / run.world_size for v in summed[:len(outputs)]], len(run.bad_samples), int(summed[-2]),
                        summed[-1] > 0, lrs=lrs)
    fp16 = run.scaler.is_enabled()
    if status.bad_samples > cfg.data.max_skipped_samples or (status.non_finite and not fp16):
        return status  # the caller stops the run; nothing was changed
    run.optimizer.zero_grad(set_to_none=True)
    scale = run.scaler.get_scale()
    if status.non_finite:
        # fp16 overflow in the forward pass: every process skips the step (the flag was summed
        # over them) and the loss scale backs off, as the scaler would.
        run.scaler.update(scale * run.scaler.get_backoff_factor())
    else:
        loss = losses[0] + cfg.train.aux_weight * losses[1:].sum()
        run.scaler.scale(loss).backward()
        if cfg.train.clip_grad_norm > 0:
            # The true gradients are clipped: unscaled first (the scaler then does not unscale
            # them again). An overflowed one makes the norm inf or NaN, and the scaler still skips.
            run.scaler.unscale_(run.optimizer)
            status.grad_norm = nn.utils.clip_grad_norm_(run.model.parameters(), cfg.train.clip_grad_norm)
        run.scaler.step(run.optimizer)  # skipped by the scaler if a gradient overflowed
        run.scaler.update()
    with warnings.catch_warnings():
        # A skipped first step makes torch warn that the schedule skips a value; ours is a
        # function of the iteration and does not.
        warnings.filterwarnings("ignore", re.escape("Detected call of `lr_scheduler.step()` before"))
        run.scheduler.step()
    status.loss_scale_before, status.loss_scale = scale, run.scaler.get_scale()
    status.stepped = not (fp16 and status.loss_scale < scale)
    if cfg.train.dist_bn == "reduce" and run.world_size > 1 and not cfg.train.sync_bn:
        # Every step, so that the statistics never depend on when a save or an evaluation came;
        # they are also what the EMA averages, which thus stays the same on every process.
        distributed.distribute_bn(run.model, "reduce")
    if run.ema is not None and status.stepped:
        run.ema.update(run.model)
    if not status.stepped:
        status.skipped = "the loss" if status.non_finite else "a gradient"
    return status


def non_finite_entries(model):
    """Names of the model's floating-point parameters and buffers holding inf or NaN (one host
    sync for the whole model)."""
    tensors = [(name, t) for name, t in model.state_dict().items() if t.is_floating_point()]
    finite = torch.stack([torch.isfinite(t).all() for _, t in tensors])
    if bool(finite.all()):
        return []
    return [name for (name, _), ok in zip(tensors, finite.tolist()) if not ok]


class Checkpointer:
    """Saves a run into its output folder. Every save is collective: the weights are checked to be
    finite on every process, the main process writes (atomically), and all agree on the outcome,
    so a refusal or a full disk stops every process. Periodic checkpoints keep the newest
    ``train.keep_checkpoints`` of those this run wrote; no other file is ever deleted."""

    def __init__(self, run, log):
        self.run = run
        self.log = log
        self.output_dir = run.cfg.train.output_dir

    def save(self, iteration, interrupted=False):
        run, keep = self.run, self.run.cfg.train.keep_checkpoints
        rng = distributed.gather_objects(capture_rng_state())  # every process's, saved by the main one
        name = f"checkpoint_{iteration:06d}.pth"
        kept = ([n for n in run.checkpoints if n != name] + [name])[-keep:]
        state = {**self._weights(), "optimizer": run.optimizer.state_dict(),
                 "scaler": run.scaler.state_dict(), "iteration": iteration, "rng": rng, "best_miou": run.best_miou,
                 "config": run.cfg.to_dict(), "interrupted": interrupted,
                 "checkpoints": kept, "bad_samples": list(run.bad_samples)}
        self._write(state, os.path.join(self.output_dir, name), iteration)
        if run.is_main:
            for old in run.checkpoints:
                if old not in kept and os.path.exists(os.path.join(self.output_dir, old)):
                    os.remove(os.path.join(self.output_dir, old))
        run.checkpoints = kept

    def save_weights(self, filename, iteration, **extra):
        """``model_final.pth`` / ``model_best.pth``: the weights, iteration and config."""
        state = {**self._weights(), "iteration": iteration, "config": self.run.cfg.to_dict(), **extra}
        self._write(state, os.path.join(self.output_dir, filename), iteration)

    def _weights(self):
        """What every file holds: ``model``, the trained weights, and with ``train.ema_decay``
        ``model_ema``, their average (``tools/evaluate.py --ema``), and its update count."""
        ema = self.run.ema
        extra = {} if ema is None else {"model_ema": ema.state_dict(), "ema_updates": ema.updates}
        return {"model": self.run.model.state_dict(), **extra}

    def _previous(self):
        names = self.run.checkpoints
        return os.path.join(self.output_dir, names[-1]) if names else None

    def _write(self, state, path, iteration):
        run = self.run
        bad = non_finite_entries(run.model)
        if distributed.any_process(bad, run.device):
            previous = self._previous()
            raise TrainingError(
                f"after iteration {iteration} the model holds inf or NaN in {len(bad) or 'some'} tensor(s)"
                + (f" ({', '.join(bad[:4])}{', ...' if len(bad) > 4 else ''})" if bad else " on another process")
                + f": training diverged (a loss that exploded while staying finite), so {path} was not written; "
                + (f"{previous} is the last good checkpoint" if previous else "no checkpoint was saved yet")
                + f". Lower train.base_lr (now {run.cfg.train.base_lr:g}).")
        error = ""
        if run.is_main:
            try:
                save_checkpoint(state, path)
                self.log.info(f"saved {path}")
            except DiskFullError as exc:
                keep = run.cfg.train.keep_checkpoints
                previous = self._previous()
                error = (f"{exc}; train.keep_checkpoints={keep} keeps about {keep} x {exc.size_mb:.0f} MB; "
                         + (f"{previous} is intact" if previous else "no earlier checkpoint exists")
                         + ". Free some space or set train.output_dir on a larger disk, then resume with --resume.")
                self.log.info(f"error: {error}")
        if distributed.any_process(error, run.device):
            raise TrainingError(error or "the main process could not save a checkpoint (see its message)")


def share_bn_statistics(run):
    """Before an evaluation or a save (collective): with ``train.dist_bn=broadcast`` every process
    takes the first's BatchNorm statistics, the ones saved, and the EMA's statistics are always
    the first's, as its weights are everywhere (with "reduce" both are averaged at every step
    instead, and with SyncBatchNorm they agree already). Neither changes the training: the next
    forward pass of DistributedDataParallel hands the first process's statistics to all anyway."""
    if run.world_size == 1 or run.cfg.train.sync_bn:
        return
    if run.cfg.train.dist_bn == "broadcast":
        distributed.distribute_bn(run.model, "broadcast")
    if run.ema is not None and run.cfg.train.dist_bn != "reduce":
        distributed.distribute_bn(run.ema.module, "broadcast")


def _evaluate_periodically(run, eval_loader, done, checkpointer, log):
    """Score the weights, and the EMA's, on the val split; keep ``model_best.pth``, chosen by the
    EMA's mIoU when there is an EMA (as timm does), else by the weights'."""
    cfg = run.cfg
    models = {"raw": run.model, **({"ema": run.ema.module} if run.ema else {})}
    suffix = {"raw": "", "ema": "_ema"}  # metrics.jsonl: miou, miou_ema, ...
    results = {name: evaluate(model, eval_loader, cfg.model.num_classes, run.device, cfg.data.ignore_index,
                              protocol=cfg.eval.protocol, short_side=cfg.eval.short_side, progress=False)
               for name, model in models.items()}
    log.record(iteration=done, **{key + suffix[name]: result[key] for name, result in results.items()
                                  for key in ("miou", "macc", "aacc")})
    log.info(f"iter {done} val mIoU {100 * results['raw']['miou']:.2f}"
             + (f", EMA {100 * results['ema']['miou']:.2f}" if run.ema else ""))
    best_by = "ema" if run.ema else "raw"
    if run.best_miou is None or results[best_by]["miou"] > run.best_miou:  # the same on every process
        run.best_miou = results[best_by]["miou"]
        checkpointer.save_weights("model_best.pth", done, best_by=best_by,
                                  **{"miou" + suffix[name]: result["miou"] for name, result in results.items()})
    run.net.train()


FINAL_NAME = "model_final.pth"
RESULTS_NAME = "results.json"  # the evaluation after training, beside model_final.pth


@dataclasses.dataclass
class RunPlan:
    """What a launch into ``train.output_dir`` does, decided before anything is written."""

    checkpoint: Optional[dict] = None  # to resume from (None: from the start)
    path: Optional[str] = None
    changes: list = dataclasses.field(default_factory=list)  # settings that differ from it (--force-resume)
    finished: Optional[int] = None  # the folder holds this finished run with these settings: nothing to train
    notes: List[str] = dataclasses.field(default_factory=list)


def _final_state(output_dir):
    """``(iteration, config)`` of the finished run in ``output_dir``, or None (also for a
    ``model_final.pth`` that cannot be read: the checkpoints decide then)."""
    path = os.path.join(output_dir, FINAL_NAME)
    if not os.path.isfile(path):
        return None
    try:
        final = load_checkpoint(path)
        return int(final["iteration"]), Config.from_dict(final.get("config", {}))
    except Exception:
        return None


def plan_run(cfg, resume=None, force_resume=False):
    """Decide, reading files only, what training ``cfg`` into its output folder does: resume from
    which checkpoint with which changed settings, start afresh, or nothing (the folder holds the
    finished run). Every refusal (an unfinished run not asked to resume, changed settings without
    ``force_resume``, another model) is a ``TrainingError`` raised here, before any write.

    ``resume``: None, "latest" or a checkpoint path; ``force_resume`` without ``resume`` means
    "latest". A finished run is treated like a checkpoint: relaunched with other settings it is
    refused with the changes listed, and ``force_resume`` continues it to a longer schedule."""
    output_dir = cfg.train.output_dir
    if resume not in (None, "latest"):
        checkpoint = load_training_checkpoint(resume)
        return RunPlan(checkpoint, resume, check_resumable(checkpoint, cfg, resume, force_resume))
    final = _final_state(output_dir)
    existing = list_checkpoints(output_dir)
    if final is not None and (not existing or final[0] >= checkpoint_iteration(existing[-1])):
        return _plan_finished(cfg, *final, force_resume)
    if resume is None and not force_resume:
        if existing:
            raise TrainingError(f"{output_dir} holds checkpoints of an unfinished run (newest: {existing[-1]}). Pass "
                                "--resume to continue it, or set train.output_dir to a new folder to start another.")
        return RunPlan()
    path, checkpoint = load_latest_checkpoint(output_dir)  # raises if every one is unreadable
    if checkpoint is None:
        return RunPlan(notes=[f"no checkpoint in {output_dir} yet: starting from scratch"])
    return RunPlan(checkpoint, path, check_resumable(checkpoint, cfg, path, force_resume))


def _plan_finished(cfg, iteration, saved, force):
    output_dir, max_iters = cfg.train.output_dir, cfg.train.max_iters
    final_path = os.path.join(output_dir, FINAL_NAME)
    changes = setting_changes(saved, cfg)
    if not changes:
        return RunPlan(finished=iteration)
    text = _changes_text(changes, "in the run")
    if any(name in ARCHITECTURE for name, _, _ in changes):
        raise TrainingError(f"{output_dir} holds a finished run of another model ({text}). To train this one from "
                            f"its weights, use --finetune-from {final_path} with a new train.output_dir.")
    if not force:
        longer = f" to train.max_iters={max_iters}" if max_iters > iteration else ""
        raise TrainingError(f"{output_dir} holds a finished run ({iteration} iterations) trained with other settings "
                            f"({text}). Set a new train.output_dir to train with them, or pass --force-resume to "
                            f"continue this run with them{longer}.")
    if max_iters <= iteration:
        raise TrainingError(f"{output_dir} holds a finished run of {iteration} iterations: --force-resume cannot "
                            f"continue it to train.max_iters={max_iters}, which it has passed. Set a new "
                            "train.output_dir to train with the new settings.")
    path, checkpoint = load_latest_checkpoint(output_dir)
    if checkpoint is None or int(checkpoint["iteration"]) < iteration:
        raise TrainingError(f"{output_dir} holds a finished run without its last checkpoint "
                            f"(checkpoint_{iteration:06d}.pth: the optimiser's state), so it cannot be continued. "
                            f"Start from its weights instead: --finetune-from {final_path} with a new "
                            "train.output_dir.")
    return RunPlan(checkpoint, path, check_resumable(checkpoint, cfg, path, force=True))


def _lock_output_dir(output_dir, device, is_main):
    """Take the folder's lock on the main process; every process stops if another run holds it.
    Returns the lock (None on other processes) and a note when a dead run's lock was taken over."""
    lock, note, error = (OutputLock(output_dir) if is_main else None), None, ""
    if lock is not None:
        try:
            note = lock.acquire()
        except OutputLockError as exc:
            error = str(exc)
    if distributed.any_process(error, device):
        raise TrainingError(error or f"{output_dir} is in use by another training run (see the first process)")
    return lock, note


def train(cfg, device=None, resume=None, finetune_from=None, force_resume=False, progress=True,
          final_eval=False):
    """Train the model of ``cfg``. Returns ``(model, final_checkpoint_path)``; ``model`` is None
    when the folder already held the finished run (with the same settings: a rerun trains
    nothing; see ``plan_run``).

    ``resume``: None to start afresh, "latest" for the newest readable checkpoint in
    ``cfg.train.output_dir`` (starting afresh if there is none), or a checkpoint path. The
    output folder is locked for the run: a second run into it is refused. Nothing is written
    into it before the run is accepted (its checkpoints and settings checked, its data found,
    its model built); a refused launch into a new folder leaves no folder behind.

    ``final_eval``: then evaluate ``eval.final_modes`` (``evaluate_after_training``), writing
    the scores to the console, ``log.txt``, ``metrics.jsonl`` and ``results.json``; relaunching a
    finished run shows them again (and evaluates it if it never was, or with other settings).
    """
    device = device if isinstance(device, torch.device) else distributed.resolve_device(device)
    world_size, is_main = distributed.get_world_size(), distributed.is_main_process()
    check_config(cfg)  # a config built in code gets the checks of a config file
    output_dir = cfg.train.output_dir
    if not output_dir:
        raise TrainingError("train.output_dir is empty: name the folder for the checkpoints and logs")
    if finetune_from and not os.path.isfile(finetune_from):
        raise MissingFileError(f"weights file not found: {finetune_from} (--finetune-from)")
    if cfg.train.batch_size % world_size:
        raise TrainingError(f"train.batch_size={cfg.train.batch_size} (images per step, all processes together) "
                            f"does not divide over {world_size} processes; choose a multiple of {world_size}")
    if cfg.train.batch_size // world_size < 2:
        raise TrainingError(f"train.batch_size={cfg.train.batch_size} gives {cfg.train.batch_size // world_size} image "
                            f"per process on {world_size} processes; BatchNorm needs at least 2: choose "
                            f"train.batch_size >= {2 * world_size}")
    if cfg.train.sync_bn and device.type != "cuda" and world_size > 1:
        raise TrainingError("train.sync_bn=true needs CUDA GPUs (SyncBatchNorm runs over NCCL); "
                            "set train.sync_bn=false for several processes on the CPU")
    check_output_dir(output_dir, "train.output_dir")
    first_existing = nearest_existing(output_dir)
    lock, lock_note = _lock_output_dir(output_dir, device, is_main)
    log = RunLog(output_dir, enabled=is_main)  # its files are created when the run is accepted
    accepted = False
    try:
        plan = plan_run(cfg, resume, force_resume)
        final_path = os.path.join(output_dir, FINAL_NAME)
        if plan.finished is not None:
            accepted = _show_finished(cfg, plan.finished, device, log, final_eval, progress)
            return None, final_path
        run, loader, eval_loader = _start(cfg, device, plan, finetune_from, log)
        accepted = True
        _accept(cfg, log, lock_note)
        model = _loop(run, loader, eval_loader, log, progress)
        if final_eval:
            _final_evaluation(cfg, model, device, log, progress)
        return model, final_path
    finally:
        log.close()
        if lock is not None:
            lock.release()
            if not accepted:
                _remove_created(output_dir, first_existing, lock.path)


def _remove_created(output_dir, first_existing, lock_path):
    """After a refused launch: remove the lock file and the folders made for it, if this launch
    made them (the folder did not exist) and they are still empty."""
    folder = os.path.abspath(output_dir)
    if folder == first_existing:
        return
    try:
        os.remove(lock_path)
        while folder != first_existing:
            os.rmdir(folder)
            folder = os.path.dirname(folder)
    except OSError:  # something else is in it now: it stays
        pass


def _accept(cfg, log, lock_note):
    """The run is accepted: its log files, ``config.py``, and the clean-up of an interrupted save."""
    log.open_files()
    output_dir = cfg.train.output_dir
    if lock_note:
        log.info(lock_note)
    if distributed.is_main_process():
        for path in remove_stale_temp_files(output_dir):
            log.info(f"removed {path}, left by an interrupted save")
        write_config(cfg, os.path.join(output_dir, "config.py"))


def _start(cfg, device, plan, finetune_from, log):
    """The run, its training loader and its evaluation loader (or None), from ``plan``; reads
    files only (a wrong data root or a missing backbone stops the launch here)."""
    rank, world_size = distributed.get_rank(), distributed.get_world_size()
    for note in plan.notes:
        log.info(note)
    checkpoint = plan.checkpoint
    if plan.changes:
        text = "; ".join(f"{name} {before} -> {now}" for name, before, now in plan.changes)
        log.warning(f"resuming with changed settings, which apply from iteration {checkpoint['iteration']}: {text}")
    # The data first: a wrong root or a bad file list stops the run before the model is built.
    start_iter = int(checkpoint["iteration"]) if checkpoint is not None else 0
    loader = build_train_loader(cfg, rank, world_size, start=start_iter * cfg.train.batch_size)
    eval_loader = build_eval_loader(cfg, rank, world_size) if cfg.train.eval_interval > 0 else None
    run = build_run(cfg, device, rank, world_size, checkpoint, finetune_from, log)
    if checkpoint is not None:
        if os.path.abspath(os.path.dirname(plan.path)) != os.path.abspath(cfg.train.output_dir):
            run.checkpoints = []  # the files it lists are another folder's, not this run's to prune
        log.info(f"resumed from {plan.path} at iteration {run.start_iter}")
    return run, loader, eval_loader


def _loop(run, loader, eval_loader, log, progress):
    """Train ``run`` to ``train.max_iters``: a step per batch, its status checked, logged, and the
    periodic evaluations and saves; ``model_final.pth`` at the end. Returns the model."""
    cfg, device = run.cfg, run.device
    checkpointer = Checkpointer(run, log)
    log.info(f"training {cfg.model.name} for {cfg.train.max_iters} iterations from {run.start_iter} on "
             f"{run.world_size} process(es), {device}, batch {cfg.train.batch_size}, amp {run.amp_dtype}")
    run.net.train()
    batches = iter(loader)
    skips_in_a_row = 0
    with StopRequest() as stop, ProgressLog(run, log, progress) as progress_log:
        for iteration in range(run.start_iter, cfg.train.max_iters):
            batch = next(batches)
            known = len(run.bad_samples)
            status = train_step(run, batch["image"], batch["label"], batch.get("skipped", ()), stop.signal_number > 0)
            done = iteration + 1
            for error in list(run.bad_samples)[known:]:
                log.info(f"skipped a bad sample: {error}")
            skips_in_a_row = skips_in_a_row + 1 if status.skipped else 0
            _check_status(run, status, done, skips_in_a_row, log)
            progress_log.step(done, status)
            evaluating = eval_loader is not None and done % cfg.train.eval_interval == 0
            saving = done % cfg.train.checkpoint_interval == 0 or done == cfg.train.max_iters or status.stop
            if evaluating or saving:
                share_bn_statistics(run)
            if evaluating:
                _evaluate_periodically(run, eval_loader, done, checkpointer, log)
            if saving:
                checkpointer.save(done, interrupted=status.stop)
            if status.stop:
                progress_log.close()
                log.info(f"stopped by a signal at iteration {done}; checkpoint saved")
                raise TrainingInterrupted(f"stopped at iteration {done}: checkpoint saved in {cfg.train.output_dir}; "
                                          "run the same command with --resume to continue",
                                          stop.signal_number or signal.SIGTERM)
    if run.bad_samples:
        log.warning(f"{len(run.bad_samples)} bad sample(s) were skipped (listed in {cfg.train.output_dir}/log.txt)")
    checkpointer.save_weights(FINAL_NAME, cfg.train.max_iters)
    return run.model


def _check_status(run, status, done, skips_in_a_row, log):
    """Stop the run (every process alike: the status is theirs together) on too many bad
    samples, a non-finite loss outside fp16, or too many fp16 overflows in a row; log a skip."""
    cfg = run.cfg
    if status.bad_samples > cfg.data.max_skipped_samples:
        raise TrainingError(f"{status.bad_samples} distinct bad samples were met, more than "
                            f"data.max_skipped_samples={cfg.data.max_skipped_samples}"
                            + "".join(f"\n  {e}" for e in list(run.bad_samples)[:20]))
    if status.non_finite and not run.scaler.is_enabled():
        raise TrainingError(
            f"non-finite loss at iteration {done} on {status.non_finite} process(es), before the optimiser "
            f"step (lr {status.lrs[0]:.3g}); the last good checkpoint is kept. Lower train.base_lr, or check "
            "that every label is a class id or the ignore index.")
    if not status.skipped:
        return
    log.info(f"iter {done}: {status.skipped} overflowed in fp16; step skipped, loss scale "
             f"{status.loss_scale_before:g} -> {status.loss_scale:g} ({skips_in_a_row} in a row)")
    log.record(iteration=done, skipped_step=status.skipped, loss_scale=status.loss_scale)
    if skips_in_a_row >= cfg.train.max_consecutive_skips:
        raise TrainingError(
            f"{skips_in_a_row} steps in a row overflowed in fp16 (iterations {done - skips_in_a_row + 1}-"
            f"{done}; the loss scale fell to {status.loss_scale:g}); the last good checkpoint is kept. "
            "Lower train.base_lr, check the labels, or train in bf16 (train.amp_dtype=bf16) or fp32 "
            "(train.amp=false).")


class ProgressLog:
    """The progress bar (main process only) and, every ``train.log_interval`` steps, the losses,
    LRs and throughput: an ``iter`` line in the log and a record in ``metrics.jsonl``."""

    def __init__(self, run, log, progress):
        self.run, self.log = run, log
        self.bar = progress_bar(total=run.cfg.train.max_iters, initial=run.start_iter, desc="train",
                                enabled=progress)
        self.window_start, self.window_images = time.perf_counter(), 0

    def step(self, done, status):
        cfg = self.run.cfg
        self.window_images += cfg.train.batch_size
        self.bar.update(1)
        if not (done % cfg.train.log_interval == 0 or done == cfg.train.max_iters or done == self.run.start_iter + 1):
            return
        speed = self.window_images / max(time.perf_counter() - self.window_start, 1e-9)
        self.window_start, self.window_images = time.perf_counter(), 0
        main, aux = status.losses[0], status.losses[1:]
        lr_text = "/".join(f"{lr:.2e}" for lr in status.lrs)
        self.bar.set_postfix_str(f"loss {main:.3f} aux {','.join(f'{v:.3f}' for v in aux)} lr {lr_text} "
                                 f"{speed:.1f} img/s")
        norm = {} if status.grad_norm is None else {"grad_norm": float(status.grad_norm)}
        groups = self.run.optimizer.param_groups
        self.log.record(iteration=done, loss=main, aux_losses=aux, images_per_s=speed,
                        lr={g["name"]: lr for g, lr in zip(groups, status.lrs)}, **norm)
        eta = self.bar.format_interval((cfg.train.max_iters - done) * cfg.train.batch_size / speed)
        self.log.info(f"iter {done}/{cfg.train.max_iters} loss {main:.4f} aux {','.join(f'{v:.4f}' for v in aux)} "
                      f"lr {lr_text} " + (f"grad norm {norm['grad_norm']:.3g} " if norm else "")
                      + f"{speed:.1f} img/s eta {eta}")

    def close(self):
        self.bar.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.bar.close()  # before an error's message, not after it at exit


def _eval_settings(cfg):
    """The settings that decide the evaluation after training, as JSON stores them."""
    settings = {key: getattr(cfg.eval, key) for key in ("final_modes", "scales", "crop_size", "protocol", "short_side")}
    return json.loads(json.dumps({**settings, "ema": cfg.train.ema_decay > 0}))


def _read_results(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _show_finished(cfg, iteration, device, log, final_eval, progress):
    """A relaunched finished run: show its evaluation again, or evaluate it when it never was
    (interrupted, --no-eval) or was with other eval settings. Returns whether files were written."""
    output_dir = cfg.train.output_dir
    final_path, results_path = os.path.join(output_dir, FINAL_NAME), os.path.join(output_dir, RESULTS_NAME)
    saved = _read_results(results_path)
    header = (f"{final_path} already holds this run, finished ({iteration} iterations, the same settings): "
              "nothing to train")
    if saved is not None and (not final_eval or saved.get("eval") == _eval_settings(cfg)):
        log.info(f"{header}. Its evaluation after training ({results_path}):\n{saved['report']}")
        return False
    if not final_eval:
        log.info(f"{header}.")
        return False
    why = "with the new eval settings" if saved is not None else "(it was not evaluated after training)"
    log.info(f"{header}; evaluating it {why}")
    log.open_files()
    model = build_model(cfg)
    model.load_state_dict(read_state_dict(final_path))
    _final_evaluation(cfg, model.to(device), device, log, progress)
    return True


def _final_evaluation(cfg, model, device, log, progress):
    """``evaluate_after_training`` into the run's files; Ctrl-C says what was kept."""
    try:
        evaluate_after_training(cfg, model, device, log, progress)
    except KeyboardInterrupt:
        raise TrainingInterrupted(f"interrupted during the evaluation after training; the trained model is saved in "
                                  f"{os.path.join(cfg.train.output_dir, FINAL_NAME)}: run the same command again to "
                                  "evaluate it", signal.SIGINT) from None


def evaluate_after_training(cfg, model, device=None, log=None, progress=True):
    """The validation scores in each of ``eval.final_modes``, shown as the reference does (one
    table, the modes side by side). With ``train.ema_decay`` the EMA weights that
    ``model_final.pth`` holds are scored too, in columns "<mode> ema" after those of ``model``
    (the trained weights). With a run's ``log`` the table also goes to ``log.txt``, the scores
    to ``metrics.jsonl`` and, with the table, to ``results.json``; without, it is printed.
    Returns ``{column name: scores}``."""
    device = device if isinstance(device, torch.device) else distributed.resolve_device(device)
    modes = [mode_settings(name, cfg.eval) for name in cfg.eval.final_modes]
    final_path = os.path.join(cfg.train.output_dir, FINAL_NAME)
    results = evaluate_modes(cfg, model, device, modes, progress=progress)
    if cfg.train.ema_decay > 0:
        ema = copy.deepcopy(model)
        ema.load_state_dict(read_state_dict(final_path, ema=True))
        scores = evaluate_modes(cfg, ema, device, modes, progress=progress)
        results.update({f"{name} ema": result for name, result in scores.items()})
        modes = modes * 2
    text = report_text(results, modes, cfg.data.class_names)
    if log is None:
        if distributed.is_main_process():
            print(text)
        return results
    names = cfg.data.class_names
    log.info(text)
    log.record(iteration=cfg.train.max_iters, final_evaluation={
        column: {**{key: _number(result[key]) for key in ("miou", "fwiou", "macc", "aacc")},
                 "iou": {name: _number(value) for name, value in zip(names, result["iou"])}}
        for column, result in results.items()})
    if distributed.is_main_process():
        path = write_json(os.path.join(cfg.train.output_dir, RESULTS_NAME), {
            "iteration": cfg.train.max_iters, "weights": final_path, "eval": _eval_settings(cfg), "report": text,
            "modes": {column: result_to_dict(result, names, mode=column, **plain_settings(settings))
                      for (column, result), settings in zip(results.items(), modes)}})
        log.info(f"wrote {path}")
    return results


def _number(value):
    return float(value) if math.isfinite(value) else None
