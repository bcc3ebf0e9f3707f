"""Bad data: every kind is either handled or stops with a message naming the file."""
import os
import re

import cv2
import numpy as np
import pytest
from PIL import Image

from bisenet.config import DataConfig
from bisenet.data.cityscapes import ID_TO_TRAIN_ID
from bisenet.data.dataset import SegmentationDataset
from bisenet.data.io import DatasetError, LabelDecoder, read_image, read_label_raw

from conftest import run_tool


@pytest.fixture
def root(synthetic_copy):
    return synthetic_copy


def val_pairs(root):
    return SegmentationDataset(DataConfig(root=str(root)), "val").samples


def load_first(root):
    return SegmentationDataset(DataConfig(root=str(root)), "val").load(0)


def test_unreadable_empty_and_truncated_images_name_the_file(root):
    image, _ = val_pairs(root)[0]
    with open(image, "wb") as f:
        f.write(b"not an image at all" * 10)
    with pytest.raises(DatasetError, match=os.path.basename(image)):
        load_first(root)
    open(image, "wb").close()
    with pytest.raises(DatasetError, match=f"{os.path.basename(image)} is empty"):
        load_first(root)


@pytest.mark.parametrize("extension", [".png", ".jpg"])
def test_truncated_image_is_detected(tmp_path, extension):
    path = str(tmp_path / f"photo{extension}")
    cv2.imwrite(path, np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[: len(data) * 2 // 3])
    with pytest.raises(DatasetError, match=rf"photo\{extension} is truncated"):
        read_image(path)


@pytest.mark.parametrize("content, expected", [
    (b"<html><body>404 Not Found</body></html>", "is a text file (an HTML page: a failed download?), not an image"),
    (b"label,value\n1,2\n", "is a text file, not an image"),
    (b"\x80\x81\xfe" * 100, "is not an image file"),
])
def test_a_file_named_png_that_is_no_image_is_called_so(tmp_path, content, expected):
    path = tmp_path / "frame.png"
    path.write_bytes(content)
    with pytest.raises(DatasetError, match=re.escape(f"{path} {expected}")):
        read_image(str(path))


def test_an_image_is_judged_by_its_content_not_its_extension(tmp_path):
    image = np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "real.jpg"), image)
    (tmp_path / "named.png").write_bytes((tmp_path / "real.jpg").read_bytes())  # a JPEG named .png reads
    assert np.array_equal(read_image(str(tmp_path / "named.png")), read_image(str(tmp_path / "real.jpg")))


def test_grayscale_rgba_and_16_bit_images_become_rgb(tmp_path):
    gray = np.arange(64, dtype=np.uint8).reshape(8, 8)
    cv2.imwrite(str(tmp_path / "gray.png"), gray)
    assert np.array_equal(read_image(str(tmp_path / "gray.png")), np.repeat(gray[..., None], 3, axis=2))
    bgra = np.zeros((8, 8, 4), np.uint8)
    bgra[..., 2], bgra[..., 3] = 200, 7  # red, almost transparent
    cv2.imwrite(str(tmp_path / "rgba.png"), bgra)
    rgb = read_image(str(tmp_path / "rgba.png"))
    assert rgb.shape == (8, 8, 3) and (rgb[..., 0] == 200).all() and (rgb[..., 1:] == 0).all()
    cv2.imwrite(str(tmp_path / "deep.png"), np.full((8, 8, 3), 0x1234, np.uint16))
    assert (read_image(str(tmp_path / "deep.png")) == 0x12).all()


def test_label_formats(tmp_path):
    values = np.array([[0, 7, 26, 255]], dtype=np.uint8)
    palette_image = Image.fromarray(values, mode="P")
    palette_image.putpalette([(7 * i) % 256 for i in range(768)])  # colours unrelated to the indices
    palette_image.save(tmp_path / "palette.png")
    assert np.array_equal(read_label_raw(str(tmp_path / "palette.png")), values)
    cv2.imwrite(str(tmp_path / "wide.png"), values.astype(np.uint16))
    assert np.array_equal(read_label_raw(str(tmp_path / "wide.png")), values)
    cv2.imwrite(str(tmp_path / "instances.png"), np.array([[26001]], np.uint16))
    with pytest.raises(DatasetError, match="instances.png is 16-bit with values up to 26001"):
        read_label_raw(str(tmp_path / "instances.png"))
    cv2.imwrite(str(tmp_path / "grey.png"), np.dstack([values] * 3))
    with pytest.raises(DatasetError, match="grey.png is a RGB image whose three channels are equal"):
        read_label_raw(str(tmp_path / "grey.png"))
    cv2.imwrite(str(tmp_path / "colour.png"), np.dstack([values, values, 255 - values]))
    with pytest.raises(DatasetError, match="colour.png is a RGB colour image"):
        read_label_raw(str(tmp_path / "colour.png"))


