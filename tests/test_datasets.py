"""COCO-Stuff, ADE20K and CamVid: label mappings value by value against independent
derivations, each official layout through check_dataset, training, evaluation and the demo, and
the typical mistakes of each caught by check_dataset."""
import json
import os

import cv2
import numpy as np
import pytest

from bisenet.config import load_config
from bisenet.data import ade20k, camvid, cocostuff
from bisenet.data.dataset import SegmentationDataset
from bisenet.data.io import LabelDecoder

from conftest import REPO, run_tool
from layouts import make_ade20k, make_camvid, make_camvid_original, make_cocostuff

MISSING = [11, 25, 28, 29, 44, 65, 67, 68, 70, 82, 90]  # the list of unannotated thing ids


def decoded(label_map, num_classes):
    """raw value -> train id (or None where the value is refused), for all 256 values."""
    decoder = LabelDecoder(num_classes, 255, label_map)
    return [int(decoder.table[raw]) if decoder.valid[raw] else None for raw in range(256)]


def test_cocostuff_label_map_value_by_value():
    remain = [i for i in range(182) if i not in MISSING]  # the reference's renumbering
    expected = [remain.index(raw) if raw in remain else 255 if raw == 255 else None for raw in range(256)]
    assert decoded(cocostuff.LABEL_MAP, 171) == expected
    assert len(cocostuff.CLASS_NAMES) == len(cocostuff.PALETTE) == len(set(cocostuff.PALETTE)) == 171
    for raw in remain:  # each class keeps its name through the renumbering
        assert cocostuff.CLASS_NAMES[expected[raw]] == cocostuff.RAW_NAMES[raw]
    assert [cocostuff.CLASS_NAMES[i] for i in (0, 11, 79, 80, 170)] == \
        ["person", "stop sign", "toothbrush", "banner", "wood"]
    assert [cocostuff.RAW_NAMES[i] for i in MISSING] == [
        "street sign", "hat", "shoe", "eye glasses", "plate", "mirror", "window", "desk", "door", "blender",
        "hair brush"]


def test_ade20k_label_map_value_by_value():
    expected = [255] + list(range(150)) + [None] * 105  # 0 ignored, 1-150 shifted down, the rest refused
    assert decoded(ade20k.LABEL_MAP, 150) == expected
    assert len(ade20k.CLASS_NAMES) == len(ade20k.PALETTE) == 150
    assert (ade20k.CLASS_NAMES[0], ade20k.CLASS_NAMES[149]) == ("wall", "flag")


def test_camvid_label_map_value_by_value():
    expected = list(range(11)) + [255] + [None] * 244  # void (11) ignored
    assert decoded(camvid.LABEL_MAP, 11) == expected
    groups = {}
    for name, train_id in camvid.COLOUR_CLASSES.values():
        groups.setdefault(train_id, []).append(name)
    assert len(camvid.COLOUR_CLASSES) == 32 and sorted(groups) == list(range(12))
    for train_id, name in enumerate(camvid.CLASS_NAMES):  # each class holds its own original colour
        assert camvid.COLOUR_CLASSES[camvid.PALETTE[train_id]][1] == train_id, name


def test_labels_read_through_each_layout_are_the_mapped_raw_values(tmp_path):
    cases = [("cocostuff", make_cocostuff(tmp_path / "coco"), "bisenetv1_coco.py", tmp_path / "coco"),
             ("ade20k", make_ade20k(tmp_path / "ade"), "bisenetv1_ade20k.py", tmp_path / "ade"),
             ("camvid", make_camvid(tmp_path / "camvid"), "bisenetv1_camvid.py", tmp_path / "camvid")]
    for name, raw_labels, config, root in cases:
        cfg = load_config(os.path.join(REPO, "configs", config), [f"data.root={root}"])
        table = {raw: train for raw, train in cfg.data.label_map.items()}
        for split in (cfg.data.train_split, cfg.data.val_split):
            dataset = SegmentationDataset(cfg.data, split, num_classes=cfg.model.num_classes)
            assert len(dataset) == sum(1 for s, _ in raw_labels if s == split), name
            for k in range(len(dataset)):
                stem = os.path.basename(dataset.samples[k][0])
                key = (split, stem if name == "camvid" else os.path.splitext(stem)[0])
                expected = np.vectorize(table.__getitem__)(raw_labels[key])
                assert np.array_equal(dataset.load(k)[1], expected), (name, key)


