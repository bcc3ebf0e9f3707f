"""The training loop: iteration-based, OHEM on the main and auxiliary outputs, warmup + poly LR."""
import json
import os
import time

import torch
from tqdm import tqdm

from bisenet import distributed
from bisenet.checkpoint import save_checkpoint
from bisenet.data import build_eval_loader, build_train_loader
from bisenet.data.cityscapes import CLASS_NAMES
from bisenet.engine.evaluator import evaluate, format_scores
from bisenet.losses import OhemCrossEntropy
from bisenet.lr_scheduler import WarmupPolyLR
from bisenet.models import build_model
from bisenet.optim import build_optimizer


def autocast_dtype(device, enabled):
    """fp16 on CUDA (with a gradient scaler), bf16 on CPU; None when mixed precision is off."""
    if not enabled:
        return None
    return torch.float16 if device.type == "cuda" else torch.bfloat16


def train_step(model, criterion, optimizer, scaler, images, labels, aux_weight, amp_dtype):
    """One optimiser update; returns the detached losses (main first, then auxiliary)."""
    with torch.autocast(images.device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
        outputs = model(images)
    losses = [criterion(output, labels) for output in outputs]
    loss = losses[0] + aux_weight * sum(losses[1:])
    if not torch.isfinite(loss):
        raise FloatingPointError(
            f"loss is {loss.item()}; lower train.base_lr, or check that every label is a class id or "
            f"the ignore index (tools/check_dataset.py)")
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return [l.detach() for l in losses]


def prune_checkpoints(output_dir, keep):
    """Delete all but the newest ``keep`` periodic checkpoints (called after a save succeeded)."""
    names = sorted(n for n in os.listdir(output_dir) if n.startswith("checkpoint_") and n.endswith(".pth"))
    for name in names[:-keep] if keep > 0 else []:
        os.remove(os.path.join(output_dir, name))


def train(cfg, device=None, progress=True):
    """Train the model of ``cfg``; returns the model and the path of its final checkpoint."""
    device = distributed.resolve_device(device)
    rank, world_size = distributed.get_rank(), distributed.get_world_size()
    torch.manual_seed(cfg.train.seed)
    output_dir = cfg.train.output_dir
    os.makedirs(output_dir, exist_ok=True)

    model = build_model(cfg, load_backbone=True).to(device)
    optimizer = build_optimizer(model, cfg.train)
    scheduler = WarmupPolyLR(optimizer, cfg.train.max_iters, cfg.train.warmup_iters, cfg.train.warmup_ratio,
                             cfg.train.poly_power)
    criterion = OhemCrossEntropy(cfg.train.ohem_thresh, cfg.train.ohem_min_fraction, cfg.data.ignore_index)
    amp_dtype = autocast_dtype(device, cfg.train.amp)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    loader = build_train_loader(cfg, rank, world_size)

    with open(os.path.join(output_dir, "config.json"), "w") as f:
        json.dump(cfg.to_dict(), f, indent=2)
    log = open(os.path.join(output_dir, "metrics.jsonl"), "a")

    model.train()
    batches = iter(loader)
    bar = tqdm(range(cfg.train.max_iters), desc="train", dynamic_ncols=True,
               disable=not (progress and distributed.is_main_process()))
    start = time.time()
    for iteration in bar:
        batch = next(batches)
        images = batch["image"].to(device, non_blocking=True)
        labels = batch["label"].to(device, non_blocking=True)
        lrs = [group["lr"] for group in optimizer.param_groups]
        losses = train_step(model, criterion, optimizer, scaler, images, labels, cfg.train.aux_weight, amp_dtype)
        scheduler.step()
        done = iteration + 1
        if done % cfg.train.log_interval == 0 or done == cfg.train.max_iters or done == 1:
            values = [l.item() for l in losses]
            bar.set_postfix(loss=f"{values[0]:.3f}", aux=",".join(f"{v:.3f}" for v in values[1:]),
                            lr=f"{lrs[0]:.2e}")
            record = {"iteration": done, "loss": values[0], "aux_losses": values[1:],
                      "lr": {g["name"]: lr for g, lr in zip(optimizer.param_groups, lrs)},
                      "images_per_s": done * cfg.train.batch_size / (time.time() - start)}
            log.write(json.dumps(record) + "\n")
            log.flush()
        if done % cfg.train.checkpoint_interval == 0 or done == cfg.train.max_iters:
            if distributed.is_main_process():
                state = {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "scaler": scaler.state_dict(),
                    "iteration": done,
                    "config": cfg.to_dict(),
                }
                save_checkpoint(state, os.path.join(output_dir, f"checkpoint_{done:06d}.pth"))
                prune_checkpoints(output_dir, cfg.train.keep_checkpoints)
    log.close()
    final = os.path.join(output_dir, "model_final.pth")
    if distributed.is_main_process():
        save_checkpoint({"model": model.state_dict(), "iteration": cfg.train.max_iters, "config": cfg.to_dict()}, final)
    return model, final


def evaluate_after_training(cfg, model, device=None, progress=True):
    """Single-scale scores on the validation split, printed as a table."""
    device = distributed.resolve_device(device)
    loader = build_eval_loader(cfg, distributed.get_rank(), distributed.get_world_size())
    result = evaluate(model, loader, cfg.model.num_classes, device, cfg.data.ignore_index, progress=progress)
    if distributed.is_main_process():
        print(format_scores(result, CLASS_NAMES[: cfg.model.num_classes]))
    return result
