"""The training loop: iteration-based, data-parallel under torchrun, resumable to the bit.

Every process runs this same function. Per step, one all-reduce carries the losses (for the
log), a non-finite flag and a stop flag, so all processes take the same decision at the same
step boundary.
"""
import os
import random
import re
import signal
import time
import warnings

import numpy as np
import torch
import torch.nn as nn
from tqdm import tqdm

from bisenet import distributed
from bisenet.checkpoint import (capture_rng_state, list_checkpoints, load_checkpoint, load_for_finetune,
                                load_latest_checkpoint, restore_rng_state, save_checkpoint)
from bisenet.data import build_eval_loader, build_train_loader
from bisenet.engine.evaluator import evaluate, evaluate_modes, mode_settings, report
from bisenet.engine.logs import RunLog
from bisenet.losses import OhemCrossEntropy
from bisenet.lr_scheduler import WarmupPolyLR
from bisenet.models import build_model
from bisenet.optim import build_optimizer


class TrainingError(RuntimeError):
    """Training cannot start or go on; the message says why and what to do."""


class TrainingInterrupted(TrainingError):
    """SIGTERM or SIGINT arrived: a checkpoint was saved at a step boundary."""

    def __init__(self, message, signal_number):
        super().__init__(message)
        self.signal_number = signal_number


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


def finished_iteration(output_dir):
    """The iteration count recorded in ``model_final.pth``, or None."""
    path = os.path.join(output_dir, "model_final.pth")
    if not os.path.isfile(path):
        return None
    try:
        return int(load_checkpoint(path)["iteration"])
    except Exception:
        return None


def check_resumable(checkpoint, cfg, path, force):
    """Refuse a resume that would silently change the run (batch, length, classes)."""
    saved = checkpoint.get("config", {})
    changes = []
    for section, key in (("train", "batch_size"), ("train", "max_iters"), ("model", "num_classes")):
        before, now = saved.get(section, {}).get(key), getattr(getattr(cfg, section), key)
        if before is not None and before != now:
            changes.append(f"{section}.{key}: {before} in the checkpoint, {now} now")
    if changes and not force:
        raise TrainingError(f"{path} was saved by a different run setup ({'; '.join(changes)}). Restore the "
                            "setting, or pass --force-resume to continue with the new one.")
    return changes


def prune_checkpoints(output_dir, keep):
    """Delete all but the newest ``keep`` periodic checkpoints (called after a save succeeded)."""
    paths = list_checkpoints(output_dir)
    for path in paths[:-keep] if keep > 0 else []:
        os.remove(path)


