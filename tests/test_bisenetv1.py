import json
import os

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from bisenet.models.bisenetv1 import BiSeNetV1

from conftest import REFERENCE

LISTING = os.path.join(REFERENCE, "coincheung_bisenetv1_state_dict.json")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return BiSeNetV1(num_classes=19)


def test_state_dict_matches_reference_listing(model):
    with open(LISTING) as f:
        listing = json.load(f)
    ours = [[name, list(tensor.shape)] for name, tensor in model.state_dict().items()]
    assert len(listing) == 222
    assert sorted(ours) == sorted(listing)


def test_parameter_counts(model):
    total = sum(p.numel() for p in model.parameters())
    aux = sum(p.numel() for name, p in model.named_parameters() if name.startswith(model.aux_head_modules))
    assert total == 13_425_721
    assert total - aux == 13_275_539


@pytest.mark.parametrize("size", [(64, 128), (65, 97), (100, 200)])
def test_output_shapes_train_and_eval(model, size):
    x = torch.randn(2, 3, *size)
    model.train()
    outputs = model(x)
    assert isinstance(outputs, tuple) and len(outputs) == 3
    for out in outputs:
        assert out.shape == (2, 19, *size)
    model.eval()
    with torch.no_grad():
        out = model(x)
    assert torch.is_tensor(out) and out.shape == (2, 19, *size)


def test_reference_crash_size_500x1000(model):
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 500, 1000)).shape == (1, 19, 500, 1000)


def test_every_parameter_gets_a_gradient(model):
    model.train()
    model.zero_grad()
    outputs = model(torch.randn(2, 3, 64, 64))
    sum(out.square().mean() for out in outputs).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()
               or p.grad.abs().sum() == 0]
    assert missing == []


def _reference_forward(m, x):
    """The reference implementation's forward, with its fixed-factor resizes (valid only for
    inputs divisible by 32): an independent check of our size-driven resizes."""
    up2 = nn.Upsample(scale_factor=2.0)
    feat8, feat16, feat32 = m.cp.resnet(x)
    avg = m.cp.conv_avg(torch.mean(feat32, dim=(2, 3), keepdim=True))
    feat32_up = m.cp.conv_head32(up2(m.cp.arm32(feat32) + avg))
    feat16_up = m.cp.conv_head16(up2(m.cp.arm16(feat16) + feat32_up))
    fused = m.ffm(m.sp(x), feat16_up)
    head = m.conv_out
    logits = head.conv_out(head.conv(fused))
    return F.interpolate(logits, scale_factor=8.0, mode="bilinear", align_corners=False)


def test_matches_reference_forward_on_multiples_of_32(model):
    model.eval()
    x = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        # Random BN statistics so that every layer matters.
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
        # The same kernels on the same values in the same order: equal to the bit on any CPU.
        assert torch.equal(model(x), _reference_forward(model, x))
