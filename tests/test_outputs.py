"""Output paths: refused before the work, written atomically, a full or read-only disk named."""
import os
import sys

import cv2
import numpy as np
import pytest

from bisenet.outputs import (
    OutputError,
    atomic_open,
    atomic_path,
    check_output_dir,
    check_output_file,
    write_image,
    write_json,
)

from conftest import run_with_mounts


def tree(path):
    return sorted(os.path.relpath(os.path.join(d, n), path) for d, dirs, files in os.walk(path) for n in dirs + files)


def test_a_folder_is_no_file_and_a_file_no_folder(tmp_path):
    (tmp_path / "taken").write_text("x")
    with pytest.raises(OutputError, match="is a folder"):
        check_output_file(str(tmp_path))
    with pytest.raises(OutputError, match="taken is a file"):
        check_output_file(str(tmp_path / "taken" / "eval.json"))
    with pytest.raises(OutputError, match="is a file, not a folder"):
        check_output_dir(str(tmp_path / "taken"))
    with pytest.raises(OutputError, match="cannot write the output folder .*/plots: .*taken is a file, not a folder"):
        check_output_dir(str(tmp_path / "taken" / "deeper" / "plots"))


def test_checks_change_nothing_on_disk(tmp_path):
    (tmp_path / "existing.json").write_text("{}")
    before = tree(tmp_path)
    check_output_file(str(tmp_path / "new" / "deeper" / "eval.json"))
    check_output_file(str(tmp_path / "existing.json"))
    check_output_dir(str(tmp_path / "plots" / "a"))
    assert tree(tmp_path) == before


def test_a_writer_that_takes_a_file_name_writes_beside_and_moves_when_done(tmp_path):
    path = tmp_path / "new" / "clip.mp4"
    with atomic_path(str(path)) as temp:
        assert temp.endswith(".mp4") and os.path.dirname(temp) == str(path.parent) and not path.exists()
        open(temp, "wb").write(b"frames")
    assert path.read_bytes() == b"frames" and os.listdir(path.parent) == ["clip.mp4"]
    with pytest.raises(RuntimeError), atomic_path(str(path)) as temp:
        open(temp, "wb").write(b"half")
        raise RuntimeError("the writer failed")
    assert path.read_bytes() == b"frames" and os.listdir(path.parent) == ["clip.mp4"]
    (tmp_path / "taken").write_text("x")
    with pytest.raises(OutputError, match="cannot write .*taken/clip.mp4"), atomic_path(str(tmp_path / "taken" /
                                                                                           "clip.mp4")):
        pass


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "eval.json"
    write_json(str(path), {"miou": 0.5})
    with pytest.raises(ZeroDivisionError):
        with atomic_open(str(path), "w") as f:
            f.write('{"miou": ')
            1 / 0
    assert path.read_text() == '{\n  "miou": 0.5\n}\n'
    assert tree(tmp_path) == ["eval.json"]


def test_images_round_trip_in_rgb(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    write_image(str(tmp_path / "a" / "x.png"), rgb)
    assert np.array_equal(cv2.imread(str(tmp_path / "a" / "x.png"))[:, :, ::-1], rgb)
    ids = np.arange(35, dtype=np.uint8).reshape(5, 7)
    write_image(str(tmp_path / "ids.png"), ids)
    assert np.array_equal(cv2.imread(str(tmp_path / "ids.png"), cv2.IMREAD_UNCHANGED), ids)


WRITE_TOO_MUCH = """
import sys
from bisenet.outputs import OutputError, write_bytes
try:
    write_bytes(sys.argv[1], bytes(1 << 20))
except OutputError as exc:
    print(exc)
    sys.exit(3)
"""

CHECK = """
import sys
from bisenet.outputs import OutputError, check_output_file
try:
    check_output_file(sys.argv[1], "--json")
except OutputError as exc:
    print(exc)
    sys.exit(3)
"""


def test_a_full_disk_is_named_and_leaves_no_partial_file(tmp_path):
    disk = tmp_path / "small"
    target = disk / "out" / "big.bin"
    result = run_with_mounts([sys.executable, "-c", WRITE_TOO_MUCH, target], {disk: "size=64k"})
    assert result.returncode == 3, result.stderr
    assert result.stdout.strip() == f"no space left on {disk} while writing {target}; free some space or write " \
                                    "elsewhere"


def test_a_read_only_disk_is_refused_before_any_work(tmp_path):
    disk = tmp_path / "readonly"
    result = run_with_mounts([sys.executable, "-c", CHECK, disk / "eval.json"], {disk: "ro"})
    assert result.returncode == 3, result.stderr
    assert f"cannot write --json {disk / 'eval.json'}: {disk} is not writable (Read-only file system)" \
        in result.stdout
