"""The prediction path: our protocol's contracts, and the reference's protocol checked pixel for
pixel against a literal re-implementation of CoinCheung/BiSeNet's evaluator."""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from bisenet.errors import UserError
from bisenet.inference import predict, predict_probs, sliding_logits


class Conv(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 5, 3, padding=1)

    def forward(self, x):
        return self.conv(x)


def test_sliding_crop_of_image_size_equals_whole_image():
    model = Conv().eval()
    x = torch.randn(1, 3, 40, 56)
    assert torch.allclose(sliding_logits(model, x, (40, 56)), model(x))


def test_overlapping_windows_are_averaged():
    class Constant(nn.Module):
        def forward(self, x):
            return torch.ones(x.shape[0], 2, *x.shape[-2:]) * torch.tensor([1.0, 3.0]).view(1, 2, 1, 1)

    logits = sliding_logits(Constant(), torch.zeros(1, 3, 50, 70), (32, 32), (10, 10))
    assert torch.allclose(logits[:, 0], torch.ones(1, 50, 70))
    assert torch.allclose(logits[:, 1], torch.full((1, 50, 70), 3.0))


def test_flip_restores_orientation():
    # A per-pixel model commutes with flipping, so flipped-and-restored probabilities must equal
    # the plain ones; on an asymmetric image, forgetting to flip back breaks this.
    torch.manual_seed(0)
    model = nn.Conv2d(3, 4, 1).eval()
    x = torch.linspace(-3, 3, 3 * 6 * 10).view(1, 3, 6, 10) ** 3
    plain = predict_probs(model, x, 4)
    assert torch.allclose(predict_probs(model, x, 4, flip=True), 2 * plain, atol=1e-6)
    assert not torch.allclose(plain, plain.flip(-1), atol=1e-3)


@pytest.mark.parametrize("size", [(37, 53), (64, 64)])
def test_predict_any_size(size):
    pred = predict(Conv().eval(), torch.randn(1, 3, *size), 5, scales=(0.5, 1.0, 1.5), flip=True, crop_size=(24, 24))
    assert pred.shape == (1, *size)


def test_predict_takes_the_first_maximum_like_argmax():
    class Ties(nn.Module):
        def forward(self, x):
            logits = torch.zeros(x.shape[0], 4, *x.shape[-2:])
            logits[:, 2:, :, : x.shape[-1] // 2] = 1.0  # classes 2 and 3 tie on the left half
            return logits

    x = torch.zeros(1, 3, 4, 6)
    pred = predict(Ties(), x, 4)
    assert torch.equal(pred, predict_probs(Ties(), x, 4).argmax(1))
    assert pred[0, 0].tolist() == [2, 2, 2, 0, 0, 0]


# --- The reference's protocol, written out literally from CoinCheung/BiSeNet's tools/evaluate.py
# (MscEvalV0 and MscEvalCrop), for tensors on one device and a model returning its logits.

def reference_whole(net, imgs, n_classes, size, scales, flip):
    N, _, H, W = imgs.shape
    probs = torch.zeros((N, n_classes, *size), dtype=torch.float32)
    for scale in scales:
        sH, sW = int(scale * H), int(scale * W)
        sH, sW = [math.ceil(el / 32) * 32 for el in (sH, sW)]
        im_sc = F.interpolate(imgs, size=(sH, sW), mode="bilinear", align_corners=True)
        logits = net(im_sc)
        logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=True)
        probs += torch.softmax(logits, dim=1)
        if flip:
            im_sc = torch.flip(im_sc, dims=(3,))
            logits = net(im_sc)
            logits = torch.flip(logits, dims=(3,))
            logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=True)
            probs += torch.softmax(logits, dim=1)
    return probs


