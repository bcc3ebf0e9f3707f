"""bisenet.demo and tools/demo.py: images, folders (with clashing names) and videos."""
import glob
import os
import shutil

import cv2
import numpy as np
import pytest

from bisenet.data.io import DatasetError
from bisenet.demo import output_stems

from conftest import listed_files, run_tool, run_with_mounts, then_list_files, tool_argv


def test_output_names_are_unique():
    assert output_stems(["a/x.png", "a/y.jpg"]) == ["x", "y"]
    assert output_stems(["a/x.png", "a/x.jpg", "a/y.png"]) == ["x_png", "x_jpg", "y"]
    with pytest.raises(DatasetError, match="same name"):
        output_stems(["a/x.png", "b/x.png"])


def test_demo_on_a_folder_and_a_video(random_weights, synthetic_root, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for path in sorted(glob.glob(f"{synthetic_root}/leftImg8bit/val/*/*.png"))[:2]:
        shutil.copy(path, folder)
    common = ["--config", "configs/bisenetv1_synthetic.py", "--weights", random_weights]
    result = run_tool("demo.py", folder, *common, "--out-dir", tmp_path / "out", "--fast")
    assert result.returncode == 0, result.stderr
    assert len(glob.glob(str(tmp_path / "out" / "*_color.png"))) == 2
    assert len(glob.glob(str(tmp_path / "out" / "*_overlay.png"))) == 2

    # Two images of one name in different formats: both results are kept.
    same = tmp_path / "same"
    same.mkdir()
    image = cv2.imread(sorted(glob.glob(f"{synthetic_root}/leftImg8bit/val/*/*.png"))[0])
    cv2.imwrite(str(same / "x.png"), image)
    cv2.imwrite(str(same / "x.jpg"), image)
    result = run_tool("demo.py", same, *common, "--out-dir", tmp_path / "same_out")
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(tmp_path / "same_out")) == ["x_jpg_color.png", "x_jpg_overlay.png", "x_png_color.png",
                                                         "x_png_overlay.png"]

    video = str(tmp_path / "street.mp4")
    writer = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*"mp4v"), 10, (128, 64))
    for k in range(5):
        writer.write(np.full((64, 128, 3), 40 * k, np.uint8))
    writer.release()
    result = run_tool("demo.py", video, *common, "--out-dir", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    for suffix in ("color", "overlay"):
        capture = cv2.VideoCapture(str(tmp_path / "out" / f"street_{suffix}.mp4"))
        assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 5
        assert (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))) == (128, 64)


def test_the_pipelined_folder_demo_writes_the_same_files_as_the_plain_loop(random_weights, synthetic_root, tmp_path):
    from bisenet.config import load_config
    from bisenet.demo import Segmenter, segment_images

    cfg = load_config("configs/bisenetv1_synthetic.py", [f"data.root={synthetic_root}"])
    segmenter = Segmenter(cfg, random_weights, "cpu")
    paths = sorted(glob.glob(f"{synthetic_root}/leftImg8bit/*/*/*.png"))  # 9 images
    plain = segment_images(segmenter, paths, tmp_path / "plain", progress=False, workers=0)
    for workers in (1, 3):
        piped = segment_images(segmenter, paths, tmp_path / f"piped{workers}", progress=False, workers=workers)
        assert [os.path.basename(p) for p in piped] == [os.path.basename(p) for p in plain]
        for a, b in zip(plain, piped):
            with open(a, "rb") as fa, open(b, "rb") as fb:
                assert fa.read() == fb.read(), b
    assert len(plain) == 2 * len(paths) and len(set(plain)) == len(plain)


def write_video(path, frames=5):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (128, 64))
    rng = np.random.default_rng(0)
    for _ in range(frames):
        writer.write(rng.integers(0, 256, (64, 128, 3), np.uint8))
    writer.release()


def test_an_out_dir_that_cannot_take_files_is_refused_before_the_model_loads(synthetic_root, tmp_path):
    (tmp_path / "taken").write_text("x")
    image = sorted(glob.glob(f"{synthetic_root}/leftImg8bit/val/*/*.png"))[0]
    # Weights that do not exist: the refusal must come before they are looked for.
    result = run_tool("demo.py", image, "--config", "configs/bisenetv1_synthetic.py", "--weights",
                      tmp_path / "nowhere.pth", "--out-dir", tmp_path / "taken")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"--out-dir {tmp_path / 'taken'} is a file, not a folder" in result.stderr

    disk = tmp_path / "readonly"
    result = run_with_mounts(tool_argv("demo.py", image, "--config", "configs/bisenetv1_synthetic.py", "--weights",
                                       tmp_path / "nowhere.pth", "--out-dir", disk / "demo"), {disk: "ro"})
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"cannot write --out-dir {disk / 'demo'}: {disk} is not writable (Read-only file system)" in result.stderr


def test_a_full_disk_is_named_and_leaves_no_partial_png_or_video(random_weights, synthetic_root, tmp_path):
    disk = tmp_path / "small"
    common = ["--config", "configs/bisenetv1_synthetic.py", "--weights", random_weights, "--out-dir", disk / "demo"]
    folder = tmp_path / "images"
    folder.mkdir()
    for path in sorted(glob.glob(f"{synthetic_root}/leftImg8bit/*/*/*.png")):
        shutil.copy(path, folder)
    result = run_with_mounts(then_list_files(tool_argv("demo.py", folder, *common), disk), {disk: "size=64k"})
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"no space left on {disk} while writing {disk / 'demo'}" in result.stderr
    left = listed_files(result.stdout)
    assert left and all(size > 0 and ".tmp-" not in path for path, size in left.items()), left  # whole PNGs
    assert "wrote" not in result.stdout

    video = tmp_path / "street.mp4"
    write_video(video, frames=10)
    result = run_with_mounts(then_list_files(tool_argv("demo.py", video, *common), disk), {disk: "size=8k"})
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"no space left on {disk} while writing {disk / 'demo' / 'street_color.mp4'}" in result.stderr
    assert listed_files(result.stdout) == {} and "wrote" not in result.stdout
