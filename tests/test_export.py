"""bisenet.deploy.export: BatchNorm folding, ONNX and TorchScript files."""
import copy
import re

import pytest
import torch
import torch.nn as nn

from bisenet.deploy.export import fold_batchnorm
from bisenet.models.bisenetv1 import BiSeNetV1
from bisenet.models.bisenetv2 import BiSeNetV2

from conftest import random_statistics_model, run_tool, run_with_mounts, tool_argv
from numerics import EPS32, assert_fp32_close


def batchnorms_after_a_convolution(model, x):
    """Names of the BatchNorm layers whose input is a convolution's output, found by following
    the tensors of a training-mode forward pass (so that the auxiliary heads run too), not by the
    module names the folding pairs by."""
    model = copy.deepcopy(model).train()
    produced, found = {}, set()
    names = {module: name for name, module in model.named_modules()}

    def record(module, inputs, output):
        produced[id(output)] = output  # kept alive, so no other tensor reuses the id

    def check(module, inputs):
        tensor = produced.get(id(inputs[0]))
        if tensor is not None and tensor is inputs[0]:
            found.add(names[module])

    handles = [m.register_forward_hook(record) for m in model.modules() if isinstance(m, nn.Conv2d)]
    handles += [m.register_forward_pre_hook(check) for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        model(x)
    for handle in handles:
        handle.remove()
    return found


@pytest.mark.parametrize("model_class, size", [(BiSeNetV1, (70, 99)), (BiSeNetV2, (64, 96))])
def test_every_batchnorm_after_a_convolution_is_folded_and_the_logits_kept(model_class, size):
    model = random_statistics_model(model_class)
    x = torch.randn(1, 3, *size)
    after_conv = batchnorms_after_a_convolution(model, torch.randn(2, 3, *size))
    all_bn = {name for name, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}
    folded = copy.deepcopy(model)
    assert fold_batchnorm(folded) == len(after_conv)
    remaining = {name for name, m in folded.named_modules() if isinstance(m, nn.BatchNorm2d)}
    assert remaining == all_bn - after_conv  # V2: only the context embedding's BN, after a mean
    assert len(remaining) == (1 if model_class is BiSeNetV2 else 0)
    with torch.no_grad():
        assert_fp32_close(folded(x), model, x)


def test_onnx_export_tool(random_weights, tmp_path):
    import onnxruntime

    out = tmp_path / "model.onnx"
    result = run_tool("export_onnx.py", "--config", "configs/bisenetv1_synthetic.py", "--weights", random_weights,
                      "--out", out, "--size", "64", "128", "--dynamic")
    assert result.returncode == 0, result.stderr
    assert "largest logit difference" in result.stdout
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = torch.randn(1, 3, 80, 144)
    assert_fp32_close(session.run(None, {"image": x.numpy()})[0], random_statistics_model(), x)

    result = run_tool("export_onnx.py", "--config", "configs/bisenetv1_synthetic.py", "--weights", random_weights,
                      "--out", tmp_path / "labels.onnx", "--size", "64", "128", "--argmax")
    assert result.returncode == 0, result.stderr
    labels = onnxruntime.InferenceSession(str(tmp_path / "labels.onnx"), providers=["CPUExecutionProvider"])
    x = torch.randn(1, 3, 64, 128)
    expected = random_statistics_model()(x).argmax(1).numpy()
    assert (labels.run(None, {"image": x.numpy()})[0] == expected).mean() > 0.999


def test_torchscript_export_tool(random_weights, tmp_path):
    out = tmp_path / "model.pt"
    result = run_tool("export_torchscript.py", "--config", "configs/bisenetv1_synthetic.py", "--weights",
                      random_weights, "--out", out, "--size", "64", "128")
    assert result.returncode == 0, result.stderr
    x = torch.randn(1, 3, 72, 100)
    with torch.no_grad():
        assert_fp32_close(torch.jit.load(str(out))(x), random_statistics_model(), x)
    # Checked at another size than the traced one, within a tolerance of a few fp32 roundings.
    match = re.search(r"at 37x67: largest logit difference \(relative\) (\S+) \(tolerance (\S+), 8 x fp32's rounding\)",
                      result.stdout)
    assert match and f"wrote {out}: reloaded module vs PyTorch" in result.stdout, result.stdout
    difference, tolerance = float(match.group(1)), float(match.group(2))
    assert difference <= tolerance and 8 * 4 * EPS32 <= tolerance <= 1e-4


def test_a_torchscript_export_off_by_more_than_rounding_writes_nothing(random_weights, tmp_path, monkeypatch):
    """A fold that is wrong by 0.1% in one convolution, far less than any visible change, is more
    than the arithmetic allows: refused, nothing written."""
    import bisenet.deploy.export as export

    def wrong_fold(model):
        folded = fold_batchnorm(model)
        conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
        conv.weight.data *= 1.001
        return folded

    monkeypatch.setattr(export, "fold_batchnorm", wrong_fold)
    out = tmp_path / "m.pt"
    result = run_tool("export_torchscript.py", *export_args(random_weights, out))
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"so {out} was not written: reloaded module vs PyTorch at 37x67" in result.stderr
    assert "wrote" not in result.stdout and list(tmp_path.iterdir()) == []


def export_args(weights, out, *extra):
    return ["--config", "configs/bisenetv1_synthetic.py", "--weights", weights, "--out", out, "--size", "64", "128",
            *extra]


@pytest.mark.parametrize("flags, message", [
    (["--opset", "5"], "ONNX opset 5 is not one that torch"),
    (["--opset", "30"], "ONNX opset 30 is not one that torch"),
    (["--tolerance", "-1"], "argument --tolerance: -1 must be a finite number of at least 0"),
    (["--tolerance", "nan"], "argument --tolerance: nan must be a finite number of at least 0"),
    (["--int8", "--opset", "13"], "--int8 exports at opset 17"),
])
def test_onnx_options_out_of_range_are_refused_before_any_work(tmp_path, flags, message):
    from bisenet.deploy.export import supported_opsets

    # Weights that do not exist: the refusal must come before they are looked for.
    result = run_tool("export_onnx.py", *export_args(tmp_path / "nowhere.pth", tmp_path / "m.onnx", *flags))
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert message in result.stderr
    if "opset 5 " in message:
        opsets = supported_opsets()
        assert f"give {opsets[0]} to {opsets[-1]}" in result.stderr and opsets[0] >= 11
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("tool, name", [("export_onnx.py", "m.onnx"), ("export_torchscript.py", "m.pt")])
def test_export_out_paths_are_checked_first_and_their_folders_made(random_weights, tmp_path, tool, name):
    result = run_tool(tool, *export_args(tmp_path / "nowhere.pth", tmp_path))
    assert result.returncode == 1 and f"--out {tmp_path} is a folder" in result.stderr, result.stderr
    disk = tmp_path / "readonly"
    result = run_with_mounts(tool_argv(tool, *export_args(tmp_path / "nowhere.pth", disk / name)), {disk: "ro"})
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"cannot write --out {disk / name}: {disk} is not writable (Read-only file system)" in result.stderr

    out = tmp_path / "new" / "deeper" / name
    result = run_tool(tool, *export_args(random_weights, out))
    assert result.returncode == 0, result.stderr
    assert f"wrote {out}" in result.stdout and out.stat().st_size > 0
    assert sorted(p.name for p in out.parent.iterdir()) == [name]  # no temporary file beside


def test_an_export_that_fails_its_check_writes_nothing(random_weights, synthetic_root, tmp_path):
    out = tmp_path / "m.onnx"
    result = run_tool("export_onnx.py", *export_args(random_weights, out, "--tolerance", "0"))
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"so {out} was not written: onnxruntime vs PyTorch" in result.stderr and "wrote" not in result.stdout
    result = run_tool("export_onnx.py", *export_args(random_weights, out, "--int8", "--calib-images", "2",
                                                     "--tolerance", "0", f"data.root={synthetic_root}"))
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"so {out} was not written: 34 convolutions in int8" in result.stderr and "wrote" not in result.stdout
    assert list(tmp_path.iterdir()) == []