def reference_crops(net, imgs, n_classes, size, scales, flip, cropsize):
    def pad_tensor(inten):
        N, C, H, W = inten.size()
        cropH, cropW = cropsize
        if cropH < H and cropW < W:
            return inten, [0, H, 0, W]
        padH, padW = max(cropH, H), max(cropW, W)
        outten = torch.zeros(N, C, padH, padW)
        marginH, marginW = padH - H, padW - W
        hst, hed = marginH // 2, marginH // 2 + H
        wst, wed = marginW // 2, marginW // 2 + W
        outten[:, :, hst:hed, wst:wed] = inten
        return outten, [hst, hed, wst, wed]

    def eval_chip(crop):
        prob = net(crop).softmax(dim=1)
        if flip:
            crop = torch.flip(crop, dims=(3,))
            prob += net(crop).flip(dims=(3,)).softmax(dim=1)
            prob = torch.exp(prob)
        return prob

    def crop_eval(im):
        cropH, cropW = cropsize
        im, indices = pad_tensor(im)
        N, C, H, W = im.size()
        strdH, strdW = math.ceil(cropH * (2.0 / 3)), math.ceil(cropW * (2.0 / 3))
        n_h = math.ceil((H - cropH) / strdH) + 1
        n_w = math.ceil((W - cropW) / strdW) + 1
        prob = torch.zeros(N, n_classes, H, W)
        for i in range(n_h):
            for j in range(n_w):
                stH, stW = strdH * i, strdW * j
                endH, endW = min(H, stH + cropH), min(W, stW + cropW)
                stH, stW = endH - cropH, endW - cropW
                chip = im[:, :, stH:endH, stW:endW]
                prob[:, :, stH:endH, stW:endW] += eval_chip(chip)
        hst, hed, wst, wed = indices
        return prob[:, :, hst:hed, wst:wed]

    N, C, H, W = imgs.size()
    probs = torch.zeros((N, n_classes, *size))
    for sc in scales:
        new_hw = [int(H * sc), int(W * sc)]
        im = F.interpolate(imgs, new_hw, mode="bilinear", align_corners=True)
        prob = crop_eval(im)
        probs += F.interpolate(prob, size, mode="bilinear", align_corners=True)
    return probs


class SmallSegmenter(nn.Module):
    """Random weights, stride 4 and a bilinear head like BiSeNet's: any input size."""

    def __init__(self, num_classes=5):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.ReLU(),
                                  nn.Conv2d(8, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, num_classes, 1))
        nn.init.normal_(self.body[-1].weight, std=2.0)

    def forward(self, x):
        return F.interpolate(self.body(x), size=x.shape[-2:], mode="bilinear", align_corners=False)


SCALES = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)


@pytest.mark.parametrize("size", [(75, 131), (64, 128), (33, 47)])
@pytest.mark.parametrize("mode", ["ss", "ssc", "msf", "mscf", "ssf", "ms"])
def test_coincheung_protocol_equals_the_reference_pixel_for_pixel(size, mode):
    model = SmallSegmenter().eval()
    images = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(1))
    scales = SCALES if mode.startswith("ms") else (1.0,)
    flip, crop = mode.endswith("f"), (64, 96) if "c" in mode else None
    with torch.no_grad():
        if crop:  # at 0.5 every image here is smaller than the crop: centred padding
            expected = reference_crops(model, images, 5, size, scales, flip, crop)
        else:
            expected = reference_whole(model, images, 5, size, scales, flip)
    got = predict_probs(model, images, 5, scales=scales, flip=flip, crop_size=crop, protocol="coincheung")
    assert got.shape == expected.shape
    assert int((got.argmax(1) != expected.argmax(1)).sum()) == 0
    assert torch.equal(got, expected)  # the same operations in the same order


