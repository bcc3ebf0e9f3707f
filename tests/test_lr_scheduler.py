import pytest
import torch

from bisenet.lr_scheduler import WarmupPolyLR, lr_factor

# Values worked out by hand for the Cityscapes recipe (80k iterations, 1k of warmup from 0.1,
# power 0.9): warmup 0.1 ** (1 - it / 1000), then (1 - (it - 1000) / 79000) ** 0.9.
HAND = {
    0: 0.1,
    500: 0.1 ** 0.5,  # 0.31622776601683794
    1000: 1.0,
    40500: 0.5 ** 0.9,  # half of the poly part done: 0.5358867312681466
    79000: (1000 / 79000) ** 0.9,
    80000: 0.0,
}


@pytest.mark.parametrize("iteration, expected", HAND.items())
def test_lr_factor_by_hand(iteration, expected):
    assert lr_factor(iteration, 80000, 1000, 0.1, 0.9) == pytest.approx(expected, rel=1e-12, abs=1e-15)


def reference_lr(base, it, max_iter, warmup_iter, warmup_ratio, power):
    """CoinCheung/BiSeNet's WarmupPolyLrScheduler (exponential warmup), from its description."""
    if it < warmup_iter:
        alpha = it / warmup_iter
        return base * warmup_ratio ** (1.0 - alpha)
    real_iter, real_max_iter = it - warmup_iter, max_iter - warmup_iter
    return base * (1 - real_iter / real_max_iter) ** power


def test_scheduler_follows_the_references_formula_in_every_group():
    a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    optimizer = torch.optim.SGD([{"params": [a], "lr": 0.01}, {"params": [b], "lr": 0.1}], lr=0.01, momentum=0.9)
    scheduler = WarmupPolyLR(optimizer, max_iters=20, warmup_iters=5, warmup_ratio=0.1, power=0.9)
    for iteration in range(20):
        if iteration:
            optimizer.step()
            scheduler.step()
        lrs = [g["lr"] for g in optimizer.param_groups]
        assert lrs == pytest.approx([reference_lr(base, iteration, 20, 5, 0.1, 0.9) for base in (0.01, 0.1)], rel=1e-12)


def test_start_at_continues_the_schedule_of_its_own_settings():
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=0.5)
    scheduler = WarmupPolyLR(optimizer, max_iters=20, warmup_iters=5, warmup_ratio=0.1, power=0.9)
    optimizer.param_groups[0]["lr"] = 123.0  # what a checkpoint's optimiser state might say
    scheduler.start_at(12)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(reference_lr(0.5, 12, 20, 5, 0.1, 0.9), rel=1e-12)
