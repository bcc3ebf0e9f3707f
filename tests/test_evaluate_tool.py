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
from bisenet.data.cityscapes import CLASS_NAMES
from bisenet.data.loaders import build_eval_loader
from bisenet.engine.evaluator import evaluate
from bisenet.models.bisenetv1 import BiSeNetV1

from conftest import REPO, checkout_env, listed_files, run_tool, run_with_mounts, then_list_files, tool_argv


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
                         cwd=REPO, env=checkout_env(env), capture_output=True, text=True, timeout=300)
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


def printed_prediction_folders(stdout):
    """The folders of the "predictions ...: N images in A (...) and B" lines."""
    lines = [line for line in stdout.splitlines() if line.startswith("predictions")]
    return lines, [part.split(" ")[0] for line in lines for part in line.split(" images in ")[1].split(" and ")]


def test_several_modes_save_each_modes_predictions_in_its_own_folder(synthetic_root, weights, tmp_path):
    pred = tmp_path / "pred"
    result = run_tool("evaluate.py", *evaluate_args(synthetic_root, weights, tmp_path / "out.json", "--modes", "ss,msf",
                                                    "--scales", "0.75", "1.0", "--save-pred", pred))
    assert result.returncode == 0, result.stderr
    for mode in ("ss", "msf"):
        for kind in ("labelIds", "color"):
            assert len(glob.glob(str(pred / mode / kind / "*" / "*.png"))) == 3, (mode, kind)
    assert not (pred / "labelIds").exists()
    lines, folders = printed_prediction_folders(result.stdout)
    assert len(lines) == 2 and "predictions of msf: 3 images in" in lines[1]
    assert sorted(folders) == sorted(str(pred / m / k) for m in ("ss", "msf") for k in ("labelIds", "color"))
    assert all(os.path.isdir(folder) for folder in folders)  # nothing claimed that is not there

    # One mode keeps the official layout directly under DIR.
    result = run_tool("evaluate.py", *evaluate_args(synthetic_root, weights, tmp_path / "one.json", "--save-pred",
                                                    tmp_path / "one"))
    assert result.returncode == 0, result.stderr
    assert printed_prediction_folders(result.stdout)[1] == [str(tmp_path / "one" / "labelIds"),
                                                            str(tmp_path / "one" / "color")]
    assert len(glob.glob(str(tmp_path / "one" / "labelIds" / "*" / "*.png"))) == 3


def test_modes_take_the_scales_and_crops_given_and_say_so(synthetic_root, weights, tmp_path):
    result = run_tool("evaluate.py", *evaluate_args(synthetic_root, weights, tmp_path / "out.json", "--modes",
                                                    "ss,msf,ssc", "--scales", "0.75", "1.25", "--crop-size", "48",
                                                    "64", "--crop-stride", "24", "64"))
    assert result.returncode == 0, result.stderr
    modes = json.loads((tmp_path / "out.json").read_text())["modes"]
    ran = {name: (m["scales"], m["flip"], m["crop_size"], m["crop_stride"]) for name, m in modes.items()}
    assert ran == {"ss": ([1.0], False, None, None), "msf": ([0.75, 1.25], True, None, None),
                   "ssc": ([1.0], False, [48, 64], [24, 64])}
    assert "msf: scales [0.75, 1.25], flip True, crop None," in result.stdout
    assert "ssc: scales [1.0], flip False, crop [48, 64], stride [24, 64]," in result.stdout


@pytest.mark.parametrize("flags, message", [
    (["--modes", "ss,msf", "--flip"], "--flip and --modes both choose the flip: give one"),
    (["--modes", "ss,msf", "--msc"], "--msc and --modes both choose the scales: give one"),
    (["--modes", "ss,ssc", "--crop"], "--crop and --modes both choose the sliding crops: give one"),
    (["--modes", "ss,ssc", "--scales", "0.5", "1"], "--scales applies to the multi-scale modes (ms...) and --modes "
                                                    "ss,ssc has none"),
    (["--modes", "ss,msf", "--crop-size", "32", "32"], "--crop-size applies to the crop modes"),
    (["--modes", "all", "--crop-stride", "16", "16", "--crop-size", "8", "8"], "crop stride [16, 16] must be between "
                                                                               "1 and the crop size [8, 8]"),
    (["--modes", "ss,ms", "--scales", "1"], "--modes ss,ms runs ss and ms the same way"),
    (["--modes", "ss,ss"], "--modes ss,ss lists ss twice"),
    (["--crop", "--crop-size", "32", "32", "--crop-stride", "40", "8"], "crop stride [40, 8] must be between 1 and "
                                                                        "the crop size [32, 32] in each dimension"),
    (["--scales", "0"], "argument --scales: 0 must be a positive number"),
    (["--scales", "1", "-0.5"], "argument --scales: -0.5 must be a positive number"),
    (["--crop-size", "0", "0"], "argument --crop-size: 0 must be at least 1"),
    (["--crop-stride", "0", "0"], "argument --crop-stride: 0 must be at least 1"),
])
def test_options_without_a_meaning_are_refused_before_any_work(synthetic_root, tmp_path, flags, message):
    # Weights that do not exist: the refusal must come before they are looked for.
    result = run_tool("evaluate.py", *evaluate_args(synthetic_root, str(tmp_path / "nowhere.pth"),
                                                    tmp_path / "out.json", *flags))
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert message in result.stderr
    assert os.listdir(tmp_path) == []


def test_output_paths_are_checked_before_any_work(synthetic_root, tmp_path):
    (tmp_path / "taken").write_text("x")
    nowhere = str(tmp_path / "nowhere.pth")  # refused before the weights are looked for
    for flags, message in ((["--json", tmp_path], f"--json {tmp_path} is a folder"),
                           (["--plots", tmp_path / "taken"], f"--plots {tmp_path / 'taken'} is a file, not a folder"),
                           (["--save-pred", tmp_path / "taken"], f"--save-pred {tmp_path / 'taken'} is a file")):
        result = run_tool("evaluate.py", *evaluate_args(synthetic_root, nowhere, tmp_path / "out.json", *flags))
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        assert message in result.stderr, result.stderr
    assert os.listdir(tmp_path) == ["taken"]


def test_a_read_only_or_full_disk_is_named_and_claims_nothing(synthetic_root, weights, tmp_path):
    read_only, small = tmp_path / "readonly", tmp_path / "small"
    result = run_with_mounts(tool_argv("evaluate.py", *evaluate_args(synthetic_root, weights, read_only / "eval.json")),
                             {read_only: "ro"})
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"cannot write --json {read_only / 'eval.json'}: {read_only} is not writable (Read-only file system)" \
        in result.stderr
    assert "mIoU" not in result.stdout  # refused before the evaluation

    # Two pages of tmpfs: the first PNGs fit, a later one does not.
    argv = tool_argv("evaluate.py", *evaluate_args(synthetic_root, weights, tmp_path / "out.json", "--save-pred",
                                                   small / "pred"))
    result = run_with_mounts(then_list_files(argv, small), {small: "size=8k"})
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"no space left on {small} while writing {small / 'pred'}" in result.stderr
    assert "predictions" not in result.stdout
    left = listed_files(result.stdout)
    assert left and all(size > 0 and ".tmp-" not in path for path, size in left.items()), left  # whole PNGs only
