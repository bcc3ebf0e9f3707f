"""``ProgressLog``: what a training run shows while it trains, the progress bar and, every
``train.log_interval`` steps, the losses, LRs and throughput."""
import time

from bisenet.progress import progress_bar


class ProgressLog:
    """The progress bar (main process only) and, every ``train.log_interval`` steps (and after the
    first and the last), an ``iter`` line in the log and a record in ``metrics.jsonl``."""

    def __init__(self, run, log, progress):
        self.run, self.log = run, log
        self.bar = progress_bar(total=run.cfg.train.max_iters, initial=run.start_iter, desc="train",
                                enabled=progress)
        self.window_start, self.window_images = time.perf_counter(), 0

    def step(self, done, status):
        """Step ``done`` (1-based) ended with ``status``."""
        cfg = self.run.cfg
        self.window_images += cfg.train.batch_size
        self.bar.update(1)
        if done % cfg.train.log_interval == 0 or done == cfg.train.max_iters or done == self.run.start_iter + 1:
            speed = self.window_images / max(time.perf_counter() - self.window_start, 1e-9)
            self.window_start, self.window_images = time.perf_counter(), 0
            self._report(done, status, speed)

    def _report(self, done, status, speed):
        cfg = self.run.cfg
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
