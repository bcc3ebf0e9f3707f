"""Exponential warmup then poly decay, as a pure function of the iteration."""
from torch.optim.lr_scheduler import LRScheduler


def lr_factor(iteration, max_iters, warmup_iters=1000, warmup_ratio=0.1, power=0.9):
    """Multiplier of the base LR at ``iteration`` (0-based, the update about to be made).

    Warmup grows from ``warmup_ratio`` exponentially: ``warmup_ratio ** (1 - it / warmup_iters)``;
    then ``(1 - progress) ** power`` with progress measured from the end of the warmup.
    """
    if iteration < warmup_iters:
        return warmup_ratio ** (1 - iteration / warmup_iters)
    progress = (iteration - warmup_iters) / max(1, max_iters - warmup_iters)
    return (1 - min(progress, 1.0)) ** power


class WarmupPolyLR(LRScheduler):
    """Applies ``lr_factor`` to every parameter group's initial LR (so the heads keep their
    multiplier)."""

    def __init__(self, optimizer, max_iters, warmup_iters=1000, warmup_ratio=0.1, power=0.9, last_epoch=-1):
        self.max_iters = max_iters
        self.warmup_iters = warmup_iters
        self.warmup_ratio = warmup_ratio
        self.power = power
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        factor = lr_factor(self.last_epoch, self.max_iters, self.warmup_iters, self.warmup_ratio, self.power)
        return [base_lr * factor for base_lr in self.base_lrs]

    def start_at(self, iteration):
        """Continue the schedule at ``iteration``, as built (a resume): every group's LR becomes
        this schedule's value there, whatever a checkpoint's optimiser state said."""
        self.last_epoch = iteration
        self._last_lr = self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, self._last_lr):
            group["lr"] = lr
