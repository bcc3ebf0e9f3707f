"""The training engine: ``train`` launches a run into ``train.output_dir`` and ``_loop`` trains it,
iteration-based, data-parallel under torchrun, resumable to the bit. What it calls lives in
modules named for what they hold: ``engine/plan.py`` decides what a launch does (start, resume,
nothing), ``engine/run.py`` builds the run, ``engine/step.py`` is one optimiser step,
``bisenet/checkpointer.py`` saves, ``engine/progress_log.py`` shows progress,
``engine/final_eval.py`` is the evaluation after training and ``bisenet/signals.py`` what
SIGINT and SIGTERM do.

Every process runs the same code. Per step, one all-reduce carries the losses (for the log) and
the flags every process must agree on (bad samples, a non-finite loss, a stop signal), so all
take the same decision at the same step boundary. Saving is collective too: a check that the
weights are finite, then the write on the main process, then agreement that it succeeded.
"""
import os

import torch

from bisenet import distributed
from bisenet.checkpoint import remove_stale_temp_files
from bisenet.checkpointer import Checkpointer
from bisenet.config import typed, write_config
from bisenet.config_check import check_config
from bisenet.data.loaders import build_eval_loader, build_train_loader
from bisenet.engine.evaluator import evaluate, mode_settings
from bisenet.engine.final_eval import evaluate_after_training, final_evaluation, show_finished
from bisenet.engine.lock import OutputLock, OutputLockError
from bisenet.engine.logs import RunLog
from bisenet.engine.plan import FINAL_NAME, RESULTS_NAME, plan_run
from bisenet.engine.progress_log import ProgressLog
from bisenet.engine.run import TrainingRun, autocast_dtype, build_run, seed_everything
from bisenet.engine.step import StepStatus, train_step
from bisenet.errors import MissingFileError, TrainingError, TrainingInterrupted
from bisenet.outputs import check_output_dir, nearest_existing
from bisenet.signals import StopRequest, interrupt_means

# What tools, benchmarks and tests import from here.
__all__ = ["train", "plan_run", "evaluate_after_training", "build_run", "train_step", "seed_everything",
           "autocast_dtype", "TrainingRun", "StepStatus", "TrainingError", "TrainingInterrupted", "FINAL_NAME",
           "RESULTS_NAME"]


