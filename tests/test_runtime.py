"""bisenet.deploy.runtime: the fast inference forms agree with the eager model, and each runs
what it says: onnxruntime sessions of the folded (or int8) graph, else a TorchScript graph."""
import pytest
import torch

import bisenet.deploy.runtime as runtime
from bisenet.data.loaders import build_eval_loader
from bisenet.deploy.quantize import count_quantized, random_calibration_inputs
from bisenet.deploy.runtime import FastModel, make_fast
from bisenet.errors import MissingExtraError

from conftest import random_statistics_model
from numerics import assert_fp32_close


@pytest.fixture(scope="module")
def model():
    return random_statistics_model()


@pytest.fixture
def sessions(monkeypatch):
    """Each onnxruntime session made, as ``{"model": the bytes it was made of, "runs": count}``."""
    made = []
    real = runtime.onnx_session

    def counted_session(model_file, threads=None):
        session = real(model_file, threads)
        entry = {"model": model_file, "runs": 0}
        made.append(entry)

        class Counted:
            def run(self, *args, **kwargs):
                entry["runs"] += 1
                return session.run(*args, **kwargs)

        return Counted()

    monkeypatch.setattr(runtime, "onnx_session", counted_session)
    return made


def operators(model_bytes):
    import onnx

    return {node.op_type for node in onnx.load_from_string(model_bytes).graph.node}


@pytest.mark.parametrize("size", [(64, 128), (75, 131)])
def test_fast_model_matches_eager(model, sessions, size):
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        fast = make_fast(model, "cpu")
        assert_fp32_close(fast(x), model, x)
        assert_fp32_close(FastModel(model)(x), model, x)  # the TorchScript path
    # The logits came from one onnxruntime run of the exported graph, BatchNorm folded into it.
    assert [entry["runs"] for entry in sessions] == [1]
    assert "Conv" in operators(sessions[0]["model"]) and "BatchNormalization" not in operators(sessions[0]["model"])


def test_int8_runs_the_quantised_graph(model, sessions):
    calibration = random_calibration_inputs(2, (64, 128))
    x = torch.from_numpy(calibration[0])
    with torch.no_grad():
        fast = make_fast(model, "cpu", "int8", calibration)
        got, expected = fast(x), model(x)
    assert [entry["runs"] for entry in sessions] == [1]
    quantized, kept = count_quantized(sessions[0]["model"])
    assert quantized > kept >= 1 and {"QuantizeLinear", "DequantizeLinear"} <= operators(sessions[0]["model"])
    # int8 arithmetic: not fp32's logits, but within a few percent of the largest (each activation
    # rounded to 2^-8 of its calibrated range, over some twenty layers; 3% measured here).
    error = float((got - expected).abs().max() / expected.abs().max())
    assert 0 < error < 0.1, error


def test_without_onnxruntime_the_cpu_path_is_torchscript_and_onnx_says_what_to_install(model, sessions, monkeypatch):
    def missing(module, extra, feature):
        raise MissingExtraError(f"{feature} needs {module}, which is not installed: pip install -e \".[{extra}]\"")

    monkeypatch.setattr(runtime, "require", missing)
    x = torch.randn(1, 3, 75, 131)
    with torch.no_grad():
        assert_fp32_close(make_fast(model, "cpu")(x), model, x)
    assert sessions == []
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
