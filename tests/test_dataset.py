"""A dataset of one's own: 5 classes, JPEG images, masks with a label map, configs/custom_dataset.py."""
import json

import cv2
import numpy as np
import pytest

from conftest import run_tool

VALUES = (0, 10, 20, 30, 40)  # mask values of the 5 classes; 255 is unlabelled


@pytest.fixture(scope="module")
def custom_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("my_dataset")
    rng = np.random.default_rng(0)
    colours = rng.integers(0, 255, size=(5, 3))
    for split, count in (("train", 6), ("val", 2)):
        (root / "images" / split / "site").mkdir(parents=True)
        (root / "masks" / split / "site").mkdir(parents=True)
        for i in range(count):
            classes = rng.integers(0, 5, size=(4, 8))
            mask = cv2.resize(classes.astype(np.uint8), (128, 64), interpolation=cv2.INTER_NEAREST)
            image = colours[mask].astype(np.uint8)
            raw = np.array(VALUES, np.uint8)[mask]
            raw[:4] = 255
            cv2.imwrite(str(root / "images" / split / "site" / f"{i:03d}.jpg"), image)
            cv2.imwrite(str(root / "masks" / split / "site" / f"{i:03d}.png"), raw)
    return root


def overrides(root, tmp_path):
    return ["--config", "configs/custom_dataset.py", f"data.root={root}", f"train.output_dir={tmp_path / 'run'}",
            "model.backbone_weights=", "data.crop_size=[64,64]", "data.num_workers=0", "eval.num_workers=0",
            "train.batch_size=2", "train.eval_interval=0", "eval.crop_size=[64,64]"]


def test_custom_dataset_checks_trains_and_evaluates(custom_root, tmp_path):
    result = run_tool("check_dataset.py", *overrides(custom_root, tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "vehicle" in result.stdout and "no problems found" in result.stdout

    result = run_tool("train.py", *overrides(custom_root, tmp_path), "train.max_iters=3", "train.warmup_iters=1")
    assert result.returncode == 0, result.stderr
    assert "vegetation" in result.stdout and "sky" not in result.stdout  # the custom class names

    out = tmp_path / "scores.json"
    result = run_tool("evaluate.py", *overrides(custom_root, tmp_path), "--json", str(out), "--msc", "--crop",
                      "--save-pred", str(tmp_path / "pred"))
    assert result.returncode == 0, result.stderr
    scores = json.loads(out.read_text())
    assert list(scores["per_class"]) == ["background", "road", "building", "vegetation", "vehicle"]
    assert np.array(scores["confusion_matrix"]).shape == (5, 5)
    saved = cv2.imread(str(tmp_path / "pred" / "labelIds" / "site" / "000.png"), cv2.IMREAD_UNCHANGED)
    assert saved.shape == (64, 128) and set(np.unique(saved)) <= set(VALUES)  # the masks' own values


def test_a_mask_value_missing_from_the_map_is_reported(custom_root, tmp_path):
    result = run_tool("check_dataset.py", *overrides(custom_root, tmp_path),
                      "data.label_map={0:0,10:1,20:2,30:3,255:255}")
    assert result.returncode == 1
    assert "[40]" in result.stdout and "data.label_map" in result.stdout
