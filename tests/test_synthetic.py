"""bisenet.data.synthetic: the official layout and ids, deterministic per seed, images matching
their labels."""
import glob
import os

import cv2
import numpy as np

from bisenet.data.cityscapes import LABELS
from bisenet.data.synthetic import COLORS, make_synthetic_cityscapes


def test_official_layout_ids_and_determinism(tmp_path):
    make_synthetic_cityscapes(str(tmp_path / "a"), num_train=3, num_val=2, height=48, width=96, seed=5, progress=False)
    make_synthetic_cityscapes(str(tmp_path / "b"), num_train=3, num_val=2, height=48, width=96, seed=5, progress=False)
    images = sorted(glob.glob(str(tmp_path / "a" / "leftImg8bit" / "*" / "*" / "*_leftImg8bit.png")))
    assert len(images) == 5
    valid_ids = {label.id for label in LABELS if label.id >= 0}
    for image_path in images:
        relative = os.path.relpath(image_path, tmp_path / "a")
        split, city, name = relative.split(os.sep)[1:]
        stem = name[: -len("_leftImg8bit.png")]
        assert city in ({"aachen", "bochum", "bremen"} if split == "train" else {"frankfurt", "lindau"})
        label_path = tmp_path / "a" / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png"
        for suffix in ("labelIds", "instanceIds", "color"):
            assert (tmp_path / "a" / "gtFine" / split / city / f"{stem}_gtFine_{suffix}.png").is_file()
        label = cv2.imread(str(label_path), cv2.IMREAD_UNCHANGED)
        image = cv2.imread(image_path)[:, :, ::-1]
        assert label.shape == image.shape[:2] == (48, 96) and set(np.unique(label)) <= valid_ids
        # Pixels look like their class: most are nearer their own class's colour than any other (stripes,
        # lighting and noise blur the rest); an image not matching its label scores near 1 / 30.
        palette = np.array([COLORS[i] for i in sorted(COLORS)], dtype=np.float32)
        ids = np.array(sorted(COLORS))
        distance = ((image[:, :, None, :].astype(np.float32) - palette[None, None]) ** 2).sum(-1)
        assert (ids[distance.argmin(-1)] == label).mean() > 0.75
        twin = (tmp_path / "b" / os.path.relpath(image_path, tmp_path / "a"))
        assert np.array_equal(cv2.imread(str(twin)), cv2.imread(image_path))
