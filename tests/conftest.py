import os
import sys

import pytest
import torch

from bisenet.config import Config, DataConfig, EvalConfig, ModelConfig, TrainConfig
from bisenet.data.synthetic import make_synthetic_cityscapes

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# State-dict listings of the reference implementation (CoinCheung/BiSeNet), copied from
# shared/reference so that the suite runs from a bare clone.
REFERENCE = os.path.join(REPO, "tests", "data")

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory):
    """A tiny dataset in the official Cityscapes layout."""
    root = str(tmp_path_factory.mktemp("cityscapes"))
    make_synthetic_cityscapes(root, num_train=6, num_val=3, height=64, width=128, seed=0, progress=False)
    return root


@pytest.fixture
def synthetic_copy(synthetic_root, tmp_path):
    """A private copy of the tiny dataset, for tests that damage it."""
    import shutil

    copy = tmp_path / "cityscapes"
    shutil.copytree(synthetic_root, copy)
    return copy


@pytest.fixture
def tiny_cfg(synthetic_root, tmp_path):
    return Config(
        model=ModelConfig(num_classes=19),
        data=DataConfig(root=synthetic_root, crop_size=(64, 64), scale_range=(0.75, 1.25), num_workers=0),
        train=TrainConfig(max_iters=4, batch_size=2, warmup_iters=2, amp=False, log_interval=1,
                          checkpoint_interval=100, output_dir=str(tmp_path / "run")),
        eval=EvalConfig(batch_size=1, num_workers=0),
    )


def run_tool(name, *args, cwd=REPO, env=None):
    """Run tools/<name> in a subprocess; returns the CompletedProcess (check=False)."""
    import subprocess

    return subprocess.run([sys.executable, os.path.join(REPO, "tools", name), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, check=False, timeout=600)
