"""``train_step``: one optimiser step on a batch, the function both the training loop and
``benchmarks/train_step.py`` run, and the ``StepStatus`` every process agrees on after it."""
import dataclasses
import re
import warnings
from typing import List, Optional

import torch
import torch.nn as nn

from bisenet import distributed


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
    ``status.bad_samples`` counts distinct files over all of them. ``stop``: this process was
    asked to stop (``status.stop`` says whether any was)."""
    images = images.to(run.device, non_blocking=True, memory_format=run.memory_format)
    labels = labels.to(run.device, non_blocking=True)
    lrs = [group["lr"] for group in run.optimizer.param_groups]
    with torch.autocast(run.device.type, dtype=run.amp_dtype or torch.float32, enabled=run.amp_dtype is not None):
        outputs = run.net(images)
    losses = torch.stack([run.criterion(output, labels) for output in outputs])
    status = _agree(run, losses, bad_samples=bad_samples, stop=stop, lrs=lrs)
    if status.bad_samples > run.cfg.data.max_skipped_samples or (status.non_finite and not run.scaler.is_enabled()):
        return status  # the caller stops the run; nothing was changed
    _update(run, losses, status)
    if run.cfg.train.dist_bn == "reduce" and run.world_size > 1 and not run.cfg.train.sync_bn:
        # Every step, so that the statistics never depend on when a save or an evaluation came;
        # they are also what the EMA averages, which thus stays the same on every process.
        distributed.distribute_bn(run.model, "reduce")
    if run.ema is not None and status.stepped:
        run.ema.update(run.model)
    return status


def _agree(run, losses, *, bad_samples, stop, lrs):
    """The one all-reduce of a step (also its host sync): the losses, averaged for the log, and
    the flags every process must decide on alike (new bad samples, a non-finite loss, a stop)."""
    new_bad = list(dict.fromkeys(error for error in bad_samples if error not in run.bad_samples))
    flags = torch.tensor([len(new_bad), float(not torch.isfinite(losses).all()), float(stop)], device=run.device)
    summed = distributed.all_reduce_sum(torch.cat([losses.detach().float(), flags])).tolist()
    if summed[-3] > 0:
        for errors in distributed.gather_objects(new_bad):
            run.bad_samples.update(dict.fromkeys(errors))
    return StepStatus([v / run.world_size for v in summed[:len(losses)]], len(run.bad_samples), int(summed[-2]),
                      summed[-1] > 0, lrs=lrs)


def _update(run, losses, status):
    """Backward and the optimiser step through the gradient scaler, then the schedule; under fp16
    a step the scaler skipped (an overflow) is recorded in ``status``."""
    run.optimizer.zero_grad(set_to_none=True)
    scale = run.scaler.get_scale()
    if status.non_finite:
        # fp16 overflow in the forward pass: every process skips the step (the flag was summed
        # over them) and the loss scale backs off, as the scaler would.
        run.scaler.update(scale * run.scaler.get_backoff_factor())
    else:
        loss = losses[0] + run.cfg.train.aux_weight * losses[1:].sum()
        run.scaler.scale(loss).backward()
        if run.cfg.train.clip_grad_norm > 0:
            # The true gradients are clipped: unscaled first (the scaler then does not unscale
            # them again). An overflowed one makes the norm inf or NaN, and the scaler still skips.
            run.scaler.unscale_(run.optimizer)
            status.grad_norm = nn.utils.clip_grad_norm_(run.model.parameters(), run.cfg.train.clip_grad_norm)
        run.scaler.step(run.optimizer)  # skipped by the scaler if a gradient overflowed
        run.scaler.update()
    with warnings.catch_warnings():
        # A skipped first step makes torch warn that the schedule skips a value; ours is a
        # function of the iteration and does not.
        warnings.filterwarnings("ignore", re.escape("Detected call of `lr_scheduler.step()` before"))
        run.scheduler.step()
    status.loss_scale_before, status.loss_scale = scale, run.scaler.get_scale()
    status.stepped = not (run.scaler.is_enabled() and status.loss_scale < scale)
    if not status.stepped:
        status.skipped = "the loss" if status.non_finite else "a gradient"