LAYOUTS = {
    "cocostuff": (make_cocostuff, "bisenetv1_coco.py", 171, 2, []),
    "ade20k": (make_ade20k, "bisenetv1_ade20k.py", 150, 2, ["eval.short_side=40"]),
    "camvid": (make_camvid, "bisenetv2_camvid.py", 11, 2, []),
}


@pytest.mark.parametrize("dataset", list(LAYOUTS))
def test_each_layout_checks_trains_evaluates_and_colours(dataset, tmp_path):
    make, config, num_classes, num_val, extra = LAYOUTS[dataset]
    root = tmp_path / "data"
    make(root)
    # Small evaluation windows and two scales: the recipes' 512-960 pixel windows would pad these
    # tiny images to the full window size.
    common = ["--config", f"configs/{config}", f"data.root={root}", "data.num_workers=0", "eval.num_workers=0",
              "eval.crop_size=[32,48]", "eval.scales=[0.75,1.25]", *extra]
    check = run_tool("check_dataset.py", *common, "--workers", "1")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "no problems found" in check.stdout and "what the labels suggest" not in check.stdout

    output = tmp_path / "run"
    train = run_tool("train.py", *common, f"train.output_dir={output}", "train.max_iters=2", "train.batch_size=2",
                     "train.warmup_iters=1", "data.crop_size=[32,32]", "model.backbone_weights=", "train.amp=false",
                     "eval.final_modes=['ss']")
    assert train.returncode == 0, train.stderr
    weights = output / "model_final.pth"
    result = run_tool("evaluate.py", *common, "--weights", weights, "--modes", "ss,mscf", "--json", tmp_path / "e.json")
    assert result.returncode == 0, result.stderr
    scores = json.loads((tmp_path / "e.json").read_text())["modes"]
    for mode in ("ss", "mscf"):
        assert scores[mode]["num_images"] == num_val and len(scores[mode]["per_class"]) == num_classes

    image = next(p for p in sorted(root.rglob("*")) if p.suffix in (".jpg", ".png") and "annot" not in str(p)
                 and "labels" not in str(p) and "annotations" not in str(p))
    demo = run_tool("demo.py", image, *common, "--weights", weights, "--out-dir", tmp_path / "demo")
    assert demo.returncode == 0, demo.stderr
    colours = cv2.cvtColor(cv2.imread(str(tmp_path / "demo" / f"{image.stem}_color.png")), cv2.COLOR_BGR2RGB)
    palette = load_config(os.path.join(REPO, "configs", config)).data.palette
    assert {tuple(c) for c in colours.reshape(-1, 3).tolist()} <= set(palette)  # the dataset's own colours


def run_check(config, root):
    result = run_tool("check_dataset.py", "--config", f"configs/{config}", f"data.root={root}", "--workers", "1")
    assert ("no problems found" in result.stdout) == (result.returncode == 0), result.stdout
    return result


def test_cocostuff_labels_saved_as_rgb_are_named_with_the_fix(tmp_path):
    labels = make_cocostuff(tmp_path)
    (split, name), label = next(iter(labels.items()))
    cv2.imwrite(str(tmp_path / "labels" / split / f"{name}.png"), cv2.merge([label, label, label]))
    result = run_check("bisenetv1_coco.py", tmp_path)
    assert result.returncode == 1
    assert "three channels are equal" in result.stdout and f"labels/{split}/{name}.png" in result.stdout
    assert "COCO-Stuff labels are single-channel PNGs of ids" in result.stdout


def test_cocostuff_stuff_only_maps_are_recognised(tmp_path):
    make_cocostuff(tmp_path, values=[0, 92, 150, 183])
    result = run_check("bisenetv1_coco.py", tmp_path)
    assert result.returncode == 1 and "stuffthingmaps_trainval2017.zip" in result.stdout


def test_ade20k_labels_shifted_by_one_are_recognised(tmp_path):
    make_ade20k(tmp_path, values=[0, 12, 149, 255])  # what reduce_zero_label writes
    result = run_check("bisenetv1_ade20k.py", tmp_path)
    assert result.returncode == 1 and "already shifted by one" in result.stdout


