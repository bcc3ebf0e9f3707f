"""Resuming, crash safety, NaN handling and fine-tuning of the training engine (one process)."""
import functools
import json
import os
import shutil

import pytest
import torch

import bisenet.engine.run as run_module
import bisenet.engine.trainer as trainer_module
from bisenet.checkpoint import load_checkpoint, load_for_finetune
from bisenet.config import Config, DataConfig, EvalConfig, ModelConfig, TrainConfig
from bisenet.engine.trainer import TrainingError, build_run, train, train_step
from bisenet.losses import OhemCrossEntropy
from bisenet.lr_scheduler import lr_factor
from bisenet.models.bisenetv1 import BiSeNetV1
from bisenet.optim import param_groups

REAL_TRAIN_LOADER = trainer_module.build_train_loader


def six_steps(data_root, output_dir):
    """The runs of this module: conftest's ``tiny_cfg`` trained for 6 steps of 2 images, with a
    checkpoint every 2."""
    return Config(
        model=ModelConfig(num_classes=19),
        data=DataConfig(root=data_root, crop_size=(64, 64), scale_range=(0.75, 1.25), num_workers=0),
        train=TrainConfig(max_iters=6, batch_size=2, warmup_iters=2, amp=False, log_interval=1,
                          checkpoint_interval=2, keep_checkpoints=5, output_dir=str(output_dir)),
        eval=EvalConfig(batch_size=1, num_workers=0),
    )


@pytest.fixture
def cfg(synthetic_root, tmp_path):
    return six_steps(synthetic_root, tmp_path / "run")


def crash_after(monkeypatch, batches, ignore_start=False):
    """Make the training loader raise after ``batches`` batches (a crash mid-run); with
    ``ignore_start`` it also forgets the resume position (the negative control)."""
    def loader(cfg, rank=0, world_size=1, start=0):
        inner = REAL_TRAIN_LOADER(cfg, rank, world_size, 0 if ignore_start else start)

        def generate():
            for k, batch in enumerate(inner):
                if batches is not None and k == batches:
                    raise RuntimeError("simulated crash")
                yield batch
        return generate()

    monkeypatch.setattr(trainer_module, "build_train_loader", loader)


def weights(path):
    return load_checkpoint(path)["model"]


def assert_same(a, b):
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert different == []


def lr_records(output_dir):
    records = [json.loads(line) for line in open(os.path.join(output_dir, "metrics.jsonl"))]
    return {r["iteration"]: r["lr"] for r in records if "lr" in r}


@pytest.fixture(scope="module")
def reference_and_crash(synthetic_root, tmp_path_factory):
    """Trained once for the resume tests: the uninterrupted run's final checkpoint, and the folder
    of a second run of the same config that died during iteration 6 (checkpoints at 2 and 4
    exist). Tests resume a copy of that folder (``crashed``)."""
    base = tmp_path_factory.mktemp("reference_and_crash")
    _, reference = train(six_steps(synthetic_root, base / "reference"), "cpu", progress=False)
    with pytest.MonkeyPatch.context() as monkeypatch:
        crash_after(monkeypatch, 5)
        with pytest.raises(RuntimeError, match="simulated crash"):
            train(six_steps(synthetic_root, base / "crashed"), "cpu", progress=False)
    return reference, base / "crashed"


@pytest.fixture
def crashed(reference_and_crash, cfg):
    """``cfg``'s output folder holds a copy of the crashed run; returns the reference's final
    checkpoint."""
    reference, folder = reference_and_crash
    shutil.copytree(folder, cfg.train.output_dir)
    return reference