def test_label_values_out_of_range_name_file_and_values(root, tmp_path):
    _, label = val_pairs(root)[0]
    raw = cv2.imread(label, cv2.IMREAD_UNCHANGED)
    raw[0, :3] = [40, 41, 40]
    cv2.imwrite(label, raw)
    with pytest.raises(DatasetError, match=r"frankfurt_000000_000019_gtFine_labelIds.png holds value\(s\) \[40, 41\]"):
        load_first(root)
    decoder = LabelDecoder(3, 255)  # no label map: train ids 0-2 and 255 are valid
    cv2.imwrite(str(tmp_path / "ids.png"), np.array([[0, 2, 255, 3]], np.uint8))
    with pytest.raises(DatasetError, match=r"\[3\] that are neither a class id \(0-2\) nor the ignore index 255"):
        decoder(str(tmp_path / "ids.png"))


def test_decoder_maps_like_the_official_table(root):
    image, label = val_pairs(root)[0]
    _, decoded = load_first(root)
    assert np.array_equal(decoded, ID_TO_TRAIN_ID[cv2.imread(label, cv2.IMREAD_UNCHANGED)])


def test_empty_split(root):
    os.makedirs(root / "leftImg8bit" / "test" / "berlin")
    with pytest.raises(DatasetError, match="split 'test' is empty"):
        SegmentationDataset(DataConfig(root=str(root)), "test")


def evaluate_args(root, tmp_path):
    return ["--config", "configs/bisenetv1_synthetic.py", f"data.root={root}", "eval.num_workers=0",
            "--weights", str(tmp_path / "w.pth")]


def test_evaluation_stops_on_a_bad_sample_without_a_traceback(root, tmp_path):
    import torch

    from bisenet.models.bisenetv1 import BiSeNetV1

    torch.save(BiSeNetV1(19).state_dict(), tmp_path / "w.pth")
    image, _ = val_pairs(root)[1]
    with open(image, "wb") as f:
        f.write(b"\x89PNG garbage")
    result = run_tool("evaluate.py", *evaluate_args(root, tmp_path))
    assert result.returncode == 1
    assert os.path.basename(image) in result.stderr and "Traceback" not in result.stderr


def train_args(root, tmp_path, *extra):
    return ["--config", "configs/bisenetv1_synthetic.py", f"data.root={root}", f"train.output_dir={tmp_path / 'run'}",
            "data.crop_size=[64,64]", "data.num_workers=1", "train.max_iters=4", "train.warmup_iters=1",
            "train.batch_size=2",
            "train.eval_interval=0", "--no-eval", *extra]


def break_train_images(root, count):
    images = [image for image, _ in SegmentationDataset(DataConfig(root=str(root)), "train").samples[:count]]
    for image in images:
        open(image, "wb").close()
    return images


def test_training_stops_on_a_bad_sample_naming_it(root, tmp_path):
    broken = break_train_images(root, 6)  # every training image: the first batch meets one
    result = run_tool("train.py", *train_args(root, tmp_path))
    assert result.returncode == 1
    assert any(os.path.basename(b) in result.stderr for b in broken) and "Traceback" not in result.stderr


def test_a_bad_file_met_again_in_every_epoch_counts_once(root, tmp_path):
    broken = break_train_images(root, 1)
    # 6 training images, 2 per step: 9 steps are 3 epochs, each meeting the bad file
    result = run_tool("train.py", *train_args(root, tmp_path, "data.max_skipped_samples=1", "train.max_iters=9"))
    assert result.returncode == 0, result.stderr
    assert "1 bad sample(s) were skipped" in result.stdout
    log = (tmp_path / "run" / "log.txt").read_text()
    assert log.count("skipped a bad sample") == 1 and os.path.basename(broken[0]) in log


def test_training_skips_bad_samples_only_up_to_the_cap(root, tmp_path):
    broken = break_train_images(root, 1)
    result = run_tool("train.py", *train_args(root, tmp_path, "data.max_skipped_samples=5"))
    assert result.returncode == 0, result.stderr
    assert "bad sample(s) were skipped" in result.stdout
    assert os.path.basename(broken[0]) in (tmp_path / "run" / "log.txt").read_text()

    break_train_images(root, 3)
    result = run_tool("train.py", *train_args(root, tmp_path, "data.max_skipped_samples=1",
                                              f"train.output_dir={tmp_path / 'run2'}"))
    assert result.returncode == 1 and "more than data.max_skipped_samples=1" in result.stderr
