import pytest
import torch

from bisenet.lr_scheduler import WarmupPolyLR, lr_factor


def expected_factor(it, max_iters=80000, warmup=1000, ratio=0.1, power=0.9):
    if it < warmup:
        return ratio ** (1 - it / warmup)
    return (1 - (it - warmup) / (max_iters - warmup)) ** power


@pytest.mark.parametrize("it", [0, 500, 999, 1000, 40500, 79999])
def test_lr_factor(it):
    assert lr_factor(it, 80000, 1000, 0.1, 0.9) == pytest.approx(expected_factor(it), rel=1e-12)


def test_lr_factor_landmarks():
    assert lr_factor(0, 80000) == pytest.approx(0.1)
    assert lr_factor(1000, 80000) == pytest.approx(1.0)
    assert lr_factor(40500, 80000) == pytest.approx(0.5 ** 0.9)


def test_scheduler_scales_every_group_and_keeps_the_ratio():
    a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.SGD([{"params": [a], "lr": 0.01}, {"params": [b], "lr": 0.1}], lr=0.01, momentum=0.9)
    sched = WarmupPolyLR(opt, max_iters=20, warmup_iters=5, warmup_ratio=0.1, power=0.9)
    for n in range(20):
        if n:
            opt.step()
            sched.step()
        factor = expected_factor(n, max_iters=20, warmup=5)
        lrs = [g["lr"] for g in opt.param_groups]
        assert lrs == pytest.approx([0.01 * factor, 0.1 * factor], rel=1e-9)
        assert lrs[1] / lrs[0] == pytest.approx(10.0)