@pytest.mark.slow
def test_resume_after_crash_equals_uninterrupted(cfg, crashed, monkeypatch):
    reference = crashed
    assert sorted(os.listdir(cfg.train.output_dir)) == ["checkpoint_000002.pth", "checkpoint_000004.pth", "config.py",
                                                        "log.txt", "metrics.jsonl", "train.lock"]
    crash_after(monkeypatch, None)
    _, resumed = train(cfg, "cpu", resume="latest", progress=False)
    assert_same(weights(reference), weights(resumed))

    # LR of every group at every iteration, across the resume, is the uninterrupted run's.
    expected, got = lr_records(os.path.dirname(reference)), lr_records(cfg.train.output_dir)
    assert got == expected
    for iteration, lrs in got.items():
        factor = lr_factor(iteration - 1, 6, 2, 0.1, 0.9)
        assert lrs["backbone"] == pytest.approx(cfg.train.base_lr * factor)
        assert lrs["head_no_decay"] == pytest.approx(10 * cfg.train.base_lr * factor)


@pytest.mark.slow
def test_resume_without_the_sampler_position_differs(cfg, crashed, monkeypatch):
    reference = crashed
    crash_after(monkeypatch, None, ignore_start=True)
    _, resumed = train(cfg, "cpu", resume="latest", progress=False)
    a, b = weights(reference), weights(resumed)
    assert any(not torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_truncated_latest_checkpoint_falls_back_to_the_previous(cfg, crashed, monkeypatch):
    reference = crashed
    latest = os.path.join(cfg.train.output_dir, "checkpoint_000004.pth")
    with open(latest, "r+b") as f:
        f.truncate(os.path.getsize(latest) // 2)
    crash_after(monkeypatch, None)
    with pytest.warns(UserWarning, match="checkpoint_000004.pth"):
        _, resumed = train(cfg, "cpu", resume="latest", progress=False)
    assert_same(weights(reference), weights(resumed))


def test_nan_loss_stops_before_the_step_and_keeps_the_last_checkpoint(cfg, monkeypatch):
    calls = {"n": 0}
    class NaNAtIteration3(OhemCrossEntropy):
        def forward(self, logits, labels):
            calls["n"] += 1
            loss = super().forward(logits, labels)
            return loss * float("nan") if calls["n"] > 6 else loss  # 3 outputs per iteration

    monkeypatch.setattr(run_module, "build_loss", lambda train_cfg, ignore_index: NaNAtIteration3())
    with pytest.raises(TrainingError, match="non-finite loss at iteration 3"):
        train(cfg, "cpu", progress=False)
    names = sorted(n for n in os.listdir(cfg.train.output_dir) if n.endswith(".pth"))
    assert names == ["checkpoint_000002.pth"]
    assert all(torch.isfinite(v).all() for v in weights(os.path.join(cfg.train.output_dir, names[0])).values()
               if v.is_floating_point())


def test_an_all_ignored_crop_has_a_zero_loss_and_only_weight_decay_moves_the_weights(cfg, monkeypatch):
    # A crop whose every pixel is the ignore index has no loss to learn from: it must give a
    # loss of exactly 0 (not 0/0 = NaN, which would stop the run) and zero gradients, so that
    # each step is SGD's on weight decay alone: v = momentum * v + wd * w, w -= lr * v, with the
    # schedule's LR of each group; parameters without decay do not move at all.
    def ignored(cfg, rank=0, world_size=1, start=0):
        for batch in REAL_TRAIN_LOADER(cfg, rank, world_size, start):
            batch["label"].fill_(255)
            yield batch

    monkeypatch.setattr(trainer_module, "build_train_loader", ignored)
    cfg.train.max_iters, cfg.train.warmup_iters, cfg.train.base_lr = 3, 1, 0.1  # moves of ~1e-4 of w
    initial = build_run(cfg, torch.device("cpu")).model  # the seeded model train() starts from
    model, _ = train(cfg, "cpu", progress=False)
    records = [json.loads(line) for line in open(os.path.join(cfg.train.output_dir, "metrics.jsonl"))]
    assert [(r["loss"], r["aux_losses"]) for r in records if "loss" in r] == [(0.0, [0.0, 0.0])] * 3

    train_cfg = cfg.train
    factors = [lr_factor(i, 3, 1, train_cfg.warmup_ratio, train_cfg.poly_power) for i in range(3)]
    final = dict(model.named_parameters())
    eps = torch.finfo(torch.float32).eps
    names, decayed = {id(p): n for n, p in initial.named_parameters()}, 0
    for group in param_groups(initial, train_cfg.base_lr, train_cfg.weight_decay, train_cfg.head_lr_multiplier):
        for p in group["params"]:
            w0, got = p.detach().double(), final[names[id(p)]].detach()
            if group["weight_decay"] == 0:
                assert torch.equal(got, p.detach()), names[id(p)]
                continue
            w, v = w0, torch.zeros_like(w0)
            for factor in factors:
                v = train_cfg.momentum * v + group["weight_decay"] * w
                w = w - group["lr"] * factor * v
            # fp32 against float64: a few roundings of w; a skipped step or a wrong LR is ~100x that
            assert bool(((got.double() - w).abs() <= 8 * eps * w0.abs()).all()), names[id(p)]
            assert not torch.equal(got, p.detach())
            decayed += 1
    assert decayed > 0


def test_resume_refuses_changed_batch_and_rerun_is_a_no_op(cfg, monkeypatch):
    crash_after(monkeypatch, 3)
    with pytest.raises(RuntimeError):
        train(cfg, "cpu", progress=False)
    crash_after(monkeypatch, None)
    with pytest.raises(TrainingError, match="--resume"):
        train(cfg, "cpu", progress=False)  # would clobber the unfinished run
    cfg.train.batch_size = 4
    with pytest.raises(TrainingError, match="train.batch_size: 2 in the checkpoint, 4 now"):
        train(cfg, "cpu", resume="latest", progress=False)
    model, final = train(cfg, "cpu", resume="latest", force_resume=True, progress=False)
    assert model is not None and load_checkpoint(final)["iteration"] == 6
    again, _ = train(cfg, "cpu", resume="latest", progress=False)
    assert again is None


def test_finetune_with_another_class_count(cfg, tmp_path):
    source = BiSeNetV1(19)
    torch.save({"model": source.state_dict()}, tmp_path / "source.pth")
    target = BiSeNetV1(5)
    report = load_for_finetune(target, str(tmp_path / "source.pth"))
    reinitialised = sorted(line.split()[1].rstrip(":") for line in report if line.startswith("re-initialised"))
    assert reinitialised == sorted(f"{head}.conv_out.{p}" for head in ("conv_out", "conv_out16", "conv_out32")
                                   for p in ("weight", "bias"))
    assert torch.equal(target.sp.conv1.conv.weight, source.sp.conv1.conv.weight)
    assert not torch.equal(target.conv_out.conv_out.weight[:5], source.conv_out.conv_out.weight[:5])

    cfg.train.max_iters, cfg.train.warmup_iters = 1, 0
    model, _ = train(cfg, "cpu", finetune_from=str(tmp_path / "source.pth"), progress=False)
    log = open(os.path.join(cfg.train.output_dir, "log.txt")).read()
    assert "loaded 222 of 222 entries" in log


class Overflowing(OhemCrossEntropy):
    """The loss of the iterations in ``at`` (1-based) overflows; 3 outputs per iteration."""

    at = ()
    calls = 0

    def forward(self, logits, labels):
        Overflowing.calls += 1
        loss = super().forward(logits, labels)
        return loss * float("inf") if (Overflowing.calls - 1) // 3 + 1 in self.at else loss


def fp16_on_the_cpu(cfg, monkeypatch, at):
    monkeypatch.setattr(run_module, "build_loss", lambda train_cfg, ignore_index: Overflowing())
    monkeypatch.setattr(Overflowing, "at", at)
    monkeypatch.setattr(Overflowing, "calls", 0)
    cfg.train.amp, cfg.train.amp_dtype = True, "fp16"  # autocast and the gradient scaler work on the CPU
    # A loss scale that this tiny model's gradients never overflow at, so that only the planted
    # overflows skip steps (at the default 2**16 the scaler first searches downwards, skipping).
    monkeypatch.setattr(torch.amp, "GradScaler", functools.partial(torch.amp.GradScaler, init_scale=1.0))
    cfg.train.checkpoint_interval = 1
    cfg.train.keep_checkpoints = 10


def parameters(path):
    names = {name for name, _ in BiSeNetV1(19).named_parameters()}
    return {k: v for k, v in weights(path).items() if k in names}


@pytest.mark.slow
def test_fp16_overflow_skips_the_step_and_lowers_the_scale(cfg, monkeypatch):
    fp16_on_the_cpu(cfg, monkeypatch, at={3})
    model, final = train(cfg, "cpu", progress=False)
    out = cfg.train.output_dir
    assert load_checkpoint(final)["iteration"] == 6
    # iteration 3's step was skipped: the parameters did not move; the others did
    assert_same(parameters(f"{out}/checkpoint_000002.pth"), parameters(f"{out}/checkpoint_000003.pth"))
    assert any(not torch.equal(a, b) for a, b in zip(parameters(f"{out}/checkpoint_000003.pth").values(),
                                                      parameters(f"{out}/checkpoint_000004.pth").values()))
    scales = [load_checkpoint(f"{out}/checkpoint_{i:06d}.pth")["scaler"]["scale"] for i in (2, 3)]
    assert scales[1] == scales[0] / 2
    log = open(f"{out}/log.txt").read()
    assert f"iter 3: the loss overflowed in fp16; step skipped, loss scale {scales[0]:g} -> {scales[1]:g}" in log
    notes = [json.loads(line) for line in open(f"{out}/metrics.jsonl") if "skipped_step" in line]
    assert notes == [{"iteration": 3, "skipped_step": "the loss", "loss_scale": scales[1]}]


@pytest.mark.slow
def test_fp16_gradient_overflow_is_skipped_by_the_scaler_and_logged(cfg, monkeypatch):
    fp16_on_the_cpu(cfg, monkeypatch, at=())
    real_build = run_module.build_model
    backward_calls = {"n": 0}

    def build_with_an_overflowing_gradient(*args, **kwargs):
        model = real_build(*args, **kwargs)

        def hook(grad):
            backward_calls["n"] += 1
            return grad * float("inf") if backward_calls["n"] == 2 else grad
        model.sp.conv1.conv.weight.register_hook(hook)
        return model

    monkeypatch.setattr(run_module, "build_model", build_with_an_overflowing_gradient)
    train(cfg, "cpu", progress=False)
    out = cfg.train.output_dir
    assert_same(parameters(f"{out}/checkpoint_000001.pth"), parameters(f"{out}/checkpoint_000002.pth"))
    assert "iter 2: a gradient overflowed in fp16; step skipped" in open(f"{out}/log.txt").read()


@pytest.mark.slow
def test_fp16_stops_after_too_many_skips_in_a_row(cfg, monkeypatch):
    fp16_on_the_cpu(cfg, monkeypatch, at={3, 4, 5})
    cfg.train.max_consecutive_skips = 3
    with pytest.raises(TrainingError, match=r"3 steps in a row overflowed in fp16 \(iterations 3-5"):
        train(cfg, "cpu", progress=False)
    assert not os.path.exists(os.path.join(cfg.train.output_dir, "model_final.pth"))


@pytest.mark.slow
def test_fp16_skips_in_a_row_are_counted_afresh_after_a_good_step(cfg, monkeypatch):
    fp16_on_the_cpu(cfg, monkeypatch, at={2, 3, 5, 6})
    cfg.train.max_consecutive_skips = 3
    _, final = train(cfg, "cpu", progress=False)
    assert load_checkpoint(final)["iteration"] == 6


@pytest.mark.slow
def test_fp16_at_the_default_scale_trains_through_its_first_overflows(cfg):
    # GradScaler starts at 2**16, which overflows this model's gradients: the first steps are
    # skipped while the scale halves, then training goes on, as with the reference.
    cfg.train.amp, cfg.train.amp_dtype = True, "fp16"
    model, final = train(cfg, "cpu", progress=False)
    skips = [json.loads(line) for line in open(os.path.join(cfg.train.output_dir, "metrics.jsonl"))
             if "skipped_step" in line]
    assert 0 < len(skips) < 6 and load_checkpoint(final)["iteration"] == 6
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.parametrize("amp", [False, True])
def test_clipping_caps_the_global_norm_of_the_true_gradients(monkeypatch, amp):
    # fp16 on the CPU (autocast and the gradient scaler work there) at a loss scale of 64, which
    # these gradients do not overflow at: the scaled gradients must be unscaled before clipping.
    monkeypatch.setattr(torch.amp, "GradScaler", functools.partial(torch.amp.GradScaler, init_scale=64.0))
    gen = torch.Generator().manual_seed(0)
    images, labels = torch.randn(2, 3, 32, 32, generator=gen), torch.randint(0, 19, (2, 32, 32), generator=gen)

    def one_step(clip):
        cfg = Config(train=TrainConfig(batch_size=2, amp=amp, amp_dtype="fp16", clip_grad_norm=clip, base_lr=1.0,
                                       warmup_iters=0, weight_decay=0.0))
        cfg.model.backbone_weights = ""
        run = build_run(cfg, torch.device("cpu"))
        before = [p.detach().clone() for p in run.model.parameters()]
        status = train_step(run, images, labels)
        assert status.stepped and (status.grad_norm is None) == (clip == 0)
        return run, before, status

    free, _, _ = one_step(0.0)
    # The reference: torch's own clipping of the same gradients (the step left them unscaled).
    copies = [p.detach().clone().requires_grad_() for p in free.model.parameters()]
    for copy, p in zip(copies, free.model.parameters()):
        copy.grad = p.grad.clone()
    norm = float(torch.nn.utils.clip_grad_norm_(copies, float("inf")))  # the norm only: nothing to clip
    expected_norm = torch.nn.utils.clip_grad_norm_(copies, norm / 4)

    run, before, status = one_step(norm / 4)
    assert float(status.grad_norm) == float(expected_norm) == norm
    parameters = list(run.model.parameters())
    assert all(torch.equal(p.grad, c.grad) for p, c in zip(parameters, copies))
    assert float(torch.cat([p.grad.flatten() for p in parameters]).double().norm()) == pytest.approx(norm / 4, rel=1e-5)
    # ...and the optimiser stepped with them: SGD's first step is w - lr * grad (no weight decay).
    eps = torch.finfo(torch.float32).eps
    index = {id(p): k for k, p in enumerate(parameters)}
    for group, lr in zip(run.optimizer.param_groups, status.lrs):
        for p in group["params"]:
            w0 = before[index[id(p)]]
            update = lr * p.grad
            assert bool(((p.detach() - (w0 - update)).abs() <= 2 * eps * (w0.abs() + update.abs())).all())


def test_clipping_leaves_an_overflowed_fp16_step_to_the_scaler():
    # At the default loss scale (2**16) this model's first gradients overflow in fp16.
    cfg = Config(train=TrainConfig(batch_size=2, amp=True, amp_dtype="fp16", clip_grad_norm=1.0))
    cfg.model.backbone_weights = ""
    run = build_run(cfg, torch.device("cpu"))
    before = {k: v.clone() for k, v in run.model.state_dict().items()}
    status = train_step(run, torch.randn(2, 3, 32, 32), torch.randint(0, 19, (2, 32, 32)))
    assert not status.stepped and status.skipped == "a gradient" and not torch.isfinite(status.grad_norm)
    assert status.loss_scale == status.loss_scale_before / 2
    names = {name for name, _ in run.model.named_parameters()}
    assert all(torch.equal(before[name], value) for name, value in run.model.state_dict().items() if name in names)
