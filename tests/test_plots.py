"""bisenet.plots and the tools that draw: browse_dataset, plot_results, evaluate --plots,
check_dataset --plots. Pictures are read back from the PNGs."""
import glob
import json
import os
import sys

import cv2
import numpy as np
import pytest
import torch

from bisenet.data.cityscapes import CLASS_NAMES, ID_TO_TRAIN_ID, PALETTE, generated_palette
from bisenet.data.loaders import build_train_loader
from bisenet.engine.evaluator import result_to_dict
from bisenet.errors import UserError
from bisenet.metrics import scores
from bisenet.plots.browse import browse, hatch_colors
from bisenet.plots.evaluation import (
    ResultsFileError,
    plot_confusion_matrix,
    plot_iou,
    read_scores,
    scores_from_evaluation,
)

from conftest import listed_files, run_tool, run_with_mounts, then_list_files, tool_argv

SYNTHETIC = "configs/bisenetv1_synthetic.py"


def read_rgb(path):
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, path
    return image[:, :, ::-1]


def colors_of(pixels):
    return {tuple(int(c) for c in rgb) for rgb in pixels.reshape(-1, 3)}


def check_label_panel(panel, label, palette, hatch):
    """The panel is ``label`` painted: palette colours exactly, the two hatch greys where ignored."""
    assert panel.shape[:2] == label.shape
    ignored = label >= len(palette)
    assert (panel[~ignored] == np.asarray(palette, np.uint8)[label[~ignored]]).all()
    assert colors_of(panel[ignored]) <= set(hatch)
    expected = {tuple(int(c) for c in palette[k]) for k in np.unique(label[~ignored])}
    expected |= set(hatch) if ignored.sum() >= 16 else colors_of(panel[ignored])  # a big region shows both
    assert colors_of(panel) == expected


def filled_cells(png, layout):
    """How many cells of the grid hold a label panel (anything but background)."""
    h, w = layout.panel_height, layout.panel_width
    boxes = [layout.panel_boxes(k)[1] for k in range(layout.cols * layout.rows)]
    return sum(bool((png[top:top + h, left:left + w] != 255).any()) for top, left in boxes)


def test_browsed_training_grids_are_the_trainers_batches(tiny_cfg, tmp_path):
    """Grid k is the batch that step k trains on, pixel for pixel: images de-normalised, labels in
    the palette with the ignore region hatched, each panel where the grid says."""
    grids = browse(tiny_cfg, str(tmp_path), "train", num=4, panel_size=128)
    assert [os.path.basename(g.path) for g in grids] == ["train_step000000.png", "train_step000001.png"]
    loader = iter(build_train_loader(tiny_cfg))
    hatch = hatch_colors(PALETTE)
    saw_ignore = False
    for grid in grids:
        batch = next(loader)
        png = read_rgb(grid.path)
        assert png.shape[:2] == grid.layout.size
        assert len(grid.samples) == filled_cells(png, grid.layout) == tiny_cfg.train.batch_size
        for k, sample in enumerate(grid.samples):
            # 64x64 crops shown at 128x128: every pixel is 2x2 picture pixels.
            label = np.repeat(np.repeat(batch["label"][k].numpy(), 2, 0), 2, 1)
            top, left, h, w = sample["label_box"]
            check_label_panel(png[top:top + h, left:left + w], label, PALETTE, hatch)
            saw_ignore |= bool((label == 255).any())
            mean, std = np.array(tiny_cfg.data.mean) * 255, np.array(tiny_cfg.data.std) * 255
            image = np.rint(batch["image"][k].numpy().transpose(1, 2, 0) * std + mean).clip(0, 255)
            top, left, h, w = sample["image_box"]
            assert (png[top:top + h, left:left + w] == np.repeat(np.repeat(image, 2, 0), 2, 1)).all()
            assert os.path.basename(batch["path"][k]).split("_leftImg8bit")[0] in sample["title"]
    assert saw_ignore  # the crops pad with ignore: the hatch was really checked


