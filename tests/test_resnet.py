"""bisenet.models.resnet: torchvision's ResNet-18 as a feature extractor; its ImageNet weights
(bisenet.weights.load_backbone)."""
import os

import pytest
import torch
import torchvision

from bisenet.checkpoint import CheckpointError
from bisenet.config import load_config
from bisenet.models import build_model
from bisenet.models.resnet import ResNet18
from bisenet.weights import load_backbone

from conftest import REPO


def test_features_are_torchvisions_at_strides_8_16_32():
    torch.manual_seed(0)
    reference = torchvision.models.resnet18(weights=None).eval()
    ours = ResNet18().eval()
    ours.load_state_dict({k: v for k, v in reference.state_dict().items() if not k.startswith("fc.")})
    x = torch.randn(1, 3, 96, 160)
    with torch.no_grad():
        stem = reference.maxpool(reference.relu(reference.bn1(reference.conv1(x))))
        expected = [reference.layer2(reference.layer1(stem))]
        expected += [reference.layer3(expected[0])]
        expected += [reference.layer4(expected[1])]
        got = ours(x)
    assert [tuple(f.shape) for f in got] == [(1, 128, 12, 20), (1, 256, 6, 10), (1, 512, 3, 5)]
    assert all(torch.equal(a, b) for a, b in zip(got, expected))


def test_backbone_weights_from_file(tmp_path):
    import torchvision

    reference = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    cfg = load_config(os.path.join(REPO, "configs", "bisenetv1_city.py"), [f"model.backbone_weights={path}"])
    model = load_backbone(build_model(cfg), cfg)
    for name, tensor in model.cp.resnet.state_dict().items():
        assert torch.equal(tensor, reference.state_dict()[name]), name


def test_missing_backbone_weights_say_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cfg = load_config(os.path.join(REPO, "configs", "bisenetv1_city.py"))
    assert cfg.model.backbone_weights == "imagenet"
    with pytest.raises(FileNotFoundError, match="IMAGENET1K_V1"):
        load_backbone(build_model(cfg), cfg)
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        nowhere = load_config(os.path.join(REPO, "configs", "bisenetv1_city.py"),
                              [f"model.backbone_weights={tmp_path}/nowhere.pth"])
        load_backbone(build_model(nowhere), nowhere)
    build_model(cfg)  # building alone (inference, then load_weights) reads nothing


def test_a_file_that_is_not_resnet18_is_refused_with_its_keys(tmp_path):
    torch.save(torchvision.models.resnet34(weights=None).state_dict(), tmp_path / "resnet34.pth")
    with pytest.raises(CheckpointError, match="unexpected key.*layer1.2"):
        cfg = load_config(os.path.join(REPO, "configs", "bisenetv1_city.py"),
                          [f"model.backbone_weights={tmp_path / 'resnet34.pth'}"])
        load_backbone(build_model(cfg), cfg)
