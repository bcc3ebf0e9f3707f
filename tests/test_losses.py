import math

import numpy as np
import pytest
import torch

from bisenet.losses import CrossEntropy, OhemCrossEntropy, build_loss


def reference_ohem(logits, labels, thresh=0.7, ignore_index=255):
    logits = logits.double().numpy().transpose(0, 2, 3, 1).reshape(-1, logits.shape[1])
    labels = labels.numpy().reshape(-1)
    valid = labels != ignore_index
    logits, labels = logits[valid], labels[valid]
    top = logits.max(axis=1, keepdims=True)
    lse = top[:, 0] + np.log(np.exp(logits - top).sum(axis=1))
    losses = lse - logits[np.arange(len(labels)), labels]
    n_min = max(len(losses) // 16, 1)
    # fp32 and float64 losses differ by ~1e-6; a pixel that close to the threshold could be chosen
    # differently on another CPU and move the mean by ~1/n. These batches keep far from it.
    assert np.abs(losses + math.log(thresh)).min() > 1e-4
    hard = losses[losses > -math.log(thresh)]
    if len(hard) < n_min:
        hard = np.sort(losses)[::-1][:n_min]
    return hard.mean(), int((losses > -math.log(thresh)).sum()), n_min


def make_batch(seed, confident):
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 4, (2, 12, 10), generator=gen)
    logits = torch.randn(2, 4, 12, 10, generator=gen) * 2
    if confident:
        logits += 8 * torch.nn.functional.one_hot(labels, 4).permute(0, 3, 1, 2)
        hard = torch.rand(labels.shape, generator=gen) < 0.02
        logits[hard.unsqueeze(1).expand_as(logits)] = torch.randn(int(hard.sum()) * 4, generator=gen)
    labels[torch.rand(labels.shape, generator=gen) < 0.25] = 255
    return logits, labels


def test_many_hard_pixels_matches_reference():
    logits, labels = make_batch(0, confident=False)
    expected, n_hard, n_min = reference_ohem(logits, labels)
    assert n_hard >= n_min
    assert OhemCrossEntropy()(logits, labels).item() == pytest.approx(expected, rel=1e-5)


def test_few_hard_pixels_takes_the_largest_losses():
    logits, labels = make_batch(1, confident=True)
    expected, n_hard, n_min = reference_ohem(logits, labels)
    assert n_hard < n_min
    assert OhemCrossEntropy()(logits, labels).item() == pytest.approx(expected, rel=1e-5)


def test_all_ignore_gives_zero_loss_and_zero_grad():
    logits = torch.randn(2, 4, 6, 5, requires_grad=True)
    labels = torch.full((2, 6, 5), 255, dtype=torch.long)
    loss = OhemCrossEntropy()(logits, labels)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.isfinite(logits.grad).all()
    assert (logits.grad == 0).all()


def test_plain_cross_entropy_is_the_mean_over_valid_pixels():
    logits, labels = make_batch(2, confident=False)
    valid = labels != 255
    summed = torch.nn.functional.cross_entropy(logits.double(), labels, ignore_index=255, reduction="sum")
    expected = summed / valid.sum()
    assert CrossEntropy()(logits, labels).item() == pytest.approx(expected.item(), rel=1e-5)
    assert CrossEntropy()(logits, torch.full_like(labels, 255)).item() == 0.0


def test_the_loss_is_chosen_by_the_config():
    from bisenet.config import load_config

    assert isinstance(build_loss(load_config(None).train, 255), OhemCrossEntropy)
    cross_entropy = build_loss(load_config(None, ["train.loss=cross_entropy"]).train, 7)
    assert isinstance(cross_entropy, CrossEntropy) and cross_entropy.ignore_index == 7
