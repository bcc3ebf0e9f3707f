import json
import os

import pytest
import torch

from bisenet.data.loaders import build_dataset
from bisenet.engine.trainer import train
from bisenet.losses import OhemCrossEntropy
from bisenet.models import build_model


def fixed_batch_loss(model, cfg):
    dataset = build_dataset(cfg.data, train=True)
    samples = [dataset[(i, (123, i))] for i in range(4)]
    images = torch.stack([s["image"] for s in samples])
    labels = torch.stack([s["label"] for s in samples])
    criterion = OhemCrossEntropy(ignore_index=cfg.data.ignore_index)
    model.train()  # batch statistics: running ones are not settled after a few steps
    with torch.no_grad():
        return criterion(model(images)[0], labels).item()


def test_a_few_iterations_lower_the_loss(tiny_cfg):
    tiny_cfg.train.max_iters = 12
    tiny_cfg.train.batch_size = 4
    tiny_cfg.train.warmup_iters = 1
    tiny_cfg.train.base_lr = 0.02
    torch.manual_seed(tiny_cfg.train.seed)
    before = fixed_batch_loss(build_model(tiny_cfg), tiny_cfg)
    model, final = train(tiny_cfg, device="cpu", progress=False)
    after = fixed_batch_loss(model, tiny_cfg)
    assert after < 0.8 * before, (before, after)

    checkpoint = torch.load(final, weights_only=True)
    assert checkpoint["iteration"] == 12 and checkpoint["config"]["train"]["max_iters"] == 12
    records = [json.loads(line) for line in open(os.path.join(tiny_cfg.train.output_dir, "metrics.jsonl"))]
    assert records[-1]["iteration"] == 12 and set(records[-1]["lr"]) == {"backbone", "backbone_no_decay", "head",
                                                                          "head_no_decay"}
    assert records[-1]["lr"]["head"] == pytest.approx(10 * records[-1]["lr"]["backbone"])


def test_training_is_repeatable(tiny_cfg, tmp_path):
    tiny_cfg.train.max_iters, tiny_cfg.train.warmup_iters = 2, 1
    first, _ = train(tiny_cfg, device="cpu", progress=False)
    tiny_cfg.train.output_dir = str(tmp_path / "second")
    second, _ = train(tiny_cfg, device="cpu", progress=False)
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values()):
        assert torch.equal(a, b), name


def test_periodic_checkpoints_keep_the_newest(tiny_cfg):
    tiny_cfg.train.max_iters = 4
    tiny_cfg.train.checkpoint_interval = 1
    tiny_cfg.train.keep_checkpoints = 2
    train(tiny_cfg, device="cpu", progress=False)
    names = sorted(n for n in os.listdir(tiny_cfg.train.output_dir) if n.endswith(".pth"))
    assert names == ["checkpoint_000003.pth", "checkpoint_000004.pth", "model_final.pth"]
    state = torch.load(os.path.join(tiny_cfg.train.output_dir, "checkpoint_000004.pth"), weights_only=True)
    assert state["iteration"] == 4 and {"model", "optimizer", "scaler", "config", "rng", "checkpoints"} <= set(state)
    assert state["checkpoints"] == ["checkpoint_000003.pth", "checkpoint_000004.pth"]
