"""bisenet.cli: one error contract for every tool (exit 1 and a message, no traceback, for every
bad input a user can type), the parser, and the config and weights a tool resolves."""
import os

import pytest

from bisenet.cli import (
    ToolParser,
    command_main,
    config_file,
    config_parser,
    parse_args,
    resolve_weights,
    run,
    tool_config,
    tool_names,
)
from bisenet.errors import MissingFileError, UserError
from bisenet.resources import CONFIG_DIR, TOOLS_DIR

from conftest import REPO, run_tool

CONFIG_TOOLS = {  # the tools that read a config, with the arguments they need besides it
    "train.py": [],
    "evaluate.py": ["--weights", "{weights}"],
    "demo.py": ["{image}", "--weights", "{weights}"],
    "export_onnx.py": ["--weights", "{weights}", "--out", "{tmp}/m.onnx", "--size", "64", "64"],
    "export_torchscript.py": ["--weights", "{weights}", "--out", "{tmp}/m.pt", "--size", "64", "64"],
    "benchmark.py": ["--size", "32", "32", "--runs", "1", "--warmup", "0"],
    "check_dataset.py": [],
}


def fill(args, **values):
    return [a.format(**values) for a in args]


def assert_message(result, *expected):
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, result.stderr
    for text in expected:
        assert text in result.stderr, (text, result.stderr)


@pytest.fixture
def values(random_weights, synthetic_root, tmp_path):
    image = os.path.join(synthetic_root, "leftImg8bit", "val", "frankfurt", "frankfurt_000000_000019_leftImg8bit.png")
    return {"weights": random_weights, "image": image, "tmp": str(tmp_path)}


@pytest.mark.parametrize("tool", CONFIG_TOOLS)
def test_misspelt_model_name_and_missing_config(tool, values, synthetic_root):
    args = fill(CONFIG_TOOLS[tool], **values)
    assert_message(run_tool(tool, *args, "model.name=bisenetv3", f"data.root={synthetic_root}"),
                   "model.name='bisenetv3': choose one of bisenetv1, bisenetv2")
    assert_message(run_tool(tool, *args, "--config", "configs/nope.py"), "config file not found: configs/nope.py")


@pytest.mark.parametrize("tool", ["evaluate.py", "demo.py", "export_onnx.py", "export_torchscript.py"])
def test_missing_weights_file(tool, values, synthetic_root):
    args = fill(CONFIG_TOOLS[tool], **dict(values, weights=f"{values['tmp']}/nowhere.pth"))
    assert_message(run_tool(tool, *args, "--config", "configs/bisenetv1_synthetic.py", f"data.root={synthetic_root}"),
                   f"weights {values['tmp']}/nowhere.pth not found", "published model by name")


@pytest.mark.parametrize("tool", ["train.py", "evaluate.py"])
def test_missing_dataset_root(tool, values, tmp_path):
    args = fill(CONFIG_TOOLS[tool], **values)
    result = run_tool(tool, *args, "--config", "configs/bisenetv1_synthetic.py", f"data.root={tmp_path}/nowhere",
                      f"train.output_dir={tmp_path}/run")
    assert_message(result, f"dataset root {tmp_path}/nowhere does not exist", "make_synthetic_cityscapes.py --root")


def test_missing_files_for_the_other_tools(tmp_path):
    assert_message(run_tool("check_dataset.py", "--config", "configs/bisenetv1_synthetic.py", "--root",
                            tmp_path / "nowhere"), "")  # a report listing the problem, exit 1
    assert_message(run_tool("prepare_cityscapes.py", "--root", tmp_path / "nowhere"),
                   f"dataset root {tmp_path}/nowhere does not exist")
    assert_message(run_tool("convert_checkpoint.py", "--from", "coincheung", tmp_path / "nowhere.pth",
                            tmp_path / "out.pth"), f"weights file not found: {tmp_path}/nowhere.pth")
    assert_message(run_tool("convert_checkpoint.py", "--from", "coincheung", "--config", "configs/nope.py",
                            tmp_path / "nowhere.pth", tmp_path / "out.pth"), "config file not found")
    assert_message(run_tool("plot_log.py", tmp_path / "nowhere"), "metrics.jsonl not found")
    assert_message(run_tool("download_weights.py", "coincheung/bisenetv3_city"), "no published weights named")
    assert_message(run_tool("make_synthetic_cityscapes.py", "--root", "/proc/nowhere", "--train", "1", "--val", "1"),
                   "cannot write --root /proc/nowhere: /proc is not writable")
    assert_message(run_tool("train.py", "--config", "configs/bisenetv1_synthetic.py", "--finetune-from",
                            tmp_path / "nowhere.pth", f"train.output_dir={tmp_path}/run"),
                   f"weights file not found: {tmp_path}/nowhere.pth")
    assert_message(run_tool("evaluate.py", "--config", "configs/bisenetv1_synthetic.py", "--modes", "ss,xyz",
                            "--weights", tmp_path / "w.pth"), "unknown evaluation mode 'xyz'")