def test_browsed_validation_grid_shows_the_label_files(tiny_cfg, tmp_path):
    grids = browse(tiny_cfg, str(tmp_path), "val", num=10, per_grid=4, panel_size=128)
    assert [os.path.basename(g.path) for g in grids] == ["val_000000-000002.png"]  # 3 val images
    png = read_rgb(grids[0].path)
    assert filled_cells(png, grids[0].layout) == len(grids[0].samples) == 3  # of a 2x2 grid
    label_files = sorted(glob.glob(os.path.join(tiny_cfg.data.root, "gtFine", "val", "*", "*_labelIds.png")))
    for sample, label_file in zip(grids[0].samples, label_files):
        label = ID_TO_TRAIN_ID[cv2.imread(label_file, cv2.IMREAD_UNCHANGED)]  # 64x128: shown as it is
        top, left, h, w = sample["label_box"]
        check_label_panel(png[top:top + h, left:left + w], label, PALETTE, hatch_colors(PALETTE))
        assert os.path.basename(label_file).split("_gtFine")[0] in sample["title"]


def test_browse_tool_same_seed_same_bytes(synthetic_root, tmp_path):
    def browse_tool(out, *overrides):
        result = run_tool("browse_dataset.py", "--config", SYNTHETIC, f"data.root={synthetic_root}",
                          "data.crop_size=[64,64]", "train.batch_size=2", "--num", "2", "--out", out, *overrides)
        assert result.returncode == 0, result.stderr
        assert "train_step000000.png (2 samples)" in result.stdout
        return (out / "train_step000000.png").read_bytes()

    first = browse_tool(tmp_path / "a")
    assert browse_tool(tmp_path / "b") == first
    assert browse_tool(tmp_path / "c", "train.seed=1") != first


def test_hatch_colours_are_no_palette_colour():
    for palette in (PALETTE, generated_palette(150), [(56, 56, 56), (200, 200, 200), (48, 48, 48)]):
        dark, light = hatch_colors(palette)
        used = {tuple(int(c) for c in rgb) for rgb in palette}
        assert dark not in used and light not in used and light[0] - dark[0] >= 100


