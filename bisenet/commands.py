"""What each command-line tool does, one function per tool that does more than one thing: its
checks in the order that refuses before any work (options, then output paths, then the weights,
which may be fetched), the package's functions that do the work, and the lines the tool prints.
The tools in tools/ parse their arguments and call one of these (or one function of the module
that holds the work). This sits above ``bisenet.cli``, whose ``resolve_weights`` it uses."""
import os

from bisenet import distributed
from bisenet.checkpoint import CheckpointError, read_state_dict, save_checkpoint
from bisenet.cli import config_file, resolve_weights
from bisenet.config_check import load_config
from bisenet.data.calibration import calibration_inputs
from bisenet.data.check import check_dataset, format_report
from bisenet.data.prepare import camvid_splits, prepare_camvid, prepare_cityscapes
from bisenet.data.synthetic import make_synthetic_cityscapes
from bisenet.demo import Segmenter, run_demo
from bisenet.deploy.verify import write_int8_onnx, write_onnx, write_torchscript
from bisenet.engine.evaluator import evaluate_modes, evaluation_modes, report
from bisenet.inference import load_model
from bisenet.outputs import check_output_dir, check_output_file
from bisenet.plots import require_matplotlib
from bisenet.plots.browse import browse
from bisenet.plots.evaluation import plot_evaluation
from bisenet.plots.statistics import write_dataset_plots
from bisenet.weights import PUBLISHED, convert_reference, download, fetch, hub_checkpoint_path, url_of


def evaluate(cfg, weights, choice, outputs, device=None, runtime=None, ema=False, command=None):
    """``tools/evaluate.py``: the modes of ``choice`` (``evaluation_modes``) and the ``outputs``
    checked, then ``weights`` (``resolve_weights``; with ``ema`` the EMA weights it holds) loaded
    into the model of ``cfg`` as ``runtime`` says (``load_model``'s keywords) and evaluated in each
    mode, the images shared out over the processes of a torchrun launch. The main process prints
    the scores and writes the outputs (the pictures through ``plot_evaluation``). Returns
    ``{mode name: scores}``."""
    modes = evaluation_modes(cfg.eval, choice)
    outputs.check()
    path = resolve_weights(cfg, weights, command)
    device = distributed.init_from_environment(distributed.resolve_device(device))
    runtime = runtime or {}
    try:
        model = load_model(cfg, read_state_dict(path, ema=True) if ema else path, device, **runtime)
        results = evaluate_modes(cfg, model, device, modes, outputs.save_pred_dir)
        report(results, modes, cfg.data.class_names, outputs, runtime, weights=path, ema=ema)
        if outputs.plots_dir and distributed.is_main_process():
            for written in plot_evaluation(results, cfg.data.class_names, outputs.plots_dir):
                print(f"wrote {written}")
    finally:
        distributed.cleanup()
    return results


def export_onnx(cfg, weights, out, options, command=None):
    """``tools/export_onnx.py``: ``options`` (``OnnxOptions``) and ``out`` checked, the model of
    ``cfg`` with ``weights`` exported (in int8 calibrated on its training split with
    ``options.int8``), compared with PyTorch and written only if within the tolerance."""
    opset = options.check()
    check_output_file(out, "--out")
    model = load_model(cfg, resolve_weights(cfg, weights, command))
    if options.int8:
        images = calibration_inputs(cfg, options.calib_images, otherwise="export in fp32 (without --int8)")
        summary = write_int8_onnx(model, out, images, options.tolerance)
    else:
        summary = write_onnx(model, out, options.size, options.dynamic, options.argmax, opset, options.tolerance)
    print(f"wrote {out}: {summary}")


def export_torchscript(cfg, weights, out, size, tolerance=None, command=None):
    """``tools/export_torchscript.py``: ``out`` checked, the model of ``cfg`` with ``weights``
    traced at ``size``, reloaded, compared with PyTorch at another size and written only if
    within ``tolerance`` (``write_torchscript``)."""
    check_output_file(out, "--out")
    model = load_model(cfg, resolve_weights(cfg, weights, command))
    print(f"wrote {out}: {write_torchscript(model, out, size, tolerance)}")


def demo(cfg, weights, source, out_dir, device=None, runtime=None, command=None):
    """``tools/demo.py``: ``out_dir`` checked, then the colouring and overlay of ``source`` (an
    image, a folder, a video or a camera index; ``run_demo``) by the model of ``cfg`` with
    ``weights``, run as ``runtime`` says; prints each file written."""
    check_output_dir(out_dir, "--out-dir")
    segmenter = Segmenter(cfg, resolve_weights(cfg, weights, command), device, **(runtime or {}))
    for path in run_demo(segmenter, source, out_dir):
        print(f"wrote {os.path.normpath(path)}")


