import json
import math
import os

import pytest
import torch.nn as nn

from bisenet.models.bisenetv1 import BiSeNetV1
from bisenet.models.bisenetv2 import BiSeNetV2
from bisenet.optim import param_groups

from conftest import REFERENCE


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


def reference_group_sizes(listing, is_head):
    """(tensors, parameters) per group by the reference's get_params rules, from its state-dict
    listing: 4-D weights decay, 1-D parameters (biases, BN) do not; buffers are not parameters."""
    sizes = {}
    for name, shape in listing:
        if name.endswith(("running_mean", "running_var", "num_batches_tracked")):
            continue
        key = ("head" if is_head(name.split(".")[0]) else "base") + ("_wd" if len(shape) == 4 else "_nowd")
        tensors, numbers = sizes.get(key, (0, 0))
        sizes[key] = (tensors + 1, numbers + math.prod(shape))
    return sizes


def our_group_sizes(model):
    names = {"backbone": "base_wd", "backbone_no_decay": "base_nowd", "head": "head_wd", "head_no_decay": "head_nowd"}
    return {names[g["name"]]: (len(g["params"]), sum(p.numel() for p in g["params"]))
            for g in param_groups(model, 0.01, 5e-4, 10.0)}


@pytest.mark.parametrize("model_class, listing_file, is_head", [
    # V1: the children that are FeatureFusionModule or BiSeNetOutput; V2: *head* or *aux* in the name.
    (BiSeNetV1, "coincheung_bisenetv1_state_dict.json", lambda child: child in ("ffm", "conv_out", "conv_out16",
                                                                                 "conv_out32")),
    (BiSeNetV2, "coincheung_bisenetv2_state_dict.json", lambda child: "head" in child or "aux" in child),
])
def test_groups_match_the_reference_tensor_for_tensor(model_class, listing_file, is_head):
    with open(os.path.join(REFERENCE, listing_file)) as f:
        expected = reference_group_sizes(json.load(f), is_head)
    assert our_group_sizes(model_class(19)) == expected


def test_bisenetv2_groups_have_the_reference_sizes():
    assert our_group_sizes(BiSeNetV2(19)) == {"base_wd": (54, 2142176), "base_nowd": (106, 15280),
                                              "head_wd": (14, 3068144), "head_nowd": (23, 5887)}
