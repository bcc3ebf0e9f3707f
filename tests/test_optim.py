import pytest
import torch.nn as nn

from bisenet.models.bisenetv1 import BiSeNetV1
from bisenet.optim import param_groups


@pytest.fixture(scope="module")
def model_and_groups():
    model = BiSeNetV1(num_classes=19)
    return model, param_groups(model, base_lr=0.01, weight_decay=5e-4, head_lr_multiplier=10.0)


def group_of(groups):
    owner = {}
    for group in groups:
        for p in group["params"]:
            assert id(p) not in owner, "parameter in two groups"
            owner[id(p)] = group
    return owner


def test_every_parameter_in_exactly_one_group(model_and_groups):
    model, groups = model_and_groups
    owner = group_of(groups)
    assert set(owner) == {id(p) for p in model.parameters()}
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_heads_train_at_ten_times_the_lr(model_and_groups):
    model, groups = model_and_groups
    owner = group_of(groups)
    heads = [model.ffm, model.conv_out, model.conv_out16, model.conv_out32]
    head_ids = {id(p) for m in heads for p in m.parameters()}
    assert head_ids
    for p in model.parameters():
        assert owner[id(p)]["lr"] == pytest.approx(0.1 if id(p) in head_ids else 0.01)


def test_weight_decay_only_on_conv_weights(model_and_groups):
    model, groups = model_and_groups
    owner = group_of(groups)
    one_d = [p for p in model.parameters() if p.ndim == 1]
    bn = [p for m in model.modules() if isinstance(m, nn.BatchNorm2d) for p in (m.weight, m.bias)]
    conv_bias = [m.bias for m in model.modules() if isinstance(m, nn.Conv2d) and m.bias is not None]
    conv_weight = [m.weight for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert bn and conv_bias and conv_weight
    for p in one_d + bn + conv_bias:
        assert owner[id(p)]["weight_decay"] == 0.0
    for p in conv_weight:
        assert p.ndim == 4
        assert owner[id(p)]["weight_decay"] == 5e-4
