"""Published weights by name: download from a server on 127.0.0.1 (no other network), convert,
cache, and clear errors offline."""
import http.server
import json
import os
import threading

import numpy as np
import pytest
import torch

from bisenet.checkpoint import load_weights
from bisenet.models.bisenetv1 import BiSeNetV1
from bisenet.models.bisenetv2 import BiSeNetV2
from bisenet.weights import PUBLISHED, WeightsError, download, fetch, hub_checkpoint_path, load_backbone

from conftest import REFERENCE, run_tool


def reference_state_dict(listing_file, seed):
    generator = torch.Generator().manual_seed(seed)
    with open(os.path.join(REFERENCE, listing_file)) as f:
        listing = json.load(f)
    return {name: torch.tensor(7) if name.endswith("num_batches_tracked") else
            (0.5 + torch.rand(shape, generator=generator) if name.endswith("running_var")
             else 0.1 * torch.randn(shape, generator=generator)) for name, shape in listing}


class Server:
    """Serves a folder on 127.0.0.1; ``truncate`` cuts every response short; counts requests."""

    def __init__(self, folder, truncate=False):
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(folder), **kwargs)

            def do_GET(self):
                server.requests.append(self.path)
                if not truncate:
                    return super().do_GET()
                self.send_response(200)
                self.send_header("Content-Length", "1000000")
                self.end_headers()
                self.wfile.write(b"PK\x03\x04" + b"\0" * 1000)
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.requests = []
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """The reference's release folder with random weights in its files."""
    folder = tmp_path_factory.mktemp("release")
    states = {"coincheung/bisenetv1_city": reference_state_dict("coincheung_bisenetv1_state_dict.json", 1),
              "coincheung/bisenetv2_city": reference_state_dict("coincheung_bisenetv2_state_dict.json", 2)}
    for name, state in states.items():
        torch.save(state, folder / PUBLISHED[name].filename)
    v2 = states["coincheung/bisenetv2_city"]
    backbone = {branch: {k.split(".", 1)[1]: v for k, v in v2.items() if k.startswith(branch + ".")}
                for branch in ("detail", "segment")}
    torch.save(backbone, folder / "backbone_v2.pth")
    return folder, states


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch" / "hub" / "checkpoints"


def test_fetch_downloads_once_converts_and_caches(release, cache, monkeypatch):
    folder, states = release
    server = Server(folder)
    monkeypatch.setenv("BISENET_WEIGHTS_MIRROR", server.url)
    try:
        path = fetch("coincheung/bisenetv2_city", progress=False)
    finally:
        server.close()
    assert server.requests == ["/model_final_v2_city.pth"]
    assert (cache / "model_final_v2_city.pth").is_file()
    assert path == str(cache / "bisenet" / "coincheung_bisenetv2_city.pth")
    model = load_weights(BiSeNetV2(19), path)
    assert all(torch.equal(model.state_dict()[k], v.to(model.state_dict()[k].dtype))
               for k, v in states["coincheung/bisenetv2_city"].items())
    assert fetch("coincheung/bisenetv2_city", progress=False) == path  # the server is gone: from the cache


def test_demo_and_evaluate_take_a_published_name(release, synthetic_root, tmp_path):
    folder, states = release
    server = Server(folder)
    env = dict(os.environ, TORCH_HOME=str(tmp_path / "torch"), BISENET_WEIGHTS_MIRROR=server.url)
    image = os.path.join(synthetic_root, "leftImg8bit", "val", "frankfurt",
                         sorted(os.listdir(os.path.join(synthetic_root, "leftImg8bit", "val", "frankfurt")))[0])
    try:
        demo = run_tool("demo.py", image, "--weights", "coincheung/bisenetv1_city", "--out-dir", str(tmp_path / "demo"),
                        "--device", "cpu", env=env)
    finally:
        server.close()
    assert demo.returncode == 0, demo.stderr
    assert server.requests == ["/model_final_v1_city_new.pth"]
    assert len(os.listdir(tmp_path / "demo")) == 2
    evaluation = run_tool("evaluate.py", "--weights", "coincheung/bisenetv1_city", f"data.root={synthetic_root}",
                          "eval.num_workers=0", "--device", "cpu", "--json", str(tmp_path / "e.json"), env=env)
    assert evaluation.returncode == 0, evaluation.stderr  # from the cache: the server is gone
    assert json.loads((tmp_path / "e.json").read_text())["num_images"] == 3


def test_offline_error_names_the_url_and_the_cache_path(tmp_path):
    closed = Server(tmp_path)
    closed.close()
    env = dict(os.environ, TORCH_HOME=str(tmp_path / "torch"), BISENET_WEIGHTS_MIRROR=closed.url)
    result = run_tool("demo.py", "x.png", "--weights", "coincheung/bisenetv1_city", env=env)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"{closed.url}model_final_v1_city_new.pth" in result.stderr
    assert str(tmp_path / "torch" / "hub" / "checkpoints" / "model_final_v1_city_new.pth") in result.stderr


