"""bisenet.errors, as a user meets it: a bad input found deep inside the package (a damaged
checkpoint, a text file named like an image, a config key) reaches the command line as one line
naming the file or key, with exit code 1 and no traceback, and a missing optional dependency
names the pip line that installs it, before any file is written. The tools run as the command
line runs them (``python tools/X.py``: the file as ``__main__``), in this process."""
import os
import sys

import pytest

from bisenet.errors import MissingExtraError, UserError, require

from conftest import REPO, run_python

SYNTHETIC = "configs/bisenetv1_synthetic.py"


def command_line(tool, *args, **inputs):
    """``python tools/<tool> args`` with ``inputs`` filled in, from the checkout."""
    return run_python([os.path.join("tools", tool), *(a.format(**inputs) for a in args)], cwd=REPO)


@pytest.fixture
def inputs(random_weights, synthetic_root, tmp_path):
    """Good weights and data, and damaged files as users have them."""
    truncated = tmp_path / "truncated.pth"
    with open(random_weights, "rb") as f:
        truncated.write_bytes(f.read()[:100_000])  # an interrupted copy
    text = tmp_path / "image.png"
    text.write_text("<html>404 Not Found</html>")  # a download that went wrong
    config = tmp_path / "my_config.py"
    config.write_text(f"from bisenet.config import base_config\n\ncfg = base_config({os.path.abspath(SYNTHETIC)!r})\n"
                      "cfg.train.max_iter = 5\n")
    return {"weights": random_weights, "root": synthetic_root, "tmp": tmp_path, "truncated": str(truncated),
            "text": str(text), "config": str(config)}


# tool arguments -> what the one line must name
DEEP_ERRORS = {
    "a truncated checkpoint": (["evaluate.py", "--config", SYNTHETIC, "--weights", "{truncated}", "data.root={root}",
                                "eval.num_workers=0"], ["{truncated}", "truncated"]),
    "a text file as image": (["demo.py", "{text}", "--config", SYNTHETIC, "--weights", "{weights}", "--out",
                              "{tmp}/demo"], ["{text}", "not an image"]),
    "a text file as checkpoint": (["convert_checkpoint.py", "--from", "coincheung", "{text}", "{tmp}/converted.pth"],
                                  ["{text}", "not a PyTorch checkpoint"]),
    "a misspelt key in a config file": (["train.py", "--config", "{config}", "data.root={root}",
                                         "train.output_dir={tmp}/run"], ["train.max_iter", "train.max_iters"]),
    "class names that do not match the classes": (["evaluate.py", "--config", SYNTHETIC, "--weights", "{weights}",
                                                   "data.root={root}", "model.num_classes=5"],
                                                  ["model.num_classes=5", "data.class_names"]),
}


@pytest.mark.parametrize("case", DEEP_ERRORS)
def test_a_bad_input_found_deep_in_the_package_is_one_line_and_exit_1(case, inputs):
    args, names = DEEP_ERRORS[case]
    result = command_line(*args, **inputs)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for name in names:
        assert name.format(**inputs) in lines[0], (name, lines[0])
    assert not {"demo", "converted.pth", "run"} & set(os.listdir(inputs["tmp"]))  # nothing written


@pytest.mark.parametrize("module, args", [
    ("onnx", ["export_onnx.py", "--config", SYNTHETIC, "--weights", "{weights}", "--out", "{tmp}/model.onnx",
              "--size", "64", "64"]),
    ("onnxruntime", ["evaluate.py", "--config", SYNTHETIC, "--weights", "{weights}", "data.root={root}",
                     "eval.num_workers=0", "--precision", "int8", "--calib-images", "1", "--json", "{tmp}/eval.json"]),
])
def test_a_missing_optional_dependency_names_its_pip_line(monkeypatch, inputs, module, args):
    """The module really cannot be imported (None in sys.modules is how Python marks a module
    that must not be found); the tool says which extra installs it and writes nothing."""
    monkeypatch.setitem(sys.modules, module, None)
    result = command_line(*args, **inputs)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    install = f'which is not installed: pip install -e ".[deploy]" (or pip install {module})'
    assert f"needs {module}" in result.stderr and install in result.stderr, result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert not {"model.onnx", "eval.json"} & set(os.listdir(inputs["tmp"]))


def test_require_imports_the_module_or_names_the_extra():
    assert require("json", "plot", "x").dumps([1]) == "[1]"
    with pytest.raises(MissingExtraError) as error:
        require("no_such_module_for_bisenet", "plot", "plotting")
    message = str(error.value)
    assert message == ('plotting needs no_such_module_for_bisenet, which is not installed: pip install -e ".[plot]" '
                       "(or pip install no_such_module_for_bisenet)")
    # whoever catches the user errors, or the import errors, catches it
    assert isinstance(error.value, UserError) and isinstance(error.value, ImportError)
