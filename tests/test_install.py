"""A non-editable install: the wheel ships the configs and the tools inside the package, and from
any folder configs load by name, published weights find their config, and `bisenet TOOL` runs."""
import os
import shutil
import socket
import subprocess
import sys

import pytest

from bisenet.data.synthetic import make_synthetic_cityscapes

from conftest import REPO

pytest.importorskip("setuptools", reason="building the wheel without build isolation needs setuptools")
pytestmark = pytest.mark.slow  # a wheel built and installed, and three processes that import torch: ~30 s


def _python(args, cwd, target, env=None, executable=(sys.executable,)):
    environment = dict(os.environ, PYTHONPATH=str(target), **(env or {}))
    return subprocess.run([*executable, *map(str, args)], cwd=cwd, env=environment, capture_output=True, text=True,
                          check=False, timeout=300)


def _pip(*args):
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", *map(str, args)]
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The wheel built from a copy of the checkout (no build/ left in it) and installed with
    ``pip install --target``: (the install folder, an unrelated working folder)."""
    base = tmp_path_factory.mktemp("install")
    source, wheels, target, elsewhere = (base / name for name in ("source", "wheels", "target", "elsewhere"))
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in ("bisenet", "configs", "tools"):
        shutil.copytree(os.path.join(REPO, name), source / name, ignore=ignore)
    for name in ("setup.py", "README.md"):
        shutil.copy(os.path.join(REPO, name), source / name)
    elsewhere.mkdir()
    _pip("wheel", "--no-deps", "--no-build-isolation", "-w", wheels, source)
    (wheel,) = wheels.glob("bisenet-*.whl")
    _pip("install", "--no-deps", "--target", target, wheel)
    return target, elsewhere


CHECK = """
import os, sys
import bisenet
from bisenet.cli import config_parser, parse_args, tool_config
from bisenet.resources import CONFIG_DIR, TOOLS_DIR
from bisenet.weights import PUBLISHED, config_path

target = sys.argv[1]
assert bisenet.__file__.startswith(target), bisenet.__file__  # not the checkout
assert CONFIG_DIR == os.path.join(target, "bisenet", "configs") and os.path.isdir(TOOLS_DIR)
parser = config_parser("test")
parser.add_argument("--weights")
for argv in (["--config", "configs/bisenetv2_city.py"], ["--config", "bisenetv2_city.py"],
             ["--weights", "coincheung/bisenetv2_city"]):
    cfg = tool_config(parse_args(parser, argv))  # bisenetv2_city.py starts from bisenetv1_city.py
    assert (cfg.model.name, cfg.data.crop_size, cfg.train.output_dir) == \\
        ("bisenetv2", (512, 1024), os.path.join("output", "bisenetv2_city")), (argv, cfg)
path = config_path(PUBLISHED["coincheung/bisenetv1_city"])
assert path == os.path.join(CONFIG_DIR, "bisenetv1_city.py") and os.path.isfile(path)
assert tool_config(parse_args(parser, [])).model.name == "bisenetv1"  # the default config
print("ok")
"""


def test_an_installed_package_loads_configs_by_name_from_any_folder(installed):
    target, elsewhere = installed
    result = _python(["-c", CHECK, target], elsewhere, target)
    assert result.returncode == 0 and result.stdout == "ok\n", result.stdout + result.stderr


def test_published_weights_name_their_download_and_the_tools_run_installed(installed, tmp_path):
    target, elsewhere = installed
    with socket.socket() as closed:  # a port nothing listens on: the download fails at once
        closed.bind(("127.0.0.1", 0))
        mirror = f"http://127.0.0.1:{closed.getsockname()[1]}/"
    env = {"TORCH_HOME": str(tmp_path / "torch"), "BISENET_WEIGHTS_MIRROR": mirror}
    result = _python(["evaluate", "--weights", "coincheung/bisenetv2_city"], elsewhere, target, env,
                     executable=(target / "bin" / "bisenet",))
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"put it at {tmp_path / 'torch' / 'hub' / 'checkpoints' / 'model_final_v2_city.pth'}" in result.stderr

    data = tmp_path / "data"
    make_synthetic_cityscapes(str(data), num_train=2, num_val=1, height=32, width=64, progress=False)
    result = _python(["-m", "bisenet", "check_dataset", "--config", "bisenetv1_synthetic.py", "--root", data,
                      "--workers", "1"], elsewhere, target)
    assert result.returncode == 0 and "no problems found" in result.stdout, result.stdout + result.stderr
    assert not (elsewhere / "output").exists() and os.listdir(elsewhere) == []
