"""BiSeNetV2 against the reference listing and forward, and through the tools by config alone."""
import json
import math
import os

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from bisenet.checkpoint import CheckpointError
from bisenet.config import load_config
from bisenet.models import build_model
from bisenet.models.bisenetv2 import BiSeNetV2
from bisenet.weights import load_backbone

from conftest import REFERENCE, REPO, run_tool

LISTING = os.path.join(REFERENCE, "coincheung_bisenetv2_state_dict.json")


def listing():
    with open(LISTING) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    model = BiSeNetV2(19)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    return model


def test_state_dict_and_parameters_match_the_reference(model):
    ours = [[name, list(t.shape)] for name, t in model.state_dict().items()]
    assert len(ours) == 383 and sorted(ours) == sorted(listing())
    assert sum(p.numel() for p in model.parameters()) == 5_231_487


def test_reference_initialisation():
    model = BiSeNetV2(19)
    last = [m for m in model.modules() if getattr(m, "last_bn", False)]
    assert len(last) == 8 and all((m.weight == 0).all() for m in last)  # one per gather-and-expand layer
    others = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d) and not getattr(m, "last_bn", False)]
    assert all((m.weight == 1).all() and (m.bias == 0).all() for m in others)


@pytest.mark.parametrize("size", [(64, 128), (97, 131)])
def test_shapes_in_train_and_eval(model, size):
    model.train()
    outputs = model(torch.randn(2, 3, *size))
    assert len(outputs) == 5 and all(o.shape == (2, 19, *size) for o in outputs)
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, *size)).shape == (1, 19, *size)


def reference_forward(m, x):
    """The reference's forward with its fixed-factor resizes (inputs divisible by 32)."""
    feat_d = m.detail(x)
    *_, feat_s = m.segment(x)
    bga = m.bga
    right1 = F.interpolate(bga.right1(feat_s), scale_factor=4.0, mode="nearest")
    left = bga.left1(feat_d) * torch.sigmoid(right1)
    right = F.interpolate(bga.left2(feat_d) * torch.sigmoid(bga.right2(feat_s)), scale_factor=4.0, mode="nearest")
    feat = bga.conv(left + right)
    head = m.head
    logits = head.conv_out(head.drop(head.conv(feat)))
    return F.interpolate(logits, scale_factor=8.0, mode="bilinear", align_corners=False)


def test_matches_the_reference_forward(model):
    model.eval()
    x = torch.randn(1, 3, 96, 160)
    with torch.no_grad():
        # The same kernels on the same values in the same order: equal to the bit on any CPU.
        assert torch.equal(model(x), reference_forward(model, x))


def test_every_parameter_gets_a_gradient():
    torch.manual_seed(0)
    model = BiSeNetV2(19).train()
    for module in model.modules():  # the zero-initialised last BNs would block their convs' gradients
        if getattr(module, "last_bn", False):
            nn.init.ones_(module.weight)
    sum(o.square().mean() for o in model(torch.randn(2, 3, 64, 64))).backward()
    no_gradient = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    # The context embedding's BN bias shifts every sample alike; the batch-statistics BN of the
    # next conv removes that shift, so in training its gradient is exactly zero (as in the paper).
    assert no_gradient == ["segment.S5_5.bn.bias"]


def backbone_file(path, drop=(), reshape=(), extra=()):
    """A backbone_v2.pth in the reference's layout, random values of trained-like sizes with the
    names and shapes of its state-dict listing; entries can be dropped, mis-shaped or added."""
    generator = torch.Generator().manual_seed(0)
    state = {"detail": {}, "segment": {}}
    for name, shape in listing():
        branch, key = name.split(".", 1)
        if branch in state and name not in drop:
            shape = [s + 1 for s in shape] if name in reshape else shape
            uniform = torch.rand(shape, generator=generator)
            if key.endswith("num_batches_tracked"):
                value = torch.tensor(5)
            elif len(shape) == 4:  # conv weights, Kaiming-sized
                value = torch.randn(shape, generator=generator) * (2 / math.prod(shape[1:])) ** 0.5
            elif key.endswith(("running_var", "weight")):
                value = 0.5 + uniform
            else:  # BN bias and running mean
                value = 0.2 * (uniform - 0.5)
            state[branch][key] = value
    for name in extra:
        branch, key = name.split(".", 1)
        state[branch][key] = torch.zeros(1)
    torch.save(state, path)
    return state


def v2_config(*overrides):
    return load_config(os.path.join(REPO, "configs", "bisenetv2_city.py"), list(overrides))