def test_usage_errors_exit_with_1():
    assert_message(run_tool("export_onnx.py", "--out", "x.onnx", "--size", "0", "128"), "--size: 0 must be at least 1")
    assert_message(run_tool("evaluate.py", "--no-such-option"), "unrecognized arguments: --no-such-option")


def test_run_turns_user_errors_into_messages_and_keeps_bug_tracebacks(capsys):
    def bad_input(argv):
        raise MissingFileError("weights x.pth not found")

    with pytest.raises(SystemExit) as exit_info:
        run(bad_input, [])
    assert exit_info.value.code == 1 and capsys.readouterr().err == "error: weights x.pth not found\n"

    def interrupted(argv):
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as exit_info:
        run(interrupted, [])
    assert exit_info.value.code == 130

    def bug(argv):
        raise ZeroDivisionError("a bug")

    with pytest.raises(ZeroDivisionError):  # not swallowed: a bug keeps its traceback
        run(bug, [])


def test_an_optional_value_that_is_an_override_goes_back_to_the_overrides():
    parser = config_parser("test")
    parser.add_argument("--resume", nargs="?", const="latest", default=None)
    args = parse_args(parser, ["--resume", "train.max_iters=5", "data.root=/d"])
    assert args.resume == "latest" and args.overrides == ["train.max_iters=5", "data.root=/d"]
    args = parse_args(parser, ["data.root=/d", "--resume", "run/checkpoint_000010.pth"])
    assert args.resume == "run/checkpoint_000010.pth" and args.overrides == ["data.root=/d"]
    args = parse_args(parser, ["--resume"])
    assert args.resume == "latest" and args.overrides == []


def test_tool_config_defaults_and_published_weights(tmp_path, monkeypatch):
    parser = config_parser("test")
    parser.add_argument("--weights")
    monkeypatch.chdir(tmp_path)  # configs/... found through the checkout from anywhere
    assert tool_config(parse_args(parser, [])).model.name == "bisenetv1"
    cfg = tool_config(parse_args(parser, ["--weights", "coincheung/bisenetv2_city"]))
    assert (cfg.model.name, cfg.train.output_dir) == ("bisenetv2", os.path.join("output", "bisenetv2_city"))
    with pytest.raises(UserError, match="train.max_iter'"):
        tool_config(parse_args(parser, ["train.max_iter=3"]))


def test_resolve_weights_defaults_to_the_runs_final_checkpoint(tmp_path):
    # A run folder of its own: the message would list runs trained beside it (other tests' runs).
    run_dir = tmp_path / "run"
    cfg = tool_config(parse_args(config_parser("test"), [f"train.output_dir={run_dir}"]))
    with pytest.raises(MissingFileError, match=f"{run_dir}/model_final.pth not found; train first"):
        resolve_weights(cfg, None)
    run_dir.mkdir()
    (run_dir / "model_final.pth").write_bytes(b"")
    assert resolve_weights(cfg, None) == os.path.join(str(run_dir), "model_final.pth")


def test_missing_default_weights_name_the_trained_runs_with_the_command_to_use_each(random_weights, tmp_path,
                                                                                    monkeypatch):
    import shlex
    import shutil

    import cv2
    import numpy as np

    from bisenet.config import load_config, write_config

    # After the quickstart: output/bisenetv1_synthetic holds a run, the default config is
    # bisenetv1_city's, whose output/bisenetv1_city does not exist.
    monkeypatch.chdir(tmp_path)
    run_dir = tmp_path / "output" / "bisenetv1_synthetic"
    run_dir.mkdir(parents=True)
    shutil.copy(random_weights, run_dir / "model_final.pth")
    write_config(load_config(os.path.join(REPO, "configs", "bisenetv1_synthetic.py")), str(run_dir / "config.py"))
    (tmp_path / "output" / "demo").mkdir()  # a folder without a run is not listed
    cv2.imwrite(str(tmp_path / "img.png"), np.zeros((64, 128, 3), np.uint8))

    result = run_tool("demo.py", "img.png", "--fast")
    assert_message(result, "weights output/bisenetv1_city/model_final.pth not found")
    suggested = [line.strip() for line in result.stderr.splitlines() if line.startswith("  ")]
    expected = (f"python {REPO}/tools/demo.py img.png --fast --config output/bisenetv1_synthetic/config.py --weights "
                "output/bisenetv1_synthetic/model_final.pth")
    assert suggested == [expected]
    # The command given works as it is.
    result = run_tool("demo.py", *shlex.split(expected)[2:])
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "output" / "demo" / "img_color.png").is_file()


