"""The one prediction path: scales, horizontal flip and sliding crops, used by evaluation and
the demo, under one of two protocols (``eval.protocol``); and ``load_model``, the model of a
config ready for it (weights loaded, optionally in its deployment form).

``"coincheung"`` is the evaluator of the reference implementation (CoinCheung/BiSeNet,
``tools/evaluate.py``: ``MscEvalV0`` for whole images, ``MscEvalCrop`` for sliding crops),
operation for operation, so that its weights give its published table pixel for pixel:

- whole images: each scale's size is ``int(scale * H)``, ``int(scale * W)`` rounded up to a
  multiple of 32; the image is resized to it and the logits back to the label size, both
  bilinear with ``align_corners=True``; the softmax of each pass (flipped passes flipped back
  before the resize) is summed;
- sliding crops: each scale's size is ``int(H * scale)``, ``int(W * scale)`` (not rounded); an
  image not larger than the crop in both sides is zero-padded, centred, to at least the crop;
  windows step by ``ceil(crop * 2/3)``; each window's softmax is summed into the canvas (no
  division by the overlap); with flip a window's value is
  ``exp(softmax(window) + flipped-back softmax(flipped window))``.

``"standard"`` is ours: no rounding of sizes (any size works with our models), resizes with
``align_corners=False`` (the half-pixel geometry of the training resizes), sliding windows
averaged by how many cover each pixel (so the result does not depend on the overlap), and a
flipped pass weighted like an unflipped one everywhere.
"""
import math
import numbers
import re

import torch
import torch.nn.functional as F

from bisenet.checkpoint import load_weights
from bisenet.data.calibration import calibration_inputs
from bisenet.deploy.runtime import make_fast
from bisenet.errors import UserError
from bisenet.models import build_model

PROTOCOLS = ("coincheung", "standard")
MODE_PATTERN = re.compile(r"^(ss|ms)(c?)(f?)$")


def parse_mode(name):
    """A mode name of the reference's table -> ``(multi_scale, crop, flip)``: ss, ssc, msf,
    mscf and the other combinations (ssf, ms, msc, sscf)."""
    match = MODE_PATTERN.match(name)
    if not match:
        raise UserError(f"unknown evaluation mode {name!r}: a mode is ss or ms (single or multi-scale), then c "
                         "for sliding crops, then f for flip, e.g. ss, ssc, msf, mscf")
    return match.group(1) == "ms", bool(match.group(2)), bool(match.group(3))


