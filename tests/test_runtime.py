"""bisenet.deploy.runtime: the fast inference forms agree with the eager model."""
import pytest
import torch

import bisenet.deploy.runtime as runtime
from bisenet.data.loaders import build_eval_loader
from bisenet.deploy.runtime import FastModel, OnnxRuntimeModel, make_fast
from bisenet.errors import MissingExtraError

from conftest import random_statistics_model
from numerics import assert_fp32_close


@pytest.fixture(scope="module")
def model():
    return random_statistics_model()


@pytest.mark.parametrize("size", [(64, 128), (75, 131)])
def test_fast_model_matches_eager(model, size):
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        fast = make_fast(model, "cpu")
        assert isinstance(fast, OnnxRuntimeModel)
        assert_fp32_close(fast(x), model, x)
        assert_fp32_close(FastModel(model)(x), model, x)  # the TorchScript path


def test_without_onnxruntime_the_cpu_path_is_torchscript_and_onnx_says_what_to_install(model, monkeypatch):
    def missing(module, extra, feature):
        raise MissingExtraError(f"{feature} needs {module}, which is not installed: pip install -e \".[{extra}]\"")

    monkeypatch.setattr(runtime, "require", missing)
    assert isinstance(make_fast(model, "cpu"), FastModel)
    with pytest.raises(MissingExtraError, match=r'pip install -e "\.\[deploy\]"'):
        runtime.onnx_session(b"")


@pytest.mark.slow
def test_bf16_agrees_with_fp32_on_a_trained_model(trained_tiny):
    cfg, trained, _ = trained_tiny
    images = torch.cat([batch["image"] for batch in build_eval_loader(cfg)])
    with torch.no_grad():
        reference = trained(images).argmax(1)
        agreement = (make_fast(trained, "cpu", "bf16")(images).argmax(1) == reference).float().mean()
        exact = (make_fast(trained, "cpu")(images).argmax(1) == reference).float().mean()
    # bf16 keeps 8 significant bits: only pixels whose two best classes are that close can flip.
    assert agreement >= 0.995 and exact >= 0.9999, (float(agreement), float(exact))
