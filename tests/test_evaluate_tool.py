"""tools/evaluate.py and the evaluator against the official Cityscapes evaluation."""
import glob
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
import torch.nn as nn

from bisenet.checkpoint import save_checkpoint
from bisenet.config import load_config
from bisenet.data import build_eval_loader
from bisenet.data.cityscapes import CLASS_NAMES
from bisenet.engine.evaluator import evaluate
from bisenet.models.bisenetv1 import BiSeNetV1

from conftest import REPO, run_tool


class ColourClassifier(nn.Module):
    """A fixed random per-pixel classifier: many classes, partly right on the synthetic data."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 19, 3, padding=1)
        nn.init.normal_(self.conv.weight, std=2.0)

    def forward(self, x):
        return self.conv(x)


def official_scores(pred_dir, synthetic_root):
    official = pytest.importorskip("cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling")
    args = official.args
    args.evalInstLevelScore = False  # needs np.in1d, gone in numpy >= 2.4; pixel-level IoU does not use it
    args.JSONOutput = False
    args.quiet = True
    args.predictionPath = pred_dir
    args.predictionWalk = None
    ground_truth = sorted(glob.glob(os.path.join(synthetic_root, "gtFine", "val", "*", "*_gtFine_labelIds.png")))
    predictions = [official.getPrediction(args, gt) for gt in ground_truth]
    return official.evaluateImgLists(predictions, ground_truth, args)


def test_saved_predictions_give_the_official_miou(synthetic_root, tmp_path):
    cfg = load_config(os.path.join(REPO, "configs", "bisenetv1_synthetic.py"),
                      [f"data.root={synthetic_root}", "eval.num_workers=0", "eval.batch_size=2"])
    ours = evaluate(ColourClassifier(), build_eval_loader(cfg), 19, "cpu", save_pred_dir=str(tmp_path / "pred"),
                    progress=False)
    saved = sorted(glob.glob(str(tmp_path / "pred" / "labelIds" / "*" / "*.png")))
    assert len(saved) == 3 and len(glob.glob(str(tmp_path / "pred" / "color" / "*" / "*.png"))) == 3
    label_ids = cv2.imread(saved[0], cv2.IMREAD_UNCHANGED)
    assert label_ids.ndim == 2 and label_ids.shape == (64, 128) and label_ids.dtype == np.uint8
    assert set(np.unique(label_ids)) <= {7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33}

    theirs = official_scores(str(tmp_path / "pred" / "labelIds"), synthetic_root)
    assert np.isfinite(ours["iou"]).sum() >= 10 and (ours["iou"] > 0).sum() >= 3
    for name, iou in zip(CLASS_NAMES, ours["iou"]):
        official = theirs["classScores"][name]
        assert (np.isnan(iou) and np.isnan(official)) or iou == pytest.approx(official, abs=1e-12), name
    assert ours["miou"] == pytest.approx(theirs["averageScoreClasses"], abs=1e-12)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    model = BiSeNetV1(19)
    for module in model.modules():  # non-trivial BN statistics, so predictions vary
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 2.0)
    path = str(tmp_path_factory.mktemp("weights") / "model.pth")
    save_checkpoint({"model": model.state_dict()}, path)
    return path


def evaluate_args(synthetic_root, weights, out_json, *extra):
    return ["--config", "configs/bisenetv1_synthetic.py", f"data.root={synthetic_root}", "eval.num_workers=0",
            "eval.batch_size=1", "--weights", weights, "--json", str(out_json), *extra]


@pytest.mark.slow
def test_two_processes_equal_one(synthetic_root, weights, tmp_path):
    # One thread per process in both runs: every image then goes through the same kernels with the
    # same work split, so its logits, and the confusion matrices, are equal to the bit on any CPU.
    env = dict(os.environ, OMP_NUM_THREADS="1")
    one = run_tool("evaluate.py", *evaluate_args(synthetic_root, weights, tmp_path / "one.json", "--flip"), env=env)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          os.path.join(REPO, "tools", "evaluate.py"),
                          *evaluate_args(synthetic_root, weights, tmp_path / "two.json", "--flip")],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr
    assert "2 process(es)" in two.stdout and "1 process(es)" in one.stdout
    one, two = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("one", "two"))
    assert one["num_images"] == two["num_images"] == 3  # 3 images over 2 processes: none counted twice
    assert one["confusion_matrix"] == two["confusion_matrix"]


@pytest.mark.parametrize("flags, mode", [([], "ss"), (["--crop", "--crop-size", "48", "64"], "ssc"),
                                         (["--msc", "--flip", "--scales", "0.75", "1.25"], "msf"),
                                         (["--msc", "--crop", "--flip", "--scales", "0.5", "1.0"], "mscf")])
def test_modes(synthetic_root, weights, tmp_path, flags, mode):
    result = run_tool("evaluate.py", *evaluate_args(synthetic_root, weights, tmp_path / "out.json", *flags))
    assert result.returncode == 0, result.stderr
    data = json.loads((tmp_path / "out.json").read_text())
    assert data["mode"] == mode and data["num_images"] == 3
    assert f"{mode}:" in result.stdout and "mIoU" in result.stdout
    matrix = np.array(data["confusion_matrix"])
    assert matrix.sum() > 0 and 0 <= data["miou"] <= 1


@pytest.mark.slow
def test_int8_evaluation_and_demo_use_the_model_calibrated_on_the_training_split(trained_tiny, tmp_path):
    cfg, _, weights = trained_tiny
    common = ["--config", "configs/bisenetv1_synthetic.py", f"data.root={cfg.data.root}", "eval.num_workers=0",
              "--weights", weights]
    scores = {}
    for name, flags in (("fp32", []), ("int8", ["--precision", "int8", "--calib-images", "6"])):
        result = run_tool("evaluate.py", *common, *flags, "--json", tmp_path / f"{name}.json")
        assert result.returncode == 0, result.stderr
        scores[name] = json.loads((tmp_path / f"{name}.json").read_text())
    assert "fast inference (int8)" in result.stdout
    assert abs(scores["int8"]["miou"] - scores["fp32"]["miou"]) <= 0.005
    assert scores["int8"]["confusion_matrix"] != scores["fp32"]["confusion_matrix"]  # int8 really ran
    image = sorted(glob.glob(f"{cfg.data.root}/leftImg8bit/val/*/*.png"))[0]
    result = run_tool("demo.py", image, *common, "--precision", "int8", "--calib-images", "2", "--out-dir", tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(glob.glob(str(tmp_path / "*_color.png"))) == 1
