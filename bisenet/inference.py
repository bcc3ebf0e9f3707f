"""The one prediction path: scales, horizontal flip and sliding crops, used by evaluation and
the demo."""
import math

import torch
import torch.nn.functional as F


@torch.no_grad()
def predict_probs(model, images, num_classes, out_size=None, scales=(1.0,), flip=False,
                  crop_size=None, crop_stride=None):
    """Softmax probabilities summed over scales (and flips), at ``out_size`` (default: input).

    ``images`` is a normalised Nx3xHxW batch on the model's device; ``model`` must be in eval
    mode. Each scale resizes the image, predicts (whole or in sliding ``crop_size`` windows),
    resizes the logits to ``out_size`` and adds their softmax into one buffer.
    """
    height, width = images.shape[-2:]
    out_size = tuple(out_size or (height, width))
    shape = (images.shape[0], num_classes, *out_size)
    probs = torch.zeros(shape, dtype=torch.float32, device=images.device)
    # Flipped passes accumulate unflipped in their own buffer, flipped back once at the end:
    # one flip per image instead of one per scale.
    flipped_probs = torch.zeros(shape, dtype=torch.float32, device=images.device) if flip else None
    for scale in scales:
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        scaled = images if size == (height, width) else F.interpolate(
            images, size=size, mode="bilinear", align_corners=False)
        for x, target in ((scaled, probs), (scaled.flip(-1), flipped_probs))[: 2 if flip else 1]:
            logits = _logits(model, x, crop_size, crop_stride)
            if tuple(logits.shape[-2:]) != out_size:
                logits = F.interpolate(logits, size=out_size, mode="bilinear", align_corners=False)
            target += torch.softmax(logits.float(), dim=1)
    if flip:
        probs += flipped_probs.flip(-1)
    return probs


def predict(model, images, num_classes, **kwargs):
    """Class map (N x H x W, int64) from ``predict_probs``."""
    # max(dim).indices: the same first-maximum index as argmax, several times faster on CPU
    # for a reduction over channels.
    return predict_probs(model, images, num_classes, **kwargs).max(dim=1).indices


def _logits(model, x, crop_size, crop_stride):
    if crop_size is None:
        return model(x)
    return sliding_logits(model, x, crop_size, crop_stride)


def sliding_logits(model, x, crop_size, crop_stride=None):
    """Logits from windows of ``crop_size`` (h, w) tiling ``x`` with ``crop_stride`` (default 2/3
    of the crop); each pixel's logits are the mean over the windows that cover it."""
    crop_h, crop_w = crop_size
    stride_h, stride_w = crop_stride or (max(1, math.ceil(crop_h * 2 / 3)), max(1, math.ceil(crop_w * 2 / 3)))
    height, width = x.shape[-2:]
    pad_h, pad_w = max(crop_h - height, 0), max(crop_w - width, 0)
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h))  # zero = the mean colour after normalisation
    padded_h, padded_w = x.shape[-2:]
    tops = _window_starts(padded_h, crop_h, stride_h)
    lefts = _window_starts(padded_w, crop_w, stride_w)
    total = None
    count = torch.zeros((1, 1, padded_h, padded_w), dtype=torch.float32, device=x.device)
    for top in tops:
        for left in lefts:
            window = (Ellipsis, slice(top, top + crop_h), slice(left, left + crop_w))
            logits = model(x[window]).float()
            if total is None:
                total = torch.zeros((x.shape[0], logits.shape[1], padded_h, padded_w),
                                    dtype=torch.float32, device=x.device)
            total[window] += logits
            count[window] += 1
    return (total / count)[..., :height, :width]


def _window_starts(length, crop, stride):
    """Window offsets from 0 that end exactly at ``length`` (the last one is moved back)."""
    steps = max(math.ceil((length - crop) / stride), 0) + 1
    return sorted({min(i * stride, length - crop) for i in range(steps)})