def test_evaluate_and_demo_help_give_their_own_examples_and_demo_names_its_files():
    results = [run_tool(tool, "--help") for tool in ("evaluate.py", "demo.py")]
    assert [r.returncode for r in results] == [0, 0]
    evaluate, demo = (" ".join(r.stdout.split()) for r in results)  # as words, whatever the wrapping
    assert "eval.batch_size=1 data.root=" in evaluate and "train.max_iters" not in evaluate
    assert "eval.protocol=standard" in demo and "train.max_iters" not in demo
    for written in ("<name>_color.png", "<name>_overlay.png", "<name>_color.mp4", "--out-dir"):
        assert written in demo, written


def test_every_option_of_every_tool_has_a_help_text(monkeypatch):
    import argparse
    import runpy

    parsers = []

    def capture(self, *args, **kwargs):
        parsers.append(self)
        raise SystemExit(0)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", capture)
    monkeypatch.setattr(argparse.ArgumentParser, "parse_intermixed_args", capture)
    tools = sorted(n for n in os.listdir(os.path.join(REPO, "tools")) if n.endswith(".py"))
    for name in tools:
        with pytest.raises(SystemExit):
            runpy.run_path(os.path.join(REPO, "tools", name))["main"]([])
    assert len(parsers) == len(tools)
    for name, parser in zip(tools, parsers):
        assert isinstance(parser, ToolParser), name  # usage errors exit with 1
        assert [a.dest for a in parser._actions if not a.help] == [], name


def test_configs_are_found_by_path_or_by_name_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shipped = os.path.join(CONFIG_DIR, "bisenetv2_city.py")
    assert config_file("configs/bisenetv2_city.py") == config_file("bisenetv2_city.py") == shipped
    assert config_file(None) is None
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "bisenetv2_city.py").write_text("# the user's own copy\n")
    assert config_file("configs/bisenetv2_city.py") == "configs/bisenetv2_city.py"  # a file given is the file used
    with pytest.raises(UserError, match=r"config file not found: nope.py \(nor among the shipped configs in .*: "
                                        r"bisenetv1_ade20k.py, .*custom_dataset.py\)"):
        config_file("nope.py")


def test_convert_checkpoint_reads_a_config_by_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run_tool("convert_checkpoint.py", "--from", "coincheung", "--config", "bisenetv1_city.py",
                      tmp_path / "nowhere.pth", tmp_path / "out.pth")
    assert_message(result, f"weights file not found: {tmp_path}/nowhere.pth")  # past the config


def test_the_bisenet_command_runs_each_tool_by_name(capsys, monkeypatch):
    assert tool_names() == sorted(n[:-3] for n in os.listdir(TOOLS_DIR) if n.endswith(".py"))
    command_main(["--help"])
    listing = capsys.readouterr().out
    assert "  check-dataset " in listing and "  train " in listing and "Train a BiSeNet model" in listing
    monkeypatch.setattr("sys.argv", ["bisenet"])
    for name in ("download-weights", "download_weights"):
        with pytest.raises(SystemExit) as exit:
            command_main([name, "--help"])  # the tool's own parser
        assert exit.value.code == 0
        assert capsys.readouterr().out.startswith("usage: download_weights.py [-h] [NAME ...]")
    with pytest.raises(UserError, match="no tool named 'trian'; the tools are benchmark, browse-dataset"):
        command_main(["trian"])


def test_output_paths_are_refused_before_the_work(tmp_path):
    (tmp_path / "file").write_text("")
    taken = tmp_path / "file" / "out"
    result = run_tool("convert_checkpoint.py", "--from", "coincheung", tmp_path / "nowhere.pth", taken / "x.pth")
    # the destination first, not the missing source
    assert_message(result, f"cannot write the converted checkpoint {taken / 'x.pth'}: {tmp_path / 'file'} is a file")
    result = run_tool("check_dataset.py", "--config", "configs/bisenetv1_synthetic.py", "--root", tmp_path / "nowhere",
                      "--plots", taken)
    assert_message(result, f"cannot write --plots {taken}: {tmp_path / 'file'} is a file")
    assert result.stdout == ""  # no scan, no report
