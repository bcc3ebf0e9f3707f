"""bisenet.deploy.export: BatchNorm folding, ONNX and TorchScript files."""
import copy

import pytest
import torch
import torch.nn as nn

from bisenet.deploy.export import fold_batchnorm
from bisenet.models.bisenetv1 import BiSeNetV1
from bisenet.models.bisenetv2 import BiSeNetV2

from conftest import random_statistics_model, run_tool
from numerics import assert_fp32_close


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
