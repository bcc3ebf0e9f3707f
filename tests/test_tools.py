"""The command-line tools end to end, as a user runs them."""
import os

import cv2

from conftest import run_tool


def test_train_evaluate_demo(synthetic_root, tmp_path):
    output_dir = tmp_path / "run"
    common = ["--config", "configs/bisenetv1_synthetic.py", f"data.root={synthetic_root}",
              f"train.output_dir={output_dir}", "data.crop_size=[64,64]", "data.num_workers=0", "eval.num_workers=0"]
    result = run_tool("train.py", *common, "train.max_iters=3", "train.batch_size=2", "train.warmup_iters=1",
                      "train.eval_interval=2")
    assert result.returncode == 0, result.stderr
    assert (output_dir / "model_final.pth").is_file() and (output_dir / "model_best.pth").is_file()
    assert "mIoU" in result.stdout and "road" in result.stdout
    assert "iter 3/3" in (output_dir / "log.txt").read_text()

    result = run_tool("plot_log.py", str(output_dir))
    assert result.returncode == 0, result.stderr
    assert cv2.imread(str(output_dir / "curves.png")) is not None

    result = run_tool("evaluate.py", *common)
    assert result.returncode == 0, result.stderr
    assert "mIoU" in result.stdout and "bicycle" in result.stdout

    image = os.path.join(synthetic_root, "leftImg8bit", "val", "frankfurt", "frankfurt_000000_000019_leftImg8bit.png")
    result = run_tool("demo.py", image, *common, "--out-dir", str(tmp_path / "demo"))
    assert result.returncode == 0, result.stderr
    for suffix in ("color", "overlay"):
        written = cv2.imread(str(tmp_path / "demo" / f"frankfurt_000000_000019_leftImg8bit_{suffix}.png"))
        assert written is not None and written.shape == cv2.imread(image).shape
