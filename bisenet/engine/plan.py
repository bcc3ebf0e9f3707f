"""``plan_run``: what a launch into ``train.output_dir`` does (start, resume from which checkpoint
with which changed settings, or nothing: the run is finished), decided by reading files only,
with every refusal raised before anything is written."""
import dataclasses
import os
from typing import List, Optional

from bisenet.checkpoint import (
    checkpoint_iteration,
    list_checkpoints,
    load_checkpoint,
    load_latest_checkpoint,
    load_training_checkpoint,
)
from bisenet.config import Config, ConfigError
from bisenet.errors import TrainingError

FINAL_NAME = "model_final.pth"
RESULTS_NAME = "results.json"  # the evaluation after training, beside model_final.pth

# Settings that do not change what a run computes: a resume may change them freely.
FREE_ON_RESUME = {"model.backbone_weights", "train.output_dir", "train.log_interval", "train.checkpoint_interval",
                  "train.keep_checkpoints", "train.eval_interval", "train.max_consecutive_skips", "data.root",
                  "data.num_workers", "data.max_skipped_samples", "data.val_split", "data.val_list"}
ARCHITECTURE = ("model.name", "model.num_classes")


@dataclasses.dataclass
class RunPlan:
    """What a launch into ``train.output_dir`` does, decided before anything is written."""

    checkpoint: Optional[dict] = None  # to resume from (None: from the start)
    path: Optional[str] = None
    changes: list = dataclasses.field(default_factory=list)  # settings that differ from it (--force-resume)
    finished: Optional[int] = None  # the folder holds this finished run with these settings: nothing to train
    notes: List[str] = dataclasses.field(default_factory=list)


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


def changes_text(changes, where="in the checkpoint"):
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
    text = changes_text(changes)
    if any(name in ARCHITECTURE for name, _, _ in changes):
        raise TrainingError(f"{path} holds another model ({text}): its weights cannot continue this run. To start "
                            f"a new run from them, use --finetune-from {path} with a new train.output_dir "
                            "(layers that do not fit are re-initialised and listed).")
    if changes and not force:
        raise TrainingError(f"{path} was saved with other settings ({text}). Restore them, or pass --force-resume "
                            "to continue with the new ones.")
    return changes


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


def _plan_finished(cfg, iteration, saved, force):
    """The folder holds a finished run of ``iteration`` steps with the config ``saved``: nothing to
    do with the same settings, else refused, or (``force``) continued to a longer schedule."""
    output_dir, max_iters = cfg.train.output_dir, cfg.train.max_iters
    final_path = os.path.join(output_dir, FINAL_NAME)
    changes = setting_changes(saved, cfg)
    if not changes:
        return RunPlan(finished=iteration)
    text = changes_text(changes, "in the run")
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
    return _plan_continuation(cfg, iteration, final_path)


def _plan_continuation(cfg, iteration, final_path):
    """--force-resume of a finished run: from its last checkpoint, which holds the optimiser."""
    output_dir = cfg.train.output_dir
    path, checkpoint = load_latest_checkpoint(output_dir)
    if checkpoint is None or int(checkpoint["iteration"]) < iteration:
        raise TrainingError(f"{output_dir} holds a finished run without its last checkpoint "
                            f"(checkpoint_{iteration:06d}.pth: the optimiser's state), so it cannot be continued. "
                            f"Start from its weights instead: --finetune-from {final_path} with a new "
                            "train.output_dir.")
    return RunPlan(checkpoint, path, check_resumable(checkpoint, cfg, path, force=True))