def evaluation(num_classes, seed=0, absent=3, names=None):
    """An evaluation result as tools/evaluate.py --json holds it: a mostly right confusion
    matrix with one class absent from ground truth and prediction (IoU NaN)."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 50, size=(num_classes, num_classes)) + np.diag(rng.integers(500, 5000, num_classes))
    counts[absent] = counts[:, absent] = 0
    result = scores(counts)
    result["confusion_matrix"] = torch.from_numpy(counts)
    names = names or [f"class {k}" for k in range(num_classes)]
    return result_to_dict(result, names, mode="ss")


@pytest.mark.parametrize("num_classes, low, high", [(19, 750, 1300), (150, 2350, 3300)])
def test_confusion_matrix_for_19_and_150_classes(tmp_path, num_classes, low, high):
    names = list(CLASS_NAMES) if num_classes == 19 else [f"class {k}" for k in range(num_classes)]
    names[5] = "chest of drawers, chest, bureau, dresser"  # long names are shortened, not clipped
    result = scores_from_evaluation(evaluation(num_classes, names=names), "ours")
    first = plot_confusion_matrix(result, str(tmp_path / "a.png"))
    png = read_rgb(first)
    assert low <= png.shape[0] <= high and low <= png.shape[1] <= high
    # The row of the class without ground truth is grey (not normalised into NaN colours): one
    # cell high and as wide as the matrix.
    grey = np.all(png == (217, 217, 217), axis=2).sum(axis=1)
    band = np.flatnonzero(grey > 0.5 * grey.max())
    assert len(band) == band[-1] - band[0] + 1 and 0.85 * num_classes <= grey.max() / len(band) <= 1.05 * num_classes
    assert open(plot_confusion_matrix(result, str(tmp_path / "b.png")), "rb").read() == open(first, "rb").read()


def test_iou_bars_are_sorted_with_the_mean_marked(tmp_path):
    result = scores_from_evaluation(evaluation(19, seed=1), "ours")
    png = read_rgb(plot_iou(result, str(tmp_path / "iou.png")))
    bars = np.all(png == (72, 120, 168), axis=2)  # the bar colour, #4878a8
    rows = np.flatnonzero(bars.any(axis=1))
    bands = np.split(rows, np.flatnonzero(np.diff(rows) > 1) + 1)
    ends = [np.flatnonzero(bars[band[len(band) // 2]])[[0, -1]] for band in bands]
    lengths = np.array([last - first + 1 for first, last in ends])
    iou = np.sort(result.iou[np.isfinite(result.iou)])[::-1]
    assert len(bands) == len(iou) == 18  # the absent class has no bar
    assert (np.diff(lengths) <= 0).all()  # best first
    assert np.allclose(lengths / lengths[0], iou / iou[0], atol=0.01)
    red = png.astype(int)
    mean_line = ((red[..., 0] > red[..., 1] + 60) & (red[..., 0] > red[..., 2] + 60)).sum(axis=0).argmax()
    assert abs((mean_line - ends[0][0]) / lengths[0] - result.miou / iou[0]) < 0.01


def test_plot_results_compares_a_published_table(tmp_path):
    with open(tmp_path / "ours.json", "w") as f:
        json.dump({"modes": {"ss": evaluation(19), "msf": evaluation(19, seed=2)}}, f)
    table = {"name": "paper", "miou": 70.0, "iou": {"class 0": 98.1, "class 1": 60.5}}
    (tmp_path / "paper.json").write_text(json.dumps(table))
    result = run_tool("plot_results.py", f"{tmp_path}/ours.json:msf", tmp_path / "paper.json", "--out", tmp_path / "a")
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(tmp_path / "a")) == ["ours_msf_confusion_matrix.png", "ours_msf_iou.png",
                                                 "ours_msf_vs_paper.png", "paper_iou.png"]
    result = run_tool("plot_results.py", tmp_path / "ours.json", "--out", tmp_path / "b")  # its modes compared
    assert result.returncode == 0, result.stderr
    assert "ours_ss_vs_ours_msf.png" in os.listdir(tmp_path / "b")
    assert read_rgb(tmp_path / "b" / "ours_ss_vs_ours_msf.png").shape[0] > 500


def test_plots_on_a_full_disk_are_named_and_leave_no_partial_png(tmp_path):
    (tmp_path / "ours.json").write_text(json.dumps({"modes": {"ss": evaluation(19), "msf": evaluation(19, seed=2)}}))
    disk = tmp_path / "small"
    result = run_with_mounts(then_list_files(tool_argv("plot_results.py", tmp_path / "ours.json", "--out",
                                                       disk / "plots"), disk), {disk: "size=64k"})
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"no space left on {disk} while writing {disk / 'plots'}" in result.stderr
    left = listed_files(result.stdout)
    assert all(size > 0 and ".tmp-" not in path for path, size in left.items()), left
    assert [line for line in result.stdout.splitlines() if line.startswith("wrote")] == []


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ('{"name": "x"}', "neither an evaluation result"),
    ('{"iou": {"class 0": "high"}}', "is not a percentage"),
    ('{"iou": {"class 0": 0.98, "class 1": 0.6}}', "look like fractions"),
    ('{"iou": {"clas 1": 60.0}}', "did you mean 'class 1'"),
    ('{"per_class": {"road": 0.9}}', "'per_class' must map"),
])
def test_a_malformed_results_file_is_named_with_the_fix(tmp_path, content, message):
    (tmp_path / "ours.json").write_text(json.dumps(evaluation(19)))
    (tmp_path / "bad.json").write_text(content)
    result = run_tool("plot_results.py", tmp_path / "ours.json", tmp_path / "bad.json", "--out", tmp_path / "out")
    assert result.returncode == 1
    assert f"{tmp_path}/bad.json" in result.stderr and message in result.stderr
    assert "Traceback" not in result.stderr


def test_a_file_of_several_modes_must_pick_one_to_compare(tmp_path):
    (tmp_path / "ours.json").write_text(json.dumps({"modes": {"ss": evaluation(19), "msf": evaluation(19)}}))
    result = run_tool("plot_results.py", tmp_path / "ours.json", tmp_path / "ours.json", "--out", tmp_path)
    assert result.returncode == 1 and f"{tmp_path}/ours.json:msf" in result.stderr
    with pytest.raises(ResultsFileError, match="has no mode 'ms'; it holds ss, msf"):
        read_scores(f"{tmp_path}/ours.json:ms")


def test_evaluate_plots_are_those_of_its_json(synthetic_root, random_weights, tmp_path):
    result = run_tool("evaluate.py", "--config", SYNTHETIC, f"data.root={synthetic_root}", "eval.num_workers=0",
                      "--weights", random_weights, "--json", tmp_path / "ss.json", "--plots", tmp_path / "direct")
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(tmp_path / "direct")) == ["ss_confusion_matrix.png", "ss_iou.png"]
    result = run_tool("plot_results.py", tmp_path / "ss.json", "--out", tmp_path / "from_json")
    assert result.returncode == 0, result.stderr
    for name in ("ss_confusion_matrix.png", "ss_iou.png"):
        assert (tmp_path / "direct" / name).read_bytes() == (tmp_path / "from_json" / name).read_bytes()


def test_check_dataset_plots(synthetic_root, tmp_path):
    result = run_tool("check_dataset.py", "--config", SYNTHETIC, "--root", synthetic_root, "--workers", "1",
                      "--plots", tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(tmp_path)) == ["class_pixels.png", "image_sizes.png"]
    for name in ("class_pixels.png", "image_sizes.png"):
        png = read_rgb(tmp_path / name)
        assert png.shape[0] > 150 and png.shape[1] > 500 and len(colors_of(png)) > 10


@pytest.mark.parametrize("tool, args", [
    ("browse_dataset.py", ["--config", SYNTHETIC]),
    ("plot_results.py", ["missing.json", "--out", "x"]),
    ("check_dataset.py", ["--config", SYNTHETIC, "--root", "/nonexistent", "--plots", "x"]),
    ("evaluate.py", ["--config", SYNTHETIC, "--weights", "missing.pth", "--plots", "x"]),
])
def test_without_matplotlib_the_tools_give_the_install_line(monkeypatch, tool, args):
    """Before any work: the dataset, results and weights named here do not even exist."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    result = run_tool(tool, *args)
    assert result.returncode == 1
    assert 'pip install -e ".[plot]"' in result.stderr and "Traceback" not in result.stderr


