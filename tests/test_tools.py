"""The command-line tools end to end, as a user runs them."""
import os

import cv2

from conftest import run_tool, run_with_mounts, tool_argv


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


def refused_quietly(result, path):
    """Exit 1 with one line naming ``path``, no traceback."""
    lines = result.stderr.strip().splitlines()
    return (result.returncode == 1 and "Traceback" not in result.stderr and len(lines) == 1
            and str(path) in lines[0]), result.stderr


def test_every_output_path_is_checked_before_the_work(synthetic_root, trained_tiny, tmp_path):
    """A file where a folder is meant, or a folder where a file is meant: one sentence before
    any work, and nothing written."""
    cfg, _, weights = trained_tiny
    taken = tmp_path / "taken"
    taken.write_text("mine")
    folder = tmp_path / "folder"
    folder.mkdir()
    common = ["--config", "configs/bisenetv1_synthetic.py", f"data.root={synthetic_root}", "data.num_workers=0",
              "eval.num_workers=0"]
    metrics = os.path.join(cfg.train.output_dir, "metrics.jsonl")
    cases = [
        ("train.py", [*common, f"train.output_dir={taken}", "train.max_iters=2", "train.warmup_iters=1"], taken),
        ("train.py", [*common, f"train.output_dir={taken / 'run'}", "train.max_iters=2", "train.warmup_iters=1"],
         taken),
        ("plot_log.py", [metrics, "--out", folder], folder),
        ("browse_dataset.py", [*common, "--out", taken], taken),
        ("plot_results.py", [metrics, "--out", taken], taken),
        ("check_dataset.py", [*common, "--plots", taken], taken),
        ("convert_checkpoint.py", ["--from", "coincheung", weights, folder], folder),
        ("make_synthetic_cityscapes.py", ["--root", taken / "data"], taken),
        ("prepare_camvid.py", ["--images", tmp_path, "--labels", tmp_path, "--split-from", tmp_path, "--root", taken],
         taken),
    ]
    for tool, args, path in cases:
        result = run_tool(tool, *args)
        ok, stderr = refused_quietly(result, path)
        assert ok, (tool, stderr)
        assert taken.read_text() == "mine" and os.listdir(folder) == [], tool
    assert sorted(os.listdir(tmp_path)) == ["folder", "taken"]


def test_a_read_only_output_folder_is_refused_before_training(synthetic_root, tmp_path):
    disk = tmp_path / "readonly"
    result = run_with_mounts(tool_argv("train.py", "--config", "configs/bisenetv1_synthetic.py",
                                       f"data.root={synthetic_root}", f"train.output_dir={disk / 'run'}"),
                             {disk: "ro"})
    ok, stderr = refused_quietly(result, disk / "run")
    assert ok, stderr
    assert f"cannot write train.output_dir {disk / 'run'}: {disk} is not writable (Read-only file system)" in stderr