def test_camvid_colour_labels_point_to_the_converter_which_makes_the_layout(tmp_path):
    segnet = tmp_path / "segnet"
    make_camvid(segnet)
    originals = make_camvid_original(tmp_path / "original", segnet)
    # The colour labels put where the ids belong: the mistake is named, with the converter.
    colour_root = tmp_path / "colour"
    make_camvid(colour_root)
    for split in ("train", "val"):
        for name in os.listdir(colour_root / split):
            cv2.imwrite(str(colour_root / f"{split}annot" / name),
                        cv2.cvtColor(originals[name], cv2.COLOR_RGB2BGR))
    result = run_check("bisenetv1_camvid.py", colour_root)
    assert result.returncode == 1 and "tools/prepare_camvid.py" in result.stdout

    out = tmp_path / "camvid960"
    prepared = run_tool("prepare_camvid.py", "--images", tmp_path / "original" / "701_StillsRaw_full", "--labels",
                        tmp_path / "original" / "LabelApproved_full", "--split-from", segnet, "--root", out,
                        "--workers", "1")
    assert prepared.returncode == 0, prepared.stderr
    assert "3 train, 2 val, 1 test" in prepared.stdout
    lookup = {colour: train_id for colour, (_, train_id) in camvid.COLOUR_CLASSES.items()}
    for name, rgb in originals.items():
        split = next(s for s in ("train", "val", "test") if (segnet / s / name).is_file())
        ids = cv2.imread(str(out / f"{split}annot" / name), cv2.IMREAD_UNCHANGED)
        expected = np.array([[lookup[tuple(p)] for p in row] for row in rgb.tolist()], np.uint8)
        assert np.array_equal(ids, expected), name
        assert (out / split / name).read_bytes() == (tmp_path / "original" / "701_StillsRaw_full" / name).read_bytes()
    assert run_check("bisenetv1_camvid.py", out).returncode == 0


def test_images_of_different_sizes_in_one_batch_say_to_evaluate_one_at_a_time(tmp_path):
    from bisenet.checkpoint import save_checkpoint
    from bisenet.models import build_model

    make_cocostuff(tmp_path)
    save_checkpoint({"model": build_model(load_config(os.path.join(REPO, "configs", "bisenetv1_coco.py"),
                                                      ["model.backbone_weights="])).state_dict()}, tmp_path / "w.pth")
    result = run_tool("evaluate.py", "--config", "configs/bisenetv1_coco.py", f"data.root={tmp_path}",
                      "--weights", tmp_path / "w.pth", "eval.batch_size=2", "eval.num_workers=0", "--device", "cpu")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "set eval.batch_size=1" in result.stderr and "000000001001.jpg (64x48)" in result.stderr


def test_cityscapes_train_ids_where_label_ids_belong_are_recognised(synthetic_copy):
    from bisenet.data.cityscapes import ID_TO_TRAIN_ID

    for path in synthetic_copy.rglob("*_gtFine_labelIds.png"):
        ids = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        cv2.imwrite(str(path), ID_TO_TRAIN_ID[ids])
    result = run_tool("check_dataset.py", "--config", "configs/bisenetv1_city.py", f"data.root={synthetic_copy}",
                      "--workers", "1")
    assert result.returncode == 1 and "these are trainIds" in result.stdout


@pytest.mark.parametrize("config", ["bisenetv1_coco.py", "bisenetv1_ade20k.py", "bisenetv1_camvid.py"])
def test_a_missing_dataset_says_where_it_goes(config, tmp_path):
    result = run_check(config, tmp_path / "nowhere")
    assert result.returncode == 1 and "see datasets/README.md" in result.stdout


def test_weights_of_another_class_count_say_which_config_to_pass():
    from bisenet.checkpoint import CheckpointError, load_weights
    from bisenet.models import build_model

    def model(config):
        return build_model(load_config(os.path.join(REPO, "configs", config), ["model.backbone_weights="]))

    with pytest.raises(CheckpointError, match="predicts 171 classes and the config's model 11: pass the config"):
        load_weights(model("bisenetv1_camvid.py"), model("bisenetv1_coco.py").state_dict())