def test_an_incomplete_download_is_removed_and_a_rerun_succeeds(release, cache, monkeypatch):
    broken = Server(release[0], truncate=True)
    monkeypatch.setenv("BISENET_WEIGHTS_MIRROR", broken.url)
    try:
        with pytest.raises(WeightsError, match="incomplete or damaged"):
            download("coincheung/backbone_v2", progress=False)
    finally:
        broken.close()
    assert not cache.exists() or os.listdir(cache) == []
    server = Server(release[0])
    monkeypatch.setenv("BISENET_WEIGHTS_MIRROR", server.url)
    try:
        assert download("coincheung/backbone_v2", progress=False) == hub_checkpoint_path("backbone_v2.pth")
    finally:
        server.close()


def test_download_tool_puts_the_backbone_where_training_looks(release, tmp_path, monkeypatch):
    from bisenet.config import load_config
    from bisenet.models import build_model

    from conftest import REPO

    server = Server(release[0])
    env = dict(os.environ, TORCH_HOME=str(tmp_path / "torch"), BISENET_WEIGHTS_MIRROR=server.url)
    try:
        result = run_tool("download_weights.py", "coincheung/backbone_v2", env=env)
    finally:
        server.close()
    assert result.returncode == 0, result.stderr
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    cfg = load_config(os.path.join(REPO, "configs", "bisenetv2_city.py"))
    model = load_backbone(build_model(cfg), cfg)
    expected = release[1]["coincheung/bisenetv2_city"]
    name = "segment.S5_5.conv_last.conv.weight"
    assert torch.equal(model.state_dict()[name], expected[name])
    listing = run_tool("download_weights.py", env=env)
    assert "coincheung/bisenetv1_city" in listing.stdout and "75.44" in listing.stdout


@pytest.mark.parametrize("listing_file, name", [("coincheung_bisenetv1_state_dict.json", "bisenetv1"),
                                                ("coincheung_bisenetv2_state_dict.json", "bisenetv2")])
def test_converter_finds_the_architecture_without_a_config(listing_file, name, tmp_path):
    state = reference_state_dict(listing_file, 3)
    torch.save(state, tmp_path / "ref.pth")
    result = run_tool("convert_checkpoint.py", "--from", "coincheung", tmp_path / "ref.pth", tmp_path / "ours.pth")
    assert result.returncode == 0, result.stderr
    assert f"({name}, 19 classes)" in result.stdout and "unexpected" not in result.stdout + result.stderr
    model = load_weights({"bisenetv1": BiSeNetV1, "bisenetv2": BiSeNetV2}[name](19), str(tmp_path / "ours.pth"))
    assert all(np.array_equal(model.state_dict()[k].numpy(), v.numpy()) for k, v in state.items())
    wrong = run_tool("convert_checkpoint.py", "--from", "coincheung", "--config",
                     "configs/bisenetv2_city.py" if name == "bisenetv1" else "configs/bisenetv1_city.py",
                     str(tmp_path / "ref.pth"), str(tmp_path / "x.pth"))
    assert wrong.returncode == 1 and "pass the config of that model" in wrong.stderr


@pytest.mark.parametrize("name, listing_file, num_classes", [
    ("coincheung/bisenetv1_coco", "coincheung_bisenetv1_state_dict.json", 171),
    ("coincheung/bisenetv2_ade20k", "coincheung_bisenetv2_state_dict.json", 150)])
def test_other_datasets_weights_load_by_name_with_their_config(name, listing_file, num_classes, tmp_path, cache,
                                                               monkeypatch):
    from bisenet.config import load_config
    from bisenet.models import build_model
    from bisenet.weights import config_path

    # The reference's files for COCO-Stuff and ADE20K: its 19-class listing with the class
    # dimension of every classifier changed.
    state = {k: (v[:1].repeat(num_classes, *[1] * (v.dim() - 1)) + 0.01 * torch.arange(num_classes).view(
        -1, *[1] * (v.dim() - 1)) if v.dim() and v.shape[0] == 19 else v)
        for k, v in reference_state_dict(listing_file, 4).items()}
    torch.save(state, tmp_path / PUBLISHED[name].filename)
    server = Server(tmp_path)
    monkeypatch.setenv("BISENET_WEIGHTS_MIRROR", server.url)
    try:
        path = fetch(name, progress=False)
    finally:
        server.close()
    cfg = load_config(config_path(PUBLISHED[name]))
    assert cfg.model.num_classes == num_classes and len(cfg.data.class_names) == num_classes
    model = load_weights(build_model(cfg), path)
    assert all(torch.equal(model.state_dict()[k], v.to(model.state_dict()[k].dtype)) for k, v in state.items())
    listing = run_tool("download_weights.py")
    assert name in listing.stdout
    assert {"coincheung/bisenetv1_coco": "32.55", "coincheung/bisenetv2_ade20k": "31.72"}[name] in listing.stdout