@torch.no_grad()
def predict_probs(model, images, num_classes, out_size=None, scales=(1.0,), flip=False,
                  crop_size=None, crop_stride=None, protocol="standard", short_side=0):
    """Class scores summed over scales (and flips), at ``out_size`` (default: the input size).

    ``images`` is a normalised Nx3xHxW batch on the model's device; ``model`` must be in eval
    mode. ``crop_size`` (h, w) predicts in sliding windows, ``crop_stride`` (h, w) overrides
    their step (at most the crop: see ``crop_stride_of``). ``short_side`` first resizes the
    images so that their short side has that many pixels (``resize_short_side``); scales, crops
    and flips then apply to the resized images.
    The scores are softmax probabilities summed (``"coincheung"`` crops with flip: sums of their
    exponentials); their argmax is the prediction.
    """
    check_scales(scales)
    if crop_size is not None:
        crop_stride = crop_stride_of(crop_size, crop_stride)
    out_size = tuple(out_size or images.shape[-2:])
    if short_side:
        images = resize_short_side(images, short_side)
    if protocol == "coincheung":
        if crop_size is None:
            return _coincheung_whole(model, images, num_classes, out_size, scales, flip)
        return _coincheung_crops(model, images, num_classes, out_size, scales, flip, crop_size, crop_stride)
    if protocol != "standard":
        raise UserError(f"unknown evaluation protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    return _standard(model, images, num_classes, out_size, scales, flip, crop_size, crop_stride)


def check_scales(scales):
    """Refuse an empty list of scales or one that is not a positive number."""
    if not scales or not all(isinstance(s, numbers.Real) and math.isfinite(s) and s > 0 for s in scales):
        raise UserError(f"scales must be one or more positive numbers, got {list(scales)}")
    return tuple(scales)


def crop_stride_of(crop_size, crop_stride=None):
    """The step of the sliding windows of ``crop_size`` (h, w): ``crop_stride``, or 2/3 of the crop
    (the reference's default). Refuses a stride larger than the crop, which would leave pixels
    that no window covers (scored as class 0 in one protocol, NaN in the other)."""
    crop_size = tuple(crop_size)
    if len(crop_size) != 2 or not all(_is_int(c) and c >= 1 for c in crop_size):
        raise UserError(f"crop size must be two positive integers (height, width), got {list(crop_size)}")
    if crop_stride is None:
        return tuple(math.ceil(side * 2 / 3) for side in crop_size)
    crop_stride = tuple(crop_stride)
    if len(crop_stride) != 2 or not all(_is_int(s) and 1 <= s <= c for s, c in zip(crop_stride, crop_size)):
        raise UserError(f"crop stride {list(crop_stride)} must be between 1 and the crop size {list(crop_size)} in "
                        "each dimension: a larger step leaves pixels that no window covers")
    return crop_stride


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def short_side_size(height, width, short_side):
    """(h, w) with the short side ``short_side`` and the aspect ratio kept, computed as the
    reference's SizePreprocessor does (``int(short / h * w)``: truncated, in that order of
    operations, so that sizes match it to the pixel)."""
    if height < width:
        return short_side, int(short_side / height * width)
    return int(short_side / width * height), short_side


def resize_short_side(images, short_side):
    """Bilinear (half-pixel, ``align_corners=False``) resize of an NxCxHxW batch to
    ``short_side_size``; every image of the batch has the same size."""
    size = short_side_size(*images.shape[-2:], short_side)
    return F.interpolate(images, size=size, mode="bilinear", align_corners=False)


def load_model(cfg, weights, device="cpu", fast=False, precision="auto", calib_images=32):
    """The model of ``cfg`` in eval mode on ``device``, with ``weights`` (a checkpoint path or a
    state dict, e.g. ``read_state_dict(path, ema=True)``; None keeps the random initialisation,
    for timing); with ``fast`` or a ``precision`` other than "auto", its fastest inference form
    (``bisenet.deploy.runtime.make_fast``: folded BN, onnxruntime on the CPU, fp16 on CUDA).
    int8 is calibrated on ``calib_images`` images of the config's training split."""
    model = build_model(cfg)
    if weights is not None:
        load_weights(model, weights)
    model.to(device).eval()
    if fast or precision != "auto":
        calibration = calibration_inputs(cfg, calib_images) if precision == "int8" else None
        model = make_fast(model, device, precision, calibration)
    return model


def predict(model, images, num_classes, **kwargs):
    """Class map (N x H x W, int64) from ``predict_probs``."""
    # max(dim).indices: the same first-maximum index as argmax, several times faster on CPU
    # for a reduction over channels.
    return predict_probs(model, images, num_classes, **kwargs).max(dim=1).indices


def _standard(model, images, num_classes, out_size, scales, flip, crop_size, crop_stride):
    height, width = images.shape[-2:]
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
            logits = model(x) if crop_size is None else sliding_logits(model, x, crop_size, crop_stride)
            if tuple(logits.shape[-2:]) != out_size:
                logits = F.interpolate(logits, size=out_size, mode="bilinear", align_corners=False)
            target += torch.softmax(logits.float(), dim=1)
    if flip:
        probs += flipped_probs.flip(-1)
    return probs


def sliding_logits(model, x, crop_size, crop_stride=None):
    """Logits from windows of ``crop_size`` (h, w) tiling ``x`` with ``crop_stride`` (default 2/3
    of the crop); each pixel's logits are the mean over the windows that cover it."""
    crop_h, crop_w = crop_size
    stride_h, stride_w = crop_stride_of(crop_size, crop_stride)
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


def _resize_aligned(x, size):
    # A bilinear resize to the same size with align_corners=True is the identity, exactly.
    size = tuple(size)
    return x if tuple(x.shape[-2:]) == size else F.interpolate(x, size=size, mode="bilinear", align_corners=True)


def _coincheung_whole(model, images, num_classes, out_size, scales, flip):
    height, width = images.shape[-2:]
    probs = torch.zeros((images.shape[0], num_classes, *out_size), dtype=torch.float32, device=images.device)
    for scale in scales:
        size = [math.ceil(int(scale * side) / 32) * 32 for side in (height, width)]
        scaled = _resize_aligned(images, size)
        probs += torch.softmax(_resize_aligned(model(scaled).float(), out_size), dim=1)
        if flip:
            logits = model(scaled.flip(-1)).float().flip(-1)
            probs += torch.softmax(_resize_aligned(logits, out_size), dim=1)
    return probs


def _coincheung_crops(model, images, num_classes, out_size, scales, flip, crop_size, crop_stride):
    height, width = images.shape[-2:]
    probs = torch.zeros((images.shape[0], num_classes, *out_size), dtype=torch.float32, device=images.device)
    for scale in scales:
        scaled = _resize_aligned(images, (int(height * scale), int(width * scale)))
        probs += _resize_aligned(_coincheung_windows(model, scaled, num_classes, flip, crop_size, crop_stride),
                                 out_size)
    return probs


def _coincheung_windows(model, x, num_classes, flip, crop_size, crop_stride):
    crop_h, crop_w = crop_size
    batch, channels, height, width = x.shape
    top, left = 0, 0
    if not (crop_h < height and crop_w < width):
        padded_h, padded_w = max(crop_h, height), max(crop_w, width)
        top, left = (padded_h - height) // 2, (padded_w - width) // 2
        canvas = torch.zeros((batch, channels, padded_h, padded_w), dtype=x.dtype, device=x.device)
        canvas[:, :, top:top + height, left:left + width] = x
        x = canvas
    padded_h, padded_w = x.shape[-2:]
    stride_h, stride_w = crop_stride_of(crop_size, crop_stride)
    probs = torch.zeros((batch, num_classes, padded_h, padded_w), dtype=torch.float32, device=x.device)
    for i in range(math.ceil((padded_h - crop_h) / stride_h) + 1):
        for j in range(math.ceil((padded_w - crop_w) / stride_w) + 1):
            bottom, right = min(padded_h, stride_h * i + crop_h), min(padded_w, stride_w * j + crop_w)
            window = (slice(None), slice(None), slice(bottom - crop_h, bottom), slice(right - crop_w, right))
            tile = torch.softmax(model(x[window]).float(), dim=1)
            if flip:
                tile += torch.softmax(model(x[window].flip(-1)).float().flip(-1), dim=1)
                tile = torch.exp(tile)
            probs[window] += tile
    return probs[:, :, top:top + height, left:left + width]