def test_training_curves_draw_the_records_of_metrics_jsonl(tmp_path):
    """Each curve's points are the file's records: a resumed run's repeated iteration drawn once
    with its latest values, the notes of skipped fp16 steps left out."""
    from matplotlib.figure import Figure

    from bisenet.engine.logs import read_metrics
    from bisenet.plots.training import draw_curves, plot_metrics

    records = [{"iteration": i, "loss": 3.0 / i, "aux_losses": [3.5 / i, 3.1 / i],
                "lr": {"backbone": 0.01 / i, "head": 0.1 / i}} for i in range(1, 5)]
    records += [{"iteration": 3, "loss": 0.25, "aux_losses": [0.5, 0.75], "lr": {"backbone": 1e-4, "head": 1e-3}},
                {"iteration": 5, "skipped_step": "a gradient", "loss_scale": 32768.0},
                {"iteration": 2, "miou": 0.3}, {"iteration": 4, "miou": 0.4, "miou_ema": 0.45}]
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    iterations = [1, 2, 3, 4]
    loss = [3.0, 1.5, 0.25, 0.75]  # iteration 3: the resumed run's record
    expected = [
        {"main": (iterations, loss), "aux 1": (iterations, [3.5, 1.75, 0.5, 0.875]),
         "aux 2": (iterations, [3.1, 1.55, 0.75, 0.775])},
        {"backbone": (iterations, [0.01, 0.005, 1e-4, 0.0025]), "head": (iterations, [0.1, 0.05, 1e-3, 0.025])},
        {"weights": ([2, 4], [30.0, 40.0]), "EMA": ([4], [45.0])},
    ]
    fig = Figure()
    axes = draw_curves(fig, *read_metrics(str(path)))
    for axis, curves in zip(axes, expected):
        drawn = {line.get_label(): line.get_xydata().T.tolist() for line in axis.get_lines()}
        assert drawn.keys() == curves.keys()
        for name, (x, y) in curves.items():
            assert drawn[name][0] == x and drawn[name][1] == pytest.approx(y, rel=1e-12), name
    assert [axis.get_title() for axis in axes] == ["loss", "learning rate", "val mIoU (%)"]
    assert axes[1].get_yscale() == "log"

    png = read_rgb(plot_metrics(str(path), str(tmp_path / "curves.png")))
    assert png.shape[:2] == (400, 1500) and len(colors_of(png)) > 10  # 15 x 4 inches at 100 dpi
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(UserError, match="no training records yet"):
        plot_metrics(str(tmp_path / "empty.jsonl"), str(tmp_path / "x.png"))


def test_plot_log_without_matplotlib_gives_the_install_line(monkeypatch, tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"iteration": 1, "loss": 1.0, "aux_losses": [], "lr": {"all": 0.1}}\n')
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    result = run_tool("plot_log.py", tmp_path)
    assert result.returncode == 1 and 'pip install -e ".[plot]"' in result.stderr
    assert os.listdir(tmp_path) == ["metrics.jsonl"]
