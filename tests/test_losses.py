import math

import numpy as np
import pytest
import torch

from bisenet.config import load_config
from bisenet.losses import CrossEntropy, OhemCrossEntropy, build_loss


def reference_losses(logits, labels, smoothing=0.0, ignore_index=255):
    """Per valid pixel, in float64: the cross-entropy, and with ``smoothing`` that against the
    target (1 - s) one-hot + s / C: (1 - s) * CE + s * mean over classes of -log p."""
    logits = logits.double().numpy().transpose(0, 2, 3, 1).reshape(-1, logits.shape[1])
    labels = labels.numpy().reshape(-1)
    valid = labels != ignore_index
    logits, labels = logits[valid], labels[valid]
    top = logits.max(axis=1, keepdims=True)
    log_probs = logits - (top + np.log(np.exp(logits - top).sum(axis=1, keepdims=True)))
    losses = -log_probs[np.arange(len(labels)), labels]
    return losses, (1 - smoothing) * losses + smoothing * -log_probs.mean(axis=1)


def reference_ohem(logits, labels, thresh=0.7, ignore_index=255, smoothing=0.0):
    losses, smoothed = reference_losses(logits, labels, smoothing, ignore_index)
    n_min = max(len(losses) // 16, 1)
    # fp32 and float64 losses differ by ~1e-6; a pixel that close to the threshold could be chosen
    # differently on another CPU and move the mean by ~1/n. These batches keep far from it.
    assert np.abs(losses + math.log(thresh)).min() > 1e-4
    hard = losses > -math.log(thresh)  # by the unsmoothed loss, whatever the smoothing
    if hard.sum() < n_min:
        hard = np.argsort(-losses, kind="stable")[:n_min]
        assert losses[hard[-1]] > np.delete(losses, hard).max() + 1e-4  # no near tie at the cut
    return smoothed[hard].mean(), int((losses > -math.log(thresh)).sum()), n_min


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


@pytest.mark.parametrize("seed, confident", [(0, False), (1, True)])
def test_label_smoothed_ohem_chooses_by_the_unsmoothed_loss(seed, confident):
    logits, labels = make_batch(seed, confident)
    expected, n_hard, n_min = reference_ohem(logits, labels, smoothing=0.1)
    assert (n_hard < n_min) == confident  # both ways of choosing the hard pixels
    loss = OhemCrossEntropy(label_smoothing=0.1)(logits, labels).item()
    assert loss == pytest.approx(expected, rel=1e-5)
    # Choosing by the smoothed loss would give another mean: the test tells them apart.
    _, smoothed = reference_losses(logits, labels, 0.1)
    hard = smoothed > -math.log(0.7)
    by_smoothed = smoothed[hard].mean() if hard.sum() >= n_min else np.sort(smoothed)[::-1][:n_min].mean()
    assert abs(by_smoothed - expected) > 1e-3 * expected


def test_label_smoothed_ohem_never_chooses_an_ignored_pixel():
    # The 4 valid pixels among 60 ignored ones are certain (their cross-entropy is 0 in fp32, like
    # an ignored pixel's), so OHEM takes its minimum share by rank among equal losses: it must be
    # a valid pixel, whose smoothed loss is 0.1 * (mean over 4 classes of -log p) = 0.1 * 3/4 * 100.
    labels = torch.full((1, 8, 8), 255)
    labels[0, -1, -4:] = 0
    logits = 100 * torch.nn.functional.one_hot(labels.clamp(max=3), 4).permute(0, 3, 1, 2).float()
    assert OhemCrossEntropy()(logits, labels).item() == 0.0
    assert OhemCrossEntropy(label_smoothing=0.1)(logits, labels).item() == pytest.approx(7.5, rel=1e-6)


def test_label_smoothed_cross_entropy_is_the_mean_over_valid_pixels():
    logits, labels = make_batch(2, confident=False)
    _, smoothed = reference_losses(logits, labels, 0.2)
    assert CrossEntropy(label_smoothing=0.2)(logits, labels).item() == pytest.approx(smoothed.mean(), rel=1e-5)
    assert build_loss(load_config(None, ["train.loss=cross_entropy", "train.label_smoothing=0.2"]).train,
                      255)(logits, labels).item() == pytest.approx(smoothed.mean(), rel=1e-5)


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
    assert isinstance(build_loss(load_config(None).train, 255), OhemCrossEntropy)
    cross_entropy = build_loss(load_config(None, ["train.loss=cross_entropy"]).train, 7)
    assert isinstance(cross_entropy, CrossEntropy) and cross_entropy.ignore_index == 7
    assert build_loss(load_config(None, ["train.label_smoothing=0.1"]).train, 255).label_smoothing == 0.1