def check_dataset_splits(cfg, splits=None, workers=None, plots_dir=None):
    """``tools/check_dataset.py``: scan ``splits`` (default: the config's train and val splits)
    and print the report; with ``plots_dir`` (checked first, with matplotlib) also draw the
    class frequencies and image sizes, faults or not, as the pictures may show why. Returns the
    report (its ``faults`` decide the exit code)."""
    if plots_dir:
        require_matplotlib("check_dataset --plots")
        check_output_dir(plots_dir, "--plots")
    report_ = check_dataset(cfg.data, cfg.model.num_classes, splits or [cfg.data.train_split, cfg.data.val_split],
                            workers)
    print(format_report(report_))
    for path in write_dataset_plots(report_, plots_dir) if plots_dir else ():
        print(f"wrote {path}")
    return report_


def browse_dataset(cfg, out_dir=None, split="train", num=16, per_grid=None, start_step=0, panel_size=512):
    """``tools/browse_dataset.py``: matplotlib and ``out_dir`` (default
    ``<train.output_dir>/browse``) checked, then ``browse``'s grids written and printed."""
    require_matplotlib("browsing a dataset")
    out_dir = check_output_dir(out_dir or os.path.join(cfg.train.output_dir, "browse"), "--out")
    for grid in browse(cfg, out_dir, split, num, per_grid, start_step, panel_size):
        print(f"wrote {grid.path} ({len(grid.samples)} samples)")


def convert_checkpoint(source_format, source, destination, config=None):
    """``tools/convert_checkpoint.py``: ``destination`` checked, the checkpoint ``source`` saved
    by ``source_format``'s implementation converted (``convert_reference``: the architecture
    and class count read from its keys, the config ``config`` or the matching published one)
    and written with its config."""
    check_output_file(destination, "the converted checkpoint")
    cfg = load_config(config_file(config)) if config else None
    try:
        state, notes, cfg = convert_reference(read_state_dict(source), source, cfg)
    except CheckpointError as exc:
        message = str(exc)  # always name the source: not every converter message does
        raise CheckpointError(message if source in message else f"{source}: {message}") from None
    for note in notes:
        print(f"note: {note}")
    save_checkpoint({"model": state, "config": cfg.to_dict(), "converted_from": source_format}, destination)
    print(f"converted {len(state)} entries ({cfg.model.name}, {cfg.model.num_classes} classes) from {source} "
          f"to {destination}")


def download_weights(names):
    """``tools/download_weights.py``: without ``names`` list the published weights (their
    published mIoU, URL and cache path); else fetch each into torch's hub cache (whole models
    converted to our format) and print where it is."""
    if not names:
        for name, entry in PUBLISHED.items():
            table = ", ".join(f"{mode} {miou:.2f}" for mode, miou in entry.published_miou.items())
            print(f"{name:28s} {entry.description}" + (f"; published mIoU {table}" if table else ""))
            print(f"{'':28s} {url_of(entry)} -> {hub_checkpoint_path(entry.filename)}")
    for name in names:
        path = fetch(name) if name in PUBLISHED and PUBLISHED[name].config else download(name)
        print(f"{name}: {path}")


def make_synthetic_dataset(root, num_train=40, num_val=10, size=(256, 512), seed=0):
    """``tools/make_synthetic_cityscapes.py``: ``root`` checked, then the synthetic dataset
    written into it (``make_synthetic_cityscapes``)."""
    make_synthetic_cityscapes(check_output_dir(root, "--root"), num_train, num_val, *size, seed=seed)
    print(f"wrote {num_train} train and {num_val} val images to {root}")


def prepare_cityscapes_labels(root, splits=("train", "val"), workers=None):
    """``tools/prepare_cityscapes.py``: the train-id labels and list files of the Cityscapes
    dataset at ``root`` (``prepare_cityscapes``)."""
    for path in prepare_cityscapes(load_config(None, [f"data.root={root}"]).data, splits, workers):
        print(f"wrote {path}")


def prepare_camvid_release(images, labels, split_from, root, workers=None):
    """``tools/prepare_camvid.py``: ``root`` checked, then CamVid's original release (``images``,
    colour ``labels``) written into it in SegNet's layout, split as SegNet's folder
    ``split_from`` is (``prepare_camvid``)."""
    check_output_dir(root, "--root")
    counts = prepare_camvid(images, labels, root, camvid_splits(split_from), workers)
    print(f"wrote {', '.join(f'{n} {split}' for split, n in counts.items())} pairs under {root}")