def train(cfg, device=None, resume=None, finetune_from=None, force_resume=False, progress=True):
    """Train the model of ``cfg``. Returns ``(model, final_checkpoint_path)``; ``model`` is None
    when the run had already finished (a rerun is a no-op).

    ``resume``: None to start afresh, "latest" for the newest readable checkpoint in
    ``cfg.train.output_dir`` (starting afresh if there is none), or a checkpoint path.
    """
    device = device if isinstance(device, torch.device) else distributed.resolve_device(device)
    rank, world_size = distributed.get_rank(), distributed.get_world_size()
    is_main = rank == 0
    output_dir = cfg.train.output_dir
    final_path = os.path.join(output_dir, "model_final.pth")
    if cfg.train.batch_size % world_size:
        raise TrainingError(f"train.batch_size={cfg.train.batch_size} (images per step, all processes together) "
                            f"does not divide over {world_size} processes; choose a multiple of {world_size}")

    if cfg.train.sync_bn and device.type != "cuda":
        raise TrainingError("train.sync_bn=true needs CUDA GPUs (SyncBatchNorm runs over NCCL); "
                            "set train.sync_bn=false on the CPU")
    done_before = finished_iteration(output_dir)
    if done_before is not None and done_before >= cfg.train.max_iters:
        if is_main:
            print(f"{final_path} already holds the finished run ({done_before} iterations): nothing to do. "
                  "Use another train.output_dir to train again.")
        return None, final_path

    checkpoint, checkpoint_path = None, None
    if resume == "latest":
        checkpoint_path, checkpoint = load_latest_checkpoint(output_dir)
        if checkpoint is None and is_main:
            print(f"no checkpoint in {output_dir} yet: starting from scratch")
    elif resume:
        checkpoint_path, checkpoint = resume, load_checkpoint(resume)
    elif list_checkpoints(output_dir):
        raise TrainingError(f"{output_dir} holds checkpoints of an unfinished run (newest: "
                            f"{list_checkpoints(output_dir)[-1]}). Pass --resume to continue it, or set "
                            "train.output_dir to a new folder to start another.")
    if checkpoint is not None:
        changes = check_resumable(checkpoint, cfg, checkpoint_path, force_resume)
        if changes and is_main:
            print("warning: resuming with changed settings: " + "; ".join(changes))

    log = RunLog(output_dir, enabled=is_main)
    seed_everything(cfg.train.seed)  # the same on every process, so initial weights agree
    model = build_model(cfg, load_backbone=checkpoint is None and not finetune_from)
    if finetune_from and checkpoint is None:
        for line in load_for_finetune(model, finetune_from):
            log.info(line)
            if is_main:
                print(line)
    if cfg.train.sync_bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    memory_format = torch.channels_last if cfg.train.channels_last else torch.contiguous_format
    model.to(device, memory_format=memory_format)
    optimizer = build_optimizer(model, cfg.train)
    scheduler = WarmupPolyLR(optimizer, cfg.train.max_iters, cfg.train.warmup_iters, cfg.train.warmup_ratio,
                             cfg.train.poly_power)
    amp_dtype = autocast_dtype(device, cfg.train.amp, cfg.train.amp_dtype)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    start_iter, best_miou = 0, None
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        scaler.load_state_dict(checkpoint["scaler"])
        rng_states = checkpoint.get("rng", [])
        if len(rng_states) == world_size:
            restore_rng_state(rng_states[rank])
        start_iter, best_miou = int(checkpoint["iteration"]), checkpoint.get("best_miou")
        log.info(f"resumed from {checkpoint_path} at iteration {start_iter}")
    if scaler.is_enabled():
        scaler.scale(torch.ones((), device=device))  # creates the scale tensor that a skipped step lowers
    criterion = OhemCrossEntropy(cfg.train.ohem_thresh, cfg.train.ohem_min_fraction, cfg.data.ignore_index)
    net = model
    if world_size > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    loader = build_train_loader(cfg, rank, world_size, start=start_iter * cfg.train.batch_size)
    eval_loader = build_eval_loader(cfg, rank, world_size) if cfg.train.eval_interval > 0 else None
    if is_main:
        os.makedirs(output_dir, exist_ok=True)
        log.info(f"training {cfg.model.name} for {cfg.train.max_iters} iterations from {start_iter} on "
                 f"{world_size} process(es), {device}, batch {cfg.train.batch_size}, amp {amp_dtype}")

    def save(iteration, interrupted=False):
        # Collective: every process hands its RNG state to the main one.
        rng = [None] * world_size
        if world_size > 1:
            torch.distributed.all_gather_object(rng, capture_rng_state())
        else:
            rng = [capture_rng_state()]
        if is_main:
            state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                     "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), "iteration": iteration,
                     "sample_position": iteration * cfg.train.batch_size, "rng": rng, "best_miou": best_miou,
                     "world_size": world_size, "config": cfg.to_dict(), "interrupted": interrupted}
            path = os.path.join(output_dir, f"checkpoint_{iteration:06d}.pth")
            save_checkpoint(state, path)
            prune_checkpoints(output_dir, cfg.train.keep_checkpoints)
            log.info(f"saved {path}")

    net.train()
    batches = iter(loader)
    bar = tqdm(total=cfg.train.max_iters, initial=start_iter, desc="train", dynamic_ncols=True,
               disable=not (progress and is_main))
    window_start, window_images = time.perf_counter(), 0
    skipped, skipped_steps = [], 0
    with StopRequest() as stop:
        for iteration in range(start_iter, cfg.train.max_iters):
            batch = next(batches)
            if batch.get("skipped"):
                skipped += batch["skipped"]
                for error in batch["skipped"]:
                    log.info(f"skipped a bad sample: {error}")
            images = batch["image"].to(device, non_blocking=True, memory_format=memory_format)
            labels = batch["label"].to(device, non_blocking=True)
            lrs = [group["lr"] for group in optimizer.param_groups]
            with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                outputs = net(images)
            losses = torch.stack([criterion(output, labels) for output in outputs])
            flags = [len(skipped), float(not torch.isfinite(losses).all()), float(stop.signal_number > 0)]
            status = torch.cat([losses.detach().float(), torch.tensor(flags, device=device)])
            status = distributed.all_reduce_sum(status).tolist()  # also the host sync for the checks
            if status[-3] > cfg.data.max_skipped_samples:
                raise TrainingError(f"{int(status[-3])} bad samples were met, more than data.max_skipped_samples="
                                    f"{cfg.data.max_skipped_samples}" + "".join(f"\n  {e}" for e in skipped[:20]))
            non_finite = status[-2] > 0
            if non_finite and not scaler.is_enabled():
                raise TrainingError(
                    f"non-finite loss at iteration {iteration + 1} on {int(status[-2])} process(es), before the "
                    f"optimiser step (lr {lrs[0]:.3g}); the last good checkpoint is kept. Lower train.base_lr, "
                    "or check that every label is a class id or the ignore index.")
            optimizer.zero_grad(set_to_none=True)
            scale = scaler.get_scale()
            if non_finite:
                # fp16 overflow in the forward pass: every process skips the step (the flag was
                # summed over them) and the loss scale backs off, as the scaler would.
                scaler.update(scale * scaler.get_backoff_factor())
            else:
                loss = losses[0] + cfg.train.aux_weight * losses[1:].sum()
                scaler.scale(loss).backward()
                scaler.step(optimizer)  # skipped by the scaler if a gradient overflowed
                scaler.update()
            with warnings.catch_warnings():
                # A skipped first step makes torch warn that the schedule skips a value; ours is
                # a function of the iteration and does not.
                warnings.filterwarnings("ignore", re.escape("Detected call of `lr_scheduler.step()` before"))
                scheduler.step()
            done = iteration + 1
            if scaler.is_enabled() and scaler.get_scale() < scale:
                skipped_steps += 1
                reason = "the loss" if non_finite else "a gradient"
                log.info(f"iter {done}: {reason} overflowed in fp16; step skipped, loss scale {scale:g} -> "
                         f"{scaler.get_scale():g} ({skipped_steps} in a row)")
                log.record(iteration=done, skipped_step=reason, loss_scale=scaler.get_scale())
                if skipped_steps >= cfg.train.max_consecutive_skips:
                    raise TrainingError(
                        f"{skipped_steps} steps in a row overflowed in fp16 (iterations {done - skipped_steps + 1}-"
                        f"{done}; the loss scale fell to {scaler.get_scale():g}); the last good checkpoint is kept. "
                        "Lower train.base_lr, check the labels, or train in bf16 (train.amp_dtype=bf16) or fp32 "
                        "(train.amp=false).")
            else:
                skipped_steps = 0
            window_images += cfg.train.batch_size
            bar.update(1)
            if done % cfg.train.log_interval == 0 or done == cfg.train.max_iters or done == start_iter + 1:
                values = [v / world_size for v in status[: len(outputs)]]
                speed = window_images / max(time.perf_counter() - window_start, 1e-9)
                window_start, window_images = time.perf_counter(), 0
                lr_text = "/".join(f"{lr:.2e}" for lr in lrs)
                bar.set_postfix_str(f"loss {values[0]:.3f} aux {','.join(f'{v:.3f}' for v in values[1:])} "
                                    f"lr {lr_text} {speed:.1f} img/s")
                log.record(iteration=done, loss=values[0], aux_losses=values[1:],
                           lr={g["name"]: lr for g, lr in zip(optimizer.param_groups, lrs)}, images_per_s=speed)
                log.info(f"iter {done}/{cfg.train.max_iters} loss {values[0]:.4f} aux "
                         f"{','.join(f'{v:.4f}' for v in values[1:])} lr {lr_text} {speed:.1f} img/s "
                         f"eta {bar.format_interval((cfg.train.max_iters - done) * cfg.train.batch_size / speed)}")
            if eval_loader is not None and done % cfg.train.eval_interval == 0:
                result = evaluate(model, eval_loader, cfg.model.num_classes, device, cfg.data.ignore_index,
                                  protocol=cfg.eval.protocol, progress=False)
                log.record(iteration=done, miou=result["miou"], macc=result["macc"], aacc=result["aacc"])
                log.info(f"iter {done} val mIoU {100 * result['miou']:.2f}")
                if is_main and (best_miou is None or result["miou"] > best_miou):
                    best_miou = result["miou"]
                    save_checkpoint({"model": model.state_dict(), "iteration": done, "miou": best_miou,
                                     "config": cfg.to_dict()}, os.path.join(output_dir, "model_best.pth"))
                net.train()
            stopping = status[-1] > 0
            if done % cfg.train.checkpoint_interval == 0 or done == cfg.train.max_iters or stopping:
                save(done, interrupted=stopping)
            if stopping:
                bar.close()
                log.info(f"stopped by a signal at iteration {done}; checkpoint saved")
                log.close()
                raise TrainingInterrupted(f"stopped at iteration {done}: checkpoint saved in {output_dir}; "
                                          "run the same command with --resume to continue",
                                          stop.signal_number or signal.SIGTERM)
    bar.close()
    if skipped and is_main:
        print(f"warning: {len(skipped)} bad sample(s) were skipped (listed in {output_dir}/log.txt)")
    if is_main:
        save_checkpoint({"model": model.state_dict(), "iteration": cfg.train.max_iters, "config": cfg.to_dict()},
                        final_path)
        log.info(f"saved {final_path}")
    log.close()
    return model, final_path


def evaluate_after_training(cfg, model, device=None, progress=True):
    """The validation scores in each of ``eval.final_modes``, printed as the reference does
    (one table, the modes side by side). Returns ``{mode name: scores}``."""
    device = device if isinstance(device, torch.device) else distributed.resolve_device(device)
    modes = [mode_settings(name, cfg.eval) for name in cfg.eval.final_modes]
    results = evaluate_modes(cfg, model, device, modes, progress=progress)
    report(results, modes, cfg.data.class_names)
    return results