def test_coincheung_ss_rounds_sizes_up_to_a_multiple_of_32():
    seen = []

    class Recorder(nn.Module):
        def forward(self, x):
            seen.append(tuple(x.shape[-2:]))
            return torch.zeros(x.shape[0], 3, *x.shape[-2:])

    predict_probs(Recorder(), torch.zeros(1, 3, 75, 131), 3, protocol="coincheung")
    predict_probs(Recorder(), torch.zeros(1, 3, 75, 131), 3, scales=(0.5,), protocol="coincheung")
    predict_probs(Recorder(), torch.zeros(1, 3, 75, 131), 3, scales=(0.5,), crop_size=(64, 96), protocol="coincheung")
    predict_probs(Recorder(), torch.zeros(1, 3, 75, 131), 3, protocol="standard")
    # 75x131 -> 96x160; at 0.5 int(37.5), int(65.5) -> 64x96; crops take 64x96 windows of the
    # padded 37x65 image; ours keeps the size.
    assert seen == [(96, 160), (64, 96), (64, 96), (75, 131)]


def test_unknown_protocol_is_refused():
    with pytest.raises(UserError, match="coincheung"):
        predict_probs(SmallSegmenter().eval(), torch.zeros(1, 3, 8, 8), 5, protocol="mmseg")


@pytest.mark.parametrize("protocol", ["coincheung", "standard"])
def test_a_stride_larger_than_the_crop_is_refused_in_both_protocols(protocol):
    # Windows of 16 pixels every 24 would leave 8-pixel stripes that no window covers.
    images = torch.randn(1, 3, 40, 56)
    for stride in ((24, 8), (8, 24), (0, 8)):
        with pytest.raises(UserError, match=r"crop stride \[\d+, \d+\] must be between 1 and the crop size "
                                            r"\[16, 16\]"):
            predict_probs(Conv().eval(), images, 5, crop_size=(16, 16), crop_stride=stride, protocol=protocol)
    # A stride of the crop itself covers every pixel once.
    assert predict_probs(Conv().eval(), images, 5, crop_size=(16, 16), crop_stride=(16, 16),
                         protocol=protocol).shape == (1, 5, 40, 56)


@pytest.mark.parametrize("scales", [(0.0,), (1.0, -0.5), ()])
def test_scales_that_are_not_positive_are_refused(scales):
    with pytest.raises(UserError, match="scales must be one or more positive numbers"):
        predict_probs(Conv().eval(), torch.randn(1, 3, 8, 8), 5, scales=scales)


def reference_short_side_size(h, w, shortside):
    ss = shortside
    if h < w:
        h, w = ss, int(ss / h * w)
    else:
        h, w = int(ss / w * h), ss
    return h, w


def reference_size_preprocessor(imgs, shortside):
    """CoinCheung/BiSeNet's SizePreprocessor with only ``shortside`` set (eval_start_shortside,
    its ADE20K configs), written out literally."""
    h, w = reference_short_side_size(*imgs.size()[2:], shortside)
    return F.interpolate(imgs, size=(h, w), mode="bilinear", align_corners=False)


@pytest.mark.parametrize("size", [(75, 131), (131, 75), (50, 50), (97, 96)])
@pytest.mark.parametrize("mode", ["ss", "ssc", "msf", "mscf"])
def test_short_side_evaluation_equals_the_reference(size, mode):
    # The reference resizes the normalised batch to the short side first, then runs its
    # evaluator on the result and scores at the label's (the original) size.
    model = SmallSegmenter().eval()
    images = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(2))
    scales = SCALES if mode.startswith("ms") else (1.0,)
    flip, crop = mode.endswith("f"), (64, 64) if "c" in mode else None
    with torch.no_grad():
        resized = reference_size_preprocessor(images, 72)
        if crop:
            expected = reference_crops(model, resized, 5, size, scales, flip, crop)
        else:
            expected = reference_whole(model, resized, 5, size, scales, flip)
    got = predict_probs(model, images, 5, scales=scales, flip=flip, crop_size=crop, protocol="coincheung",
                        short_side=72)
    assert got.shape == (1, 5, *size)
    assert torch.equal(got, expected)


def test_short_side_sizes_are_the_references_to_the_pixel():
    from bisenet.inference import short_side_size

    for height in range(1, 2000, 7):
        for width in range(1, 2000, 11):
            for short in (512, 640):
                assert short_side_size(height, width, short) == reference_short_side_size(height, width, short)
