import numpy as np
import pytest
import torch

from bisenet.config import DataConfig
from bisenet.data.transforms import (
    Normalize,
    RandomCrop,
    RandomHorizontalFlip,
    RandomScale,
    build_train_transform,
    pad_for_crop,
)


def blocks(height=48, width=96, block=12, seed=0):
    values = np.random.default_rng(seed).permutation(200)[: (height // block) * (width // block)]
    label = np.kron(values.reshape(height // block, width // block), np.ones((block, block)))
    label = label.astype(np.uint8)
    return np.repeat(label[..., None], 3, axis=2), label


def assert_aligned(image, label, mask=None):
    mask = np.ones(label.shape, bool) if mask is None else mask
    assert image.shape == label.shape + (3,)
    for c in range(3):
        np.testing.assert_array_equal(image[..., c][mask], label[mask])


@pytest.mark.parametrize("crop", [(32, 40), (48, 96), (50, 30)])
def test_random_crop_keeps_alignment(crop):
    image, label = blocks()
    for seed in range(5):
        out_image, out_label = RandomCrop(crop)(image, label, np.random.default_rng(seed))
        assert out_label.shape == crop
        valid = out_label != 255
        assert_aligned(out_image, out_label, valid)
        assert (out_image[~valid] == 0).all()
        padded = reference_pad(image, label, crop)[1]
        assert any((out_label == padded[top:top + crop[0], left:left + crop[1]]).all()
                   for top in range(padded.shape[0] - crop[0] + 1)
                   for left in range(padded.shape[1] - crop[1] + 1))


def reference_pad(image, label, crop_size, ignore_index=255):
    """CoinCheung/BiSeNet's RandomResizedCrop padding, written out from its description."""
    pad_h = (crop_size[0] - label.shape[0]) // 2 + 1 if label.shape[0] < crop_size[0] else 0
    pad_w = (crop_size[1] - label.shape[1]) // 2 + 1 if label.shape[1] < crop_size[1] else 0
    if pad_h > 0 or pad_w > 0:
        image = np.pad(image, ((pad_h, pad_h), (pad_w, pad_w), (0, 0)))
        label = np.pad(label, ((pad_h, pad_h), (pad_w, pad_w)), "constant", constant_values=ignore_index)
    return image, label


@pytest.mark.parametrize("crop", [(60, 112), (61, 113), (60, 50), (30, 112), (48, 96), (20, 30)])
def test_padding_is_the_references(crop):
    image, label = blocks()
    expected_image, expected_label = reference_pad(image, label, crop)
    got_image, got_label = pad_for_crop(image, label, crop, 255)
    np.testing.assert_array_equal(got_image, expected_image)
    np.testing.assert_array_equal(got_label, expected_label)


def test_crop_bigger_than_input_is_a_window_of_the_centred_padding():
    image, label = blocks()
    padded_image, padded_label = reference_pad(image, label, (60, 112))
    assert padded_label.shape == (62, 114)  # 48 + 2 * (12 // 2 + 1), 96 + 2 * (16 // 2 + 1)
    offsets = set()
    for seed in range(40):
        out_image, out_label = RandomCrop((60, 112), ignore_index=255)(image, label, np.random.default_rng(seed))
        matches = [(top, left) for top in range(3) for left in range(3)
                   if (padded_label[top:top + 60, left:left + 112] == out_label).all()
                   and (padded_image[top:top + 60, left:left + 112] == out_image).all()]
        assert matches, seed
        offsets.update(matches)
    assert len(offsets) == 9  # every window of the padded image is reachable


def test_flip_keeps_alignment():
    image, label = blocks()
    out_image, out_label = RandomHorizontalFlip(1.0)(image, label, np.random.default_rng(0))
    np.testing.assert_array_equal(out_label, label[:, ::-1])
    assert_aligned(out_image, out_label)


def test_random_scale_keeps_alignment_inside_constant_regions():
    image, label = blocks()
    for seed in range(10):
        out_image, out_label = RandomScale((0.5, 2.0))(image, label, np.random.default_rng(seed))
        assert 0.5 * 48 - 1 <= out_label.shape[0] <= 2.0 * 48 + 1
        assert out_label.shape[0] / 48 == pytest.approx(out_label.shape[1] / 96, abs=0.03)
        h, w = out_label.shape
        windows = np.stack([out_label[dy:h - 2 + dy, dx:w - 2 + dx] for dy in range(3) for dx in range(3)])
        constant = np.zeros((h, w), bool)
        constant[1:-1, 1:-1] = (windows == windows[0]).all(axis=0)
        assert constant.mean() > 0.3
        assert_aligned(out_image, out_label, constant)


def flipped(prob, rng):
    image = np.array([[[1, 1, 1], [2, 2, 2]]], dtype=np.uint8)
    label = np.array([[1, 2]], dtype=np.uint8)
    out_image, out_label = RandomHorizontalFlip(prob)(image, label, rng)
    assert out_image[0, 0, 0] == out_label[0, 0]
    return out_label[0, 0] == 2


def test_flip_probability():
    rng = np.random.default_rng(0)
    assert all(flipped(1.0, rng) for _ in range(100))
    assert not any(flipped(0.0, rng) for _ in range(100))
    flips = sum(flipped(0.5, np.random.default_rng(seed)) for seed in range(1000))
    assert 400 <= flips <= 600


def test_train_pipeline_is_reproducible_from_the_seed():
    transform = build_train_transform(DataConfig(crop_size=(64, 64)))
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (48, 80, 3), dtype=np.uint8)
    label = rng.integers(0, 19, (48, 80), dtype=np.uint8)
    a = transform(image, label, np.random.default_rng(7))
    b = transform(image, label, np.random.default_rng(7))
    c = transform(image, label, np.random.default_rng(8))
    assert a[0].shape == (3, 64, 64) and a[1].shape == (64, 64)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_normalize():
    mean, std = (0.1, 0.5, 0.9), (0.2, 0.3, 0.4)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    label = rng.integers(0, 19, (5, 7), dtype=np.uint8)
    out_image, out_label = Normalize(mean, std)(image, label)
    expected = np.empty((3, 5, 7))
    for c in range(3):
        expected[c] = (image[..., c] / 255.0 - mean[c]) / std[c]
    assert out_image.dtype == torch.float32 and out_image.shape == (3, 5, 7)
    np.testing.assert_allclose(out_image.numpy(), expected, atol=1e-5)
    assert out_label.dtype == torch.int64
    np.testing.assert_array_equal(out_label.numpy(), label)


@pytest.mark.parametrize("which", [0, 1, 2])
def test_color_jitter_matches_the_float_formulas(which):
    from bisenet.data.transforms import ColorJitter

    image = np.random.default_rng(3).integers(0, 256, size=(32, 48, 3), dtype=np.uint8)
    strengths = [0.0, 0.0, 0.0]
    strengths[which] = 0.4
    jitter = ColorJitter(*strengths)
    out, _ = jitter(image, None, np.random.default_rng(5))
    factor = [np.random.default_rng(5).uniform(0.6, 1.4)][0]
    x = image.astype(np.float64)
    gray = x @ np.array([0.299, 0.587, 0.114])
    expected = {0: x * factor,
                1: (x - np.round(gray).mean()) * factor + np.round(gray).mean(),
                2: (x - np.round(gray)[..., None]) * factor + np.round(gray)[..., None]}[which]
    assert np.abs(out.astype(np.float64) - np.clip(expected, 0, 255)).max() <= 1.0