def test_config_starts_from_the_imagenet_backbone_from_the_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    state = backbone_file(tmp_path / "hub" / "checkpoints" / "backbone_v2.pth")
    cfg = v2_config()
    assert cfg.model.backbone_weights == "imagenet"
    torch.manual_seed(0)
    fresh = build_model(cfg).state_dict()
    torch.manual_seed(0)
    model = load_backbone(build_model(cfg), cfg)
    loaded = model.state_dict()
    for name, tensor in loaded.items():
        branch, key = name.split(".", 1)
        expected = state[branch][key] if branch in state else fresh[name]
        assert torch.equal(tensor, expected), name
    assert sum(len(v) for v in state.values()) == sum(1 for n in loaded if n.startswith(("detail.", "segment.")))


def test_backbone_mismatch_lists_every_key(tmp_path):
    path = tmp_path / "backbone_v2.pth"
    backbone_file(path, drop=["segment.S3.0.conv1.conv.weight"], reshape=["detail.S1.0.conv.weight"],
                  extra=["segment.extra.weight"])
    with pytest.raises(CheckpointError) as error:
        cfg = v2_config(f"model.backbone_weights={path}")
        load_backbone(build_model(cfg), cfg)
    message = str(error.value)
    for text in ("S3.0.conv1.conv.weight", "S1.0.conv.weight", "extra.weight", "detail:", "segment:"):
        assert text in message
    torch.save({"detail": {}}, path)
    with pytest.raises(CheckpointError, match="expected the branches"):
        cfg = v2_config(f"model.backbone_weights={path}")
        load_backbone(build_model(cfg), cfg)


def test_training_without_the_backbone_stops_at_start_saying_where_to_get_it(synthetic_root, tmp_path):
    env = dict(os.environ, TORCH_HOME=str(tmp_path / "torch"))
    result = run_tool("train.py", "--config", "configs/bisenetv2_city.py", f"data.root={synthetic_root}",
                      f"train.output_dir={tmp_path / 'run'}", "train.sync_bn=false", "data.num_workers=1",
                      "--device", "cpu", env=env)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    for text in ("backbone_v2.pth", "download_weights.py coincheung/backbone_v2", str(tmp_path / "torch"),
                 "https://github.com/CoinCheung/BiSeNet/releases/download/0.0.0/backbone_v2.pth",
                 "model.backbone_weights= (empty)"):
        assert text in result.stderr, text
    assert not (tmp_path / "run" / "model_final.pth").exists()


def test_trains_evaluates_and_exports_by_config(synthetic_root, tmp_path):
    backbone_file(tmp_path / "backbone_v2.pth")
    common = ["--config", "configs/bisenetv2_city.py", f"data.root={synthetic_root}", f"train.output_dir={tmp_path}",
              "data.crop_size=[64,64]", "data.num_workers=0", "eval.num_workers=0", "eval.batch_size=1"]
    result = run_tool("train.py", *common, "train.sync_bn=false", "train.amp=false", "train.max_iters=2",
                      "train.batch_size=2", "train.warmup_iters=1",
                      f"model.backbone_weights={tmp_path}/backbone_v2.pth",
                      "--no-eval")
    assert result.returncode == 0, result.stderr
    result = run_tool("evaluate.py", *common, "--flip")
    assert result.returncode == 0, result.stderr
    assert "mIoU" in result.stdout
    result = run_tool("export_onnx.py", *common, "--weights", str(tmp_path / "model_final.pth"),
                      "--out", str(tmp_path / "v2.onnx"), "--size", "64", "128", "--dynamic")
    assert result.returncode == 0, result.stderr


def test_sync_bn_on_cpu_processes_is_explained_and_one_process_trains(synthetic_root, tmp_path, monkeypatch):
    common = ["--config", "configs/bisenetv2_city.py", f"data.root={synthetic_root}", "train.max_iters=1",
              "train.warmup_iters=0", "train.batch_size=4", "data.num_workers=0", "data.crop_size=[64,64]",
              "--device", "cpu"]
    single = run_tool("train.py", *common, f"train.output_dir={tmp_path / 'one'}", "model.backbone_weights=",
                      "eval.final_modes=[]")
    assert single.returncode == 0, single.stderr
    monkeypatch.setattr("bisenet.distributed.get_world_size", lambda: 2)  # as under torchrun, before any group
    result = run_tool("train.py", *common, f"train.output_dir={tmp_path / 'two'}")
    assert result.returncode == 1 and "train.sync_bn=false" in result.stderr and "Traceback" not in result.stderr
