"""``Checkpointer``: how a training run saves itself into its output folder, beside the file I/O
of ``bisenet.checkpoint`` that it writes with. It works on the run it is given by duck typing
(``cfg``, ``model``, ``ema``, ``optimizer``, ``scaler``, ``device``, ``is_main``, and the run's
bookkeeping ``checkpoints``, ``best_miou``, ``bad_samples``), so it needs nothing of the engine."""
import os

import torch

from bisenet import distributed
from bisenet.checkpoint import DiskFullError, save_checkpoint
from bisenet.errors import TrainingError
from bisenet.rng import capture_rng_state


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
        """``checkpoint_<iteration>.pth``: everything a resume needs, to the bit."""
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
        self._refuse_non_finite(path, iteration)
        error = self._write_on_main(state, path) if self.run.is_main else ""
        if distributed.any_process(error, self.run.device):
            raise TrainingError(error or "the main process could not save a checkpoint (see its message)")

    def _refuse_non_finite(self, path, iteration):
        """A model holding inf or NaN on any process is never saved: the run stops instead."""
        run = self.run
        bad = non_finite_entries(run.model)
        if not distributed.any_process(bad, run.device):
            return
        previous = self._previous()
        raise TrainingError(
            f"after iteration {iteration} the model holds inf or NaN in {len(bad) or 'some'} tensor(s)"
            + (f" ({', '.join(bad[:4])}{', ...' if len(bad) > 4 else ''})" if bad else " on another process")
            + f": training diverged (a loss that exploded while staying finite), so {path} was not written; "
            + (f"{previous} is the last good checkpoint" if previous else "no checkpoint was saved yet")
            + f". Lower train.base_lr (now {run.cfg.train.base_lr:g}).")

    def _write_on_main(self, state, path):
        """Write ``state``; returns "" or, for a full disk, the message every process stops with."""
        try:
            save_checkpoint(state, path)
        except DiskFullError as exc:
            keep = self.run.cfg.train.keep_checkpoints
            previous = self._previous()
            error = (f"{exc}; train.keep_checkpoints={keep} keeps about {keep} x {exc.size_mb:.0f} MB; "
                     + (f"{previous} is intact" if previous else "no earlier checkpoint exists")
                     + ". Free some space or set train.output_dir on a larger disk, then resume with --resume.")
            self.log.info(f"error: {error}")
            return error
        self.log.info(f"saved {path}")
        return ""
