"""Fast inference, exports, the benchmark tool and the demo on folders and videos."""
import json
import os

import cv2
import numpy as np
import pytest
import torch
import torch.nn as nn

from bisenet.benchmark import count_flops
from bisenet.checkpoint import save_checkpoint
from bisenet.deploy import FastModel, fold_batchnorm, make_fast
from bisenet.models.bisenetv1 import BiSeNetV1
from conftest import run_tool
from numerics import assert_fp32_close


def random_statistics_model(seed=0):
    torch.manual_seed(seed)
    model = BiSeNetV1(19)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


@pytest.fixture(scope="module")
def model():
    return random_statistics_model()


@pytest.fixture(scope="module")
def weights(model, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("w") / "model.pth")
    save_checkpoint({"model": model.state_dict()}, path)
    return path


def test_folding_batchnorm_keeps_the_logits(model):
    import copy

    folded = copy.deepcopy(model)
    assert fold_batchnorm(folded) == sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 36
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    x = torch.randn(1, 3, 70, 99)
    with torch.no_grad():
        assert_fp32_close(folded(x), model, x)


@pytest.mark.parametrize("size", [(64, 128), (75, 131)])
def test_fast_model_matches_eager(model, size):
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        assert_fp32_close(make_fast(model, "cpu")(x), model, x)
        assert_fp32_close(FastModel(model)(x), model, x)  # the TorchScript path


def test_bf16_agrees_with_fp32_on_a_trained_model(synthetic_root, tmp_path):
    from bisenet.config import load_config
    from bisenet.data import build_eval_loader
    from bisenet.engine.trainer import train
    from conftest import REPO

    cfg = load_config(f"{REPO}/configs/bisenetv1_synthetic.py",
                      [f"data.root={synthetic_root}", f"train.output_dir={tmp_path}", "data.crop_size=[64,64]",
                       "data.num_workers=0", "eval.num_workers=0", "train.max_iters=60", "train.batch_size=4",
                       "train.warmup_iters=5", "train.eval_interval=0", "train.base_lr=0.02"])
    trained, _ = train(cfg, "cpu", progress=False)
    trained.eval()
    images = torch.cat([batch["image"] for batch in build_eval_loader(cfg)])
    with torch.no_grad():
        reference = trained(images).argmax(1)
        agreement = (FastModel(trained, torch.bfloat16)(images).argmax(1) == reference).float().mean()
        exact = (make_fast(trained, "cpu")(images).argmax(1) == reference).float().mean()
    assert agreement >= 0.995 and exact >= 0.9999, (float(agreement), float(exact))


def test_flops_are_counted(model):
    # An independent count: 2 x multiply-adds of every convolution, from forward hooks.
    total = []

    def hook(module, inputs, output):
        kernel = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
        total.append(2 * kernel * output.numel())

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    counted = count_flops(model, (128, 256))
    for handle in handles:
        handle.remove()
    assert counted == sum(total)
    assert counted * 64 == pytest.approx(236.7e9, rel=2e-3)  # the reference's 1024x2048 figure


def test_onnx_export_tool(weights, tmp_path):
    import onnxruntime

    out = tmp_path / "model.onnx"
    result = run_tool("export_onnx.py", "--config", "configs/bisenetv1_synthetic.py", "--weights", weights,
                      "--out", str(out), "--size", "64", "128", "--dynamic")
    assert result.returncode == 0, result.stderr
    assert "largest logit difference" in result.stdout
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = torch.randn(1, 3, 80, 144)
    assert_fp32_close(session.run(None, {"image": x.numpy()})[0], random_statistics_model(), x)

    result = run_tool("export_onnx.py", "--config", "configs/bisenetv1_synthetic.py", "--weights", weights,
                      "--out", str(tmp_path / "labels.onnx"), "--size", "64", "128", "--argmax")
    assert result.returncode == 0, result.stderr
    labels = onnxruntime.InferenceSession(str(tmp_path / "labels.onnx"), providers=["CPUExecutionProvider"])
    x = torch.randn(1, 3, 64, 128)
    assert labels.run(None, {"image": x.numpy()})[0].shape == (1, 64, 128)


def test_torchscript_export_tool(weights, tmp_path):
    out = tmp_path / "model.pt"
    result = run_tool("export_torchscript.py", "--config", "configs/bisenetv1_synthetic.py", "--weights", weights,
                      "--out", str(out), "--size", "64", "128")
    assert result.returncode == 0, result.stderr
    x = torch.randn(1, 3, 72, 100)
    with torch.no_grad():
        assert_fp32_close(torch.jit.load(str(out))(x), random_statistics_model(), x)


def test_benchmark_tool(tmp_path):
    out = tmp_path / "bench.json"
    result = run_tool("benchmark.py", "--config", "configs/bisenetv1_city.py", "--size", "64", "128", "--mode",
                      "eager", "fast", "onnx", "--runs", "2", "--warmup", "1", "--json", str(out))
    assert result.returncode == 0, result.stderr
    records = json.loads(out.read_text())
    assert [r["mode"] for r in records] == ["eager", "fast", "onnx"]
    assert all(r["parameters"] == 13_425_721 and r["median_s"] > 0 and r["peak_memory_bytes"] > 0 for r in records)
    assert "GFLOPs" in result.stdout and "FPS" in result.stdout


def test_demo_on_a_folder_and_a_video(weights, synthetic_root, tmp_path):
    import glob
    import shutil

    folder = tmp_path / "images"
    folder.mkdir()
    for path in sorted(glob.glob(f"{synthetic_root}/leftImg8bit/val/*/*.png"))[:2]:
        shutil.copy(path, folder)
    common = ["--config", "configs/bisenetv1_synthetic.py", "--weights", weights, "--out-dir", str(tmp_path / "out")]
    result = run_tool("demo.py", str(folder), *common, "--fast")
    assert result.returncode == 0, result.stderr
    assert len(glob.glob(str(tmp_path / "out" / "*_color.png"))) == 2
    assert len(glob.glob(str(tmp_path / "out" / "*_overlay.png"))) == 2

    # Two images of one name in different formats: both results are kept.
    same = tmp_path / "same"
    same.mkdir()
    image = cv2.imread(sorted(glob.glob(f"{synthetic_root}/leftImg8bit/val/*/*.png"))[0])
    cv2.imwrite(str(same / "x.png"), image)
    cv2.imwrite(str(same / "x.jpg"), image)
    result = run_tool("demo.py", str(same), *common[:-1], str(tmp_path / "same_out"))
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(tmp_path / "same_out")) == ["x_jpg_color.png", "x_jpg_overlay.png", "x_png_color.png",
                                                         "x_png_overlay.png"]

    video = str(tmp_path / "street.mp4")
    writer = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*"mp4v"), 10, (128, 64))
    for k in range(5):
        writer.write(np.full((64, 128, 3), 40 * k, np.uint8))
    writer.release()
    result = run_tool("demo.py", video, *common)
    assert result.returncode == 0, result.stderr
    for suffix in ("color", "overlay"):
        capture = cv2.VideoCapture(str(tmp_path / "out" / f"street_{suffix}.mp4"))
        assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 5
        assert (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))) == (128, 64)