def train(cfg, device=None, *, resume=None, finetune_from=None, force_resume=False, progress=True,
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
    cfg = typed(cfg)  # a config built in code may hold lists where tuples are declared
    _check_launch(cfg, device, finetune_from)
    output_dir = cfg.train.output_dir
    final_path = os.path.join(output_dir, FINAL_NAME)
    with _OutputFolder(output_dir, device) as folder:
        with interrupt_means(f"interrupted before training started; nothing new was saved in {output_dir}"):
            plan = plan_run(cfg, resume, force_resume)
            if plan.finished is not None:
                folder.accepted = show_finished(cfg, plan.finished, device, folder.log, final_eval=final_eval,
                                                progress=progress)
                return None, final_path
            run, loader, eval_loader = _start(cfg, device, plan, finetune_from, folder.log)
            folder.accept(cfg)
        model = _loop(run, loader, eval_loader, folder.log, progress)
        if final_eval:
            final_evaluation(cfg, model, device, folder.log, progress)
        return model, final_path


def _check_launch(cfg, device, finetune_from):
    """Refuse, before anything is written, a config that cannot train on these processes."""
    world_size, batch_size = distributed.get_world_size(), cfg.train.batch_size
    check_config(cfg)  # a config built in code gets the checks of a config file
    if not cfg.train.output_dir:
        raise TrainingError("train.output_dir is empty: name the folder for the checkpoints and logs")
    if finetune_from and not os.path.isfile(finetune_from):
        raise MissingFileError(f"weights file not found: {finetune_from} (--finetune-from)")
    if batch_size % world_size:
        raise TrainingError(f"train.batch_size={batch_size} (images per step, all processes together) "
                            f"does not divide over {world_size} processes; choose a multiple of {world_size}")
    if batch_size // world_size < 2:
        raise TrainingError(f"train.batch_size={batch_size} gives {batch_size // world_size} image "
                            f"per process on {world_size} processes; BatchNorm needs at least 2: choose "
                            f"train.batch_size >= {2 * world_size}")
    if cfg.train.sync_bn and device.type != "cuda" and world_size > 1:
        raise TrainingError("train.sync_bn=true needs CUDA GPUs (SyncBatchNorm runs over NCCL); "
                            "set train.sync_bn=false for several processes on the CPU")
    check_output_dir(cfg.train.output_dir, "train.output_dir")


class _OutputFolder:
    """The output folder, held for one launch: locked (on the main process; every process stops
    if another run holds it) with the run's ``log``, whose files are created only when the run is
    ``accept``ed. On exit the lock is released, and after a refused launch the lock file and the
    folders made for it are removed again."""

    def __init__(self, output_dir, device):
        self.output_dir, self.device = output_dir, device
        self.first_existing = nearest_existing(output_dir)
        self.accepted = False

    def __enter__(self):
        is_main = distributed.is_main_process()
        self.lock, self.lock_note = _lock_output_dir(self.output_dir, self.device, is_main)
        self.log = RunLog(self.output_dir, enabled=is_main)
        return self

    def accept(self, cfg):
        """The run is accepted: its log files, ``config.py``, and the clean-up of an interrupted save."""
        self.accepted = True
        self.log.open_files()
        if self.lock_note:
            self.log.info(self.lock_note)
        if distributed.is_main_process():
            for path in remove_stale_temp_files(self.output_dir):
                self.log.info(f"removed {path}, left by an interrupted save")
            write_config(cfg, os.path.join(self.output_dir, "config.py"))

    def __exit__(self, *exc):
        self.log.close()
        if self.lock is not None:
            self.lock.release()
            if not self.accepted:
                _remove_created(self.output_dir, self.first_existing, self.lock.path)


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
    run = build_run(cfg, device, rank, world_size, checkpoint=checkpoint, finetune_from=finetune_from, log=log)
    if checkpoint is not None:
        if os.path.abspath(os.path.dirname(plan.path)) != os.path.abspath(cfg.train.output_dir):
            run.checkpoints = []  # the files it lists are another folder's, not this run's to prune
        log.info(f"resumed from {plan.path} at iteration {run.start_iter}")
    return run, loader, eval_loader


def _loop(run, loader, eval_loader, log, progress):
    """Train ``run`` to ``train.max_iters``: a step per batch, the checks that stop the run, the
    log, and the periodic evaluations and saves; ``model_final.pth`` at the end. A stop request
    (SIGTERM, SIGINT) saves a checkpoint at the step boundary and ends the run. Returns the model."""
    cfg = run.cfg
    checkpointer = Checkpointer(run, log)
    log.info(f"training {cfg.model.name} for {cfg.train.max_iters} iterations from {run.start_iter} on "
             f"{run.world_size} process(es), {run.device}, batch {cfg.train.batch_size}, amp {run.amp_dtype}")
    run.net.train()
    batches, skips = iter(loader), SkipStreak(cfg.train.max_consecutive_skips)
    with StopRequest() as stop, ProgressLog(run, log, progress) as progress_log:
        for done in range(run.start_iter + 1, cfg.train.max_iters + 1):  # ``done``: 1-based, as logged
            status = _step(run, next(batches), stop=stop.requested, log=log)
            _check_status(run, status, done=done, skips=skips, log=log)
            progress_log.step(done, status)
            _maybe_evaluate(run, eval_loader, done=done, checkpointer=checkpointer, log=log)
            _maybe_save(run, done=done, stop=status.stop, checkpointer=checkpointer)
            if status.stop:
                progress_log.close()
                log.info(f"stopped by a signal at iteration {done}; checkpoint saved")
                raise stop.interrupted(f"stopped at iteration {done}: checkpoint saved in {cfg.train.output_dir}; "
                                       "run the same command with --resume to continue")
    if run.bad_samples:
        log.warning(f"{len(run.bad_samples)} bad sample(s) were skipped (listed in {cfg.train.output_dir}/log.txt)")
    checkpointer.save_weights(FINAL_NAME, cfg.train.max_iters)
    return run.model


def _step(run, batch, *, stop, log):
    """``train_step`` on a loader's batch; the bad samples it met that are new to the run are logged."""
    known = len(run.bad_samples)
    status = train_step(run, batch["image"], batch["label"], batch.get("skipped", ()), stop)
    for error in list(run.bad_samples)[known:]:
        log.info(f"skipped a bad sample: {error}")
    return status


def _check_status(run, status, *, done, skips, log):
    """Stop the run (every process alike: the status is theirs together) on too many bad
    samples, a non-finite loss outside fp16, or too many fp16 overflows in a row."""
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
    skips.count(status, done, log)


class SkipStreak:
    """The fp16 steps skipped in a row (an overflow): each is logged, and ``limit`` of them in a
    row stop the run; a step that is not skipped starts the count afresh."""

    def __init__(self, limit):
        self.limit, self.length = limit, 0

    def count(self, status, done, log):
        if not status.skipped:
            self.length = 0
            return
        self.length += 1
        log.info(f"iter {done}: {status.skipped} overflowed in fp16; step skipped, loss scale "
                 f"{status.loss_scale_before:g} -> {status.loss_scale:g} ({self.length} in a row)")
        log.record(iteration=done, skipped_step=status.skipped, loss_scale=status.loss_scale)
        if self.length >= self.limit:
            raise TrainingError(
                f"{self.length} steps in a row overflowed in fp16 (iterations {done - self.length + 1}-"
                f"{done}; the loss scale fell to {status.loss_scale:g}); the last good checkpoint is kept. "
                "Lower train.base_lr, check the labels, or train in bf16 (train.amp_dtype=bf16) or fp32 "
                "(train.amp=false).")


def _maybe_evaluate(run, eval_loader, *, done, checkpointer, log):
    """Every ``train.eval_interval`` steps: score the weights, and the EMA's, on the val split;
    keep ``model_best.pth``, chosen by the EMA's mIoU when there is an EMA (as timm does), else
    by the weights'."""
    cfg = run.cfg
    if eval_loader is None or done % cfg.train.eval_interval:
        return
    share_bn_statistics(run)
    models = {"raw": run.model, **({"ema": run.ema.module} if run.ema else {})}
    suffix = {"raw": "", "ema": "_ema"}  # metrics.jsonl: miou, miou_ema, ...
    results = {name: evaluate(model, eval_loader, cfg.model.num_classes, run.device, cfg.data.ignore_index,
                              mode_settings("ss", cfg.eval), progress=False)
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


def _maybe_save(run, *, done, stop, checkpointer):
    """Every ``train.checkpoint_interval`` steps, at the last one and on a stop request: a checkpoint."""
    cfg = run.cfg
    if done % cfg.train.checkpoint_interval == 0 or done == cfg.train.max_iters or stop:
        share_bn_statistics(run)
        checkpointer.save(done, interrupted=stop)


def share_bn_statistics(run):
    """Before an evaluation or a save (collective): with ``train.dist_bn=broadcast`` every process
    takes the first's BatchNorm statistics, the ones saved, and the EMA's statistics are always
    the first's, as its weights are everywhere (with "reduce" both are averaged at every step
    instead, and with SyncBatchNorm they agree already). Neither changes the training: the next
    forward pass of DistributedDataParallel hands the first process's statistics to all anyway.
    A second call before the next step changes nothing (a save after an evaluation)."""
    if run.world_size == 1 or run.cfg.train.sync_bn:
        return
    if run.cfg.train.dist_bn == "broadcast":
        distributed.distribute_bn(run.model, "broadcast")
    if run.ema is not None and run.cfg.train.dist_bn != "reduce":
        distributed.distribute_bn(run.ema.module, "broadcast")
