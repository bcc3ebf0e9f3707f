"""Paired image + label transforms on numpy arrays (HxWx3 uint8 RGB image, HxW uint8 label).

Every random transform draws from the ``rng`` (a ``numpy.random.Generator``) it is given, so a
sample's augmentation is reproducible from its seed.
"""
import cv2
import numpy as np
import torch


class Compose:
    def __init__(self, transforms):
        self.transforms = transforms

    def __call__(self, image, label, rng=None):
        rng = np.random.default_rng() if rng is None else rng
        for transform in self.transforms:
            image, label = transform(image, label, rng)
        return image, label


class RandomScale:
    def __init__(self, scale_range):
        self.low, self.high = scale_range

    def __call__(self, image, label, rng):
        scale = rng.uniform(self.low, self.high)
        height, width = label.shape
        size = (max(1, round(width * scale)), max(1, round(height * scale)))  # cv2 wants (w, h)
        image = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
        # Plain INTER_NEAREST samples a grid shifted half a pixel from INTER_LINEAR's; the exact
        # variant keeps label and image aligned.
        label = cv2.resize(label, size, interpolation=cv2.INTER_NEAREST_EXACT)
        return image, label


def pad_for_crop(image, label, crop_size, ignore_index=255):
    """Pads each side shorter than the crop by ``(crop - size) // 2 + 1`` at both ends, as the
    reference implementation (CoinCheung/BiSeNet) does: the image (0) stays centred, the label
    padding is ``ignore_index`` so it never counts as a class. Larger sides are left alone."""
    height, width = label.shape
    crop_height, crop_width = crop_size
    pad_h = (crop_height - height) // 2 + 1 if height < crop_height else 0
    pad_w = (crop_width - width) // 2 + 1 if width < crop_width else 0
    if pad_h or pad_w:
        image = cv2.copyMakeBorder(image, pad_h, pad_h, pad_w, pad_w, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        label = cv2.copyMakeBorder(label, pad_h, pad_h, pad_w, pad_w, cv2.BORDER_CONSTANT, value=ignore_index)
    return image, label


class RandomCrop:
    """Crops ``crop_size`` (h, w) at a uniformly random place, after ``pad_for_crop``."""

    def __init__(self, crop_size, ignore_index=255):
        self.crop_size = tuple(crop_size)
        self.ignore_index = ignore_index

    def __call__(self, image, label, rng):
        image, label = pad_for_crop(image, label, self.crop_size, self.ignore_index)
        crop_height, crop_width = self.crop_size
        height, width = label.shape
        top = int(rng.integers(0, height - crop_height + 1))
        left = int(rng.integers(0, width - crop_width + 1))
        window = (slice(top, top + crop_height), slice(left, left + crop_width))
        return image[window], label[window]


class RandomHorizontalFlip:
    """Flips with probability ``prob`` (the chance of flipping, not of keeping)."""

    def __init__(self, prob=0.5):
        self.prob = prob

    def __call__(self, image, label, rng):
        if rng.random() < self.prob:
            return image[:, ::-1], label[:, ::-1]
        return image, label


class ColorJitter:
    """Brightness, contrast and saturation, each scaled by a factor in [1 - s, 1 + s], in a
    random order, as torchvision's ColorJitter does. Works on uint8 with cv2's saturating
    arithmetic: about 4x faster than float32 numpy at 1024x1024."""

    def __init__(self, brightness=0.4, contrast=0.4, saturation=0.4):
        self.strengths = (brightness, contrast, saturation)

    def __call__(self, image, label, rng):
        factors = [rng.uniform(max(0.0, 1 - s), 1 + s) if s > 0 else 1.0 for s in self.strengths]
        image = np.ascontiguousarray(image)
        for which in rng.permutation(3):
            factor = factors[which]
            if factor == 1.0:
                continue
            if which == 0:  # brightness: x * f
                image = cv2.addWeighted(image, factor, image, 0, 0)
            elif which == 1:  # contrast: blend with the mean grey level
                mean = float(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).mean())
                image = cv2.addWeighted(image, factor, image, 0, (1 - factor) * mean)
            else:  # saturation: blend with the grey image
                gray = cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
                image = cv2.addWeighted(image, factor, gray, 1 - factor, 0)
        return image, label


class Normalize:
    """[0, 255] RGB -> (x / 255 - mean) / std as a CxHxW float tensor; label -> int64 tensor."""

    def __init__(self, mean, std):
        self.mean = np.asarray(mean, dtype=np.float32) * 255
        self.std = np.asarray(std, dtype=np.float32) * 255

    def __call__(self, image, label, rng=None):
        height, width = image.shape[:2]
        out = np.empty((3, height, width), dtype=np.float32)
        # Channel planes straight into the CHW buffer, then in-place arithmetic: no HWC float
        # copy and no transpose (5x faster than the obvious numpy expression).
        for channel, plane in enumerate(cv2.split(np.ascontiguousarray(image))):
            out[channel] = plane
        out -= self.mean.reshape(3, 1, 1)
        out /= self.std.reshape(3, 1, 1)
        return torch.from_numpy(out), torch.from_numpy(np.ascontiguousarray(label)).long()


def build_train_transform(data_cfg):
    return Compose([
        RandomScale(data_cfg.scale_range),
        RandomCrop(data_cfg.crop_size, data_cfg.ignore_index),
        RandomHorizontalFlip(data_cfg.flip_prob),
        ColorJitter(data_cfg.color_jitter, data_cfg.color_jitter, data_cfg.color_jitter),
        Normalize(data_cfg.mean, data_cfg.std),
    ])


def build_eval_transform(data_cfg):
    return Compose([Normalize(data_cfg.mean, data_cfg.std)])
