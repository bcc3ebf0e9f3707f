"""Exponential warmup then poly decay, as a pure function of the iteration, applied by torch's
``LambdaLR``."""
import functools

from torch.optim.lr_scheduler import LambdaLR


def lr_factor(iteration, max_iters, warmup_iters=1000, warmup_ratio=0.1, power=0.9):
    """Multiplier of the base LR at ``iteration`` (0-based, the update about to be made).

    Warmup grows from ``warmup_ratio`` exponentially: ``warmup_ratio ** (1 - it / warmup_iters)``;
    then ``(1 - progress) ** power`` with progress measured from the end of the warmup.
    """
    if iteration < warmup_iters:
        return warmup_ratio ** (1 - iteration / warmup_iters)
    progress = (iteration - warmup_iters) / max(1, max_iters - warmup_iters)
    return (1 - min(progress, 1.0)) ** power


class WarmupPolyLR(LambdaLR):
    """``LambdaLR`` with ``lr_factor``: every parameter group's initial LR times the factor (so the
    heads keep their multiplier), the same values to the bit as computing them by hand."""

    def __init__(self, optimizer, max_iters, warmup_iters=1000, warmup_ratio=0.1, power=0.9, last_epoch=-1):
        self.max_iters = max_iters
        self.warmup_iters = warmup_iters
        self.warmup_ratio = warmup_ratio
        self.power = power
        factor = functools.partial(lr_factor, max_iters=max_iters, warmup_iters=warmup_iters,
                                   warmup_ratio=warmup_ratio, power=power)
        super().__init__(optimizer, factor, last_epoch)

    def start_at(self, iteration):
        """Continue the schedule at ``iteration``, as built (a resume): every group's LR becomes
        this schedule's value there, whatever a checkpoint's optimiser state said. (LambdaLR can
        only be built at an iteration from an optimiser that already holds ``initial_lr``, and
        its own resume, ``load_state_dict``, would bring back the old schedule's settings.)"""
        self.last_epoch = iteration
        self._last_lr = [base_lr * factor(iteration) for factor, base_lr in zip(self.lr_lambdas, self.base_lrs)]
        for group, lr in zip(self.optimizer.param_groups, self._last_lr):
            group["lr"] = lr
