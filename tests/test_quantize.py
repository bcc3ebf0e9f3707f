"""bisenet.deploy.quantize: int8 models calibrated on the training split, their accuracy against
fp32 on a trained model, which layers stay fp32, and the export tool's --int8."""
import glob
import io

import cv2
import numpy as np
import onnx
import pytest
import torch

from bisenet.data.calibration import calibration_inputs
from bisenet.data.loaders import build_eval_loader
from bisenet.deploy.quantize import count_quantized, fp32_nodes, quantize_int8
from bisenet.deploy.runtime import OnnxRuntimeModel, make_fast
from bisenet.inference import predict
from bisenet.metrics import ConfusionMatrix, scores

from conftest import random_statistics_model, run_tool


@pytest.mark.parametrize("tool, args, otherwise", [
    ("demo.py", ["{image}", "--precision", "int8"], "use fp32 instead (--fast, or --precision fp32)"),
    ("evaluate.py", ["--precision", "int8"], "use fp32 instead (--fast, or --precision fp32)"),
    ("export_onnx.py", ["--int8", "--out", "{tmp}/m.onnx"], "export in fp32 (without --int8)"),
])
def test_int8_without_its_training_split_says_it_needs_it_to_calibrate(random_weights, tmp_path, tool, args,
                                                                       otherwise):
    image = tmp_path / "street.png"
    cv2.imwrite(str(image), np.zeros((64, 128, 3), np.uint8))
    root = tmp_path / "nowhere"
    args = [a.format(image=image, tmp=tmp_path) for a in args]
    result = run_tool(tool, *args, "--config", "configs/bisenetv1_synthetic.py", "--weights", random_weights,
                      "--calib-images", "4", f"data.root={root}")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert (f"int8 calibrates on 4 images of the config's training split (data.train_split='train' under "
            f"data.root={root}), which cannot be read: {root}/leftImg8bit/train does not exist. Point data.root at a "
            f"dataset of the kind the model was trained on (data.root=/path/to/it), or {otherwise}") in result.stderr
    assert "Register" not in result.stderr


def test_calibration_images_are_training_images_preprocessed_for_inference(tiny_cfg):
    got = calibration_inputs(tiny_cfg, 3, seed=1)
    mean, std = np.array(tiny_cfg.data.mean), np.array(tiny_cfg.data.std)
    expected = {}
    for path in glob.glob(f"{tiny_cfg.data.root}/leftImg8bit/train/*/*.png"):
        rgb = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB) / 255.0
        expected[path] = ((rgb - mean) / std).transpose(2, 0, 1)[None].astype(np.float32)
    assert len(got) == 3 and all(image.dtype == np.float32 for image in got)
    matches = [[name for name, image in expected.items() if np.allclose(image, g, atol=1e-6)] for g in got]
    assert all(len(m) == 1 for m in matches) and len({m[0] for m in matches}) == 3  # three distinct images
    assert len(calibration_inputs(tiny_cfg, 100)) == len(expected)  # asking for more takes them all


def _weights_of(graph):
    """Conv node name -> the element type of the initializer its weight comes from (through a
    DequantizeLinear when quantised)."""
    initializers = {t.name: t.data_type for t in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    types = {}
    for node in graph.node:
        if node.op_type == "Conv":
            weight = node.input[1]
            while weight not in initializers:
                weight = producer[weight].input[0]
            types[node.name] = initializers[weight]
    return types


def test_every_convolution_but_the_classifier_is_int8_and_the_output_stays_fp32():
    model = random_statistics_model()
    data = quantize_int8(model, [np.random.default_rng(0).standard_normal((1, 3, 64, 128), np.float32)])
    graph = onnx.load(io.BytesIO(data)).graph
    weights = _weights_of(graph)
    kept = fp32_nodes(graph)
    assert len(weights) == 35 and len(kept) == 2  # the classifier conv and the final Resize
    classifier = [name for name in kept if name in weights]
    assert [weights[name] for name in classifier] == [onnx.TensorProto.FLOAT]
    assert all(t == onnx.TensorProto.INT8 for name, t in weights.items() if name not in classifier)
    assert count_quantized(data) == (34, 1)
    final = next(node for node in graph.node if node.output[0] == graph.output[0].name)
    assert final.op_type == "Resize" and final.name in kept
    assert graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    # Any input size runs.
    logits = OnnxRuntimeModel(data)(torch.randn(1, 3, 96, 160))
    assert logits.shape == (1, 19, 96, 160) and torch.isfinite(logits).all()


@pytest.mark.slow
def test_int8_agrees_with_fp32_on_a_trained_model(trained_tiny):
    cfg, trained, _ = trained_tiny
    int8 = make_fast(trained, "cpu", "int8", calibration_inputs(cfg, 6))
    matrices = {name: ConfusionMatrix(19, 255) for name in ("fp32", "int8")}
    agree = total = 0
    with torch.no_grad():
        for batch in build_eval_loader(cfg):
            preds = {name: predict(m, batch["image"], 19, protocol=cfg.eval.protocol)
                     for name, m in (("fp32", trained), ("int8", int8))}
            agree += int((preds["fp32"] == preds["int8"]).sum())
            total += preds["fp32"].numel()
            for name, pred in preds.items():
                matrices[name].update(pred, batch["label"])
    miou = {name: scores(m.counts)["miou"] for name, m in matrices.items()}
    assert agree / total >= 0.99, agree / total
    assert abs(miou["int8"] - miou["fp32"]) <= 0.005, miou


def test_int8_on_cuda_is_refused():
    with pytest.raises(Exception, match="int8 inference runs on the CPU"):
        make_fast(random_statistics_model(), "cuda", "int8", [])


@pytest.mark.slow
def test_export_tool_int8(trained_tiny, tmp_path):
    cfg, _, weights = trained_tiny
    out = tmp_path / "model_int8.onnx"
    result = run_tool("export_onnx.py", "--config", "configs/bisenetv1_synthetic.py", f"data.root={cfg.data.root}",
                      "--weights", weights, "--out", out, "--int8", "--calib-images", "4")
    assert result.returncode == 0, result.stderr
    assert "34 convolutions in int8, 1 in fp32, calibrated on 4 images" in result.stdout
    assert count_quantized(out.read_bytes()) == (34, 1)
    result = run_tool("export_onnx.py", "--config", "configs/bisenetv1_synthetic.py", f"data.root={cfg.data.root}",
                      "--weights", weights, "--out", out, "--int8", "--argmax")
    assert result.returncode == 1 and "--int8 writes logits" in result.stderr
