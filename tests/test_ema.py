"""Weight EMA: the average itself, kept by the training loop (saved, resumed, evaluated beside the
weights), and chosen by tools/evaluate.py --ema."""
import json
import os
import re

import pytest
import torch
import torch.nn as nn

from bisenet.checkpoint import load_checkpoint, save_checkpoint
from bisenet.config import load_config
from bisenet.data.loaders import build_eval_loader
from bisenet.engine.ema import ModelEma
from bisenet.engine.evaluator import EvalMode, evaluate
from bisenet.engine.trainer import build_run, evaluate_after_training, seed_everything, train
from bisenet.models import build_model

from conftest import REPO, random_statistics_model, run_tool


def new_values(model, seed):
    """Give every floating entry of ``model`` new random values and count a BatchNorm batch, as a
    training step would."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for value in model.state_dict().values():
            if value.is_floating_point():
                value.copy_(torch.rand(value.shape, generator=gen) * 4 - 2)
            else:
                value.add_(1)  # num_batches_tracked


@pytest.mark.parametrize("warmup, decays", [(False, [0.9, 0.9, 0.9]), (True, [1 / 10, 2 / 11, 3 / 12])])
def test_the_ema_is_the_hand_computed_average(warmup, decays):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 1), nn.BatchNorm2d(3))
    ema = ModelEma(model, 0.9, warmup)
    assert not ema.module.training and not any(p.requires_grad for p in ema.module.parameters())
    expected = {name: value.double() for name, value in model.state_dict().items()}
    for step, decay in enumerate(decays):
        new_values(model, step)
        ema.update(model)
        expected = {name: decay * expected[name] + (1 - decay) * value.double() if value.is_floating_point() else value
                    for name, value in model.state_dict().items()}
    assert ema.updates == 3
    state = ema.state_dict()
    assert state.keys() == expected.keys()
    for name, value in state.items():
        if value.is_floating_point():  # fp32 against float64: a few roundings of each step
            assert torch.allclose(value.double(), expected[name], rtol=1e-6, atol=1e-7), name
        else:
            assert torch.equal(value, expected[name]) and int(value) == 3, name  # copied, not averaged
    assert not torch.equal(state["0.weight"], model.state_dict()["0.weight"])  # its own copy


@pytest.mark.slow
def test_training_keeps_the_ema_of_every_step_saves_resumes_and_evaluates_it(tiny_cfg, capsys):
    cfg = tiny_cfg
    cfg.train.max_iters, cfg.train.warmup_iters = 2, 1
    cfg.train.checkpoint_interval, cfg.train.eval_interval = 1, 2
    cfg.train.ema_decay, cfg.train.ema_warmup = 0.9, True
    seed_everything(cfg.train.seed)
    initial = build_model(cfg).state_dict()  # what build_run starts from (tiny_cfg: no backbone weights)
    model, final = train(cfg, "cpu", progress=False)
    out = cfg.train.output_dir
    first, last = load_checkpoint(f"{out}/checkpoint_000001.pth"), load_checkpoint(final)
    assert first["ema_updates"] == 1 and last["ema_updates"] == 2
    # One update after each step, from the initial weights, with the warmed-up decays 1/10, 2/11.
    for name, value in last["model_ema"].items():
        w0, w1, w2 = (state[name].double() for state in (initial, first["model"], last["model"]))
        expected = 2 / 11 * (1 / 10 * w0 + 9 / 10 * w1) + 9 / 11 * w2 if value.is_floating_point() else w2
        assert torch.allclose(value.double(), expected, rtol=1e-6, atol=1e-6), name
    assert not torch.equal(last["model_ema"]["conv_out.conv_out.weight"], last["model"]["conv_out.conv_out.weight"])

    # A resume restores the average and its update count (so the warmup goes on where it was).
    run = build_run(cfg, torch.device("cpu"), checkpoint=first)
    assert run.ema.updates == 1 and run.ema.current_decay() == pytest.approx(2 / 11)
    assert all(torch.equal(value, first["model_ema"][name]) for name, value in run.ema.state_dict().items())

    # The periodic evaluation scores both; model_best.pth, chosen by the EMA's, holds both weights.
    [scores] = [json.loads(line) for line in open(f"{out}/metrics.jsonl") if '"miou"' in line]
    assert f"iter 2 val mIoU {100 * scores['miou']:.2f}, EMA {100 * scores['miou_ema']:.2f}" in open(
        f"{out}/log.txt").read()
    best = load_checkpoint(f"{out}/model_best.pth")
    assert (best["best_by"], best["iteration"], best["miou"], best["miou_ema"]) == ("ema", 2, scores["miou"],
                                                                                   scores["miou_ema"])
    assert all(torch.equal(best["model_ema"][name], value) for name, value in last["model_ema"].items())

    # The evaluation after training scores the weights and the EMA that model_final.pth holds,
    # side by side: the same weights as the last periodic evaluation, the same scores.
    capsys.readouterr()
    results = evaluate_after_training(cfg, model, "cpu", progress=False)
    assert list(results) == ["ss", "ss ema"] and re.search(r"\| +ss \| +ss ema \|", capsys.readouterr().out)
    assert (results["ss"]["miou"], results["ss ema"]["miou"]) == (scores["miou"], scores["miou_ema"])
    assert scores["miou"] != scores["miou_ema"]


def test_evaluate_chooses_the_ema_weights_with_the_flag(synthetic_root, tmp_path):
    raw, averaged = random_statistics_model(seed=0), random_statistics_model(seed=1)
    weights = str(tmp_path / "model_final.pth")
    save_checkpoint({"model": raw.state_dict(), "model_ema": averaged.state_dict()}, weights)
    config = os.path.join(REPO, "configs", "bisenetv1_synthetic.py")
    overrides = [f"data.root={synthetic_root}", "eval.num_workers=0", "eval.batch_size=1"]
    cfg = load_config(config, overrides)
    scores = {}
    for flags, name in (([], "raw"), (["--ema"], "ema")):
        out = tmp_path / f"{name}.json"
        result = run_tool("evaluate.py", "--config", config, *overrides, "--weights", weights, "--json", out, *flags)
        assert result.returncode == 0, result.stderr
        scores[name] = json.loads(out.read_text())
        assert scores[name]["ema"] == (name == "ema")
    expected = evaluate(averaged, build_eval_loader(cfg), 19, "cpu", mode=EvalMode(protocol=cfg.eval.protocol),
                        progress=False)
    assert scores["ema"]["confusion_matrix"] == expected["confusion_matrix"].tolist()
    assert scores["raw"]["confusion_matrix"] != scores["ema"]["confusion_matrix"]

    plain = str(tmp_path / "plain.pth")
    save_checkpoint({"model": raw.state_dict()}, plain)
    result = run_tool("evaluate.py", "--config", config, *overrides, "--weights", plain, "--ema")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"{plain} holds no EMA weights (trained without train.ema_decay)" in result.stderr
