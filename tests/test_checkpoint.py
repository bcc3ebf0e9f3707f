import json
import os

import pytest
import torch

import bisenet
from bisenet.checkpoint import CheckpointError, load_checkpoint, load_weights, read_state_dict, save_checkpoint
from bisenet.convert import convert_coincheung
from bisenet.models.bisenetv1 import BiSeNetV1

from conftest import REFERENCE, run_tool


def reference_state_dict(seed=0, drop=()):
    """Random tensors with the names and shapes of the reference implementation's checkpoints."""
    with open(os.path.join(REFERENCE, "coincheung_bisenetv1_state_dict.json")) as f:
        listing = json.load(f)
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in listing:
        if name.startswith(drop):
            continue
        if name.endswith("num_batches_tracked"):
            state[name] = torch.tensor(7)
        elif name.endswith("running_var"):
            state[name] = torch.rand(shape, generator=generator) + 0.5
        else:
            state[name] = torch.randn(shape, generator=generator) * 0.1
    return state


def test_converter_reads_a_distributed_fp16_checkpoint(tmp_path):
    # A DDP checkpoint saved from fp16 weights: the converter must strip "module." and give our
    # fp32 model every value unchanged (fp16 -> fp32 is exact); the counts stay integers.
    source = reference_state_dict()
    saved = {f"module.{k}": v.half() if v.is_floating_point() else v for k, v in source.items()}
    torch.save(saved, tmp_path / "model_final_v1_city_new.pth")
    result = run_tool("convert_checkpoint.py", "--from", "coincheung", tmp_path / "model_final_v1_city_new.pth",
                      tmp_path / "ours.pth")
    assert result.returncode == 0, result.stderr
    assert "converted 222 entries (bisenetv1, 19 classes)" in result.stdout
    converted = load_checkpoint(str(tmp_path / "ours.pth"))
    assert converted["converted_from"] == "coincheung" and converted["config"]["model"]["name"] == "bisenetv1"
    state = load_weights(BiSeNetV1(19), str(tmp_path / "ours.pth")).state_dict()
    for name, tensor in state.items():
        expected = saved[f"module.{name}"]
        assert tensor.dtype == (torch.float32 if expected.is_floating_point() else expected.dtype), name
        assert torch.equal(tensor, expected.to(tensor.dtype)), name


def test_converter_reports_missing_and_unexpected(tmp_path):
    source = reference_state_dict()
    del source["ffm.conv.weight"]
    source["extra.weight"] = torch.zeros(3)
    with pytest.raises(CheckpointError) as info:
        convert_coincheung(source, BiSeNetV1(19))
    assert "ffm.conv.weight" in str(info.value) and "extra.weight" in str(info.value)
    torch.save(source, tmp_path / "bad.pth")
    result = run_tool("convert_checkpoint.py", "--from", "coincheung", tmp_path / "bad.pth", tmp_path / "o.pth")
    assert result.returncode != 0 and "ffm.conv.weight" in result.stderr
    assert not (tmp_path / "o.pth").exists()


def test_converter_reports_shape_mismatch():
    source = reference_state_dict()
    source["conv_out.conv_out.weight"] = torch.zeros(20, 256, 1, 1)
    with pytest.raises(CheckpointError, match="conv_out.conv_out.weight"):
        convert_coincheung(source, BiSeNetV1(19))


def test_converter_fills_absent_aux_heads_and_says_so():
    source = reference_state_dict(drop=("conv_out16.", "conv_out32."))
    state, notes = convert_coincheung(source, BiSeNetV1(19))
    assert len(state) == 222
    assert notes and "auxiliary" in notes[0]


@pytest.mark.parametrize("wrap", ["bare", "ours", "state_dict", "ddp"])
def test_load_weights_formats(tmp_path, wrap):
    source = reference_state_dict(seed=1)
    obj = {
        "bare": source,
        "ours": {"model": source, "iteration": 3},
        "state_dict": {"state_dict": source, "epoch": 1},
        "ddp": {f"module.{k}": v for k, v in source.items()},
    }[wrap]
    torch.save(obj, tmp_path / "w.pth")
    model = bisenet.load_weights(BiSeNetV1(19), str(tmp_path / "w.pth"))
    assert torch.equal(model.state_dict()["sp.conv1.conv.weight"], source["sp.conv1.conv.weight"])


def test_load_weights_is_strict_and_readable(tmp_path):
    source = reference_state_dict()
    del source["cp.arm16.bn_atten.bias"]
    torch.save(source, tmp_path / "w.pth")
    with pytest.raises(CheckpointError, match="cp.arm16.bn_atten.bias"):
        load_weights(BiSeNetV1(19), str(tmp_path / "w.pth"))
    mismatch = r"conv_out.conv_out.weight: checkpoint \(19, 256, 1, 1\), model \(5, 256, 1, 1\)"
    with pytest.raises(CheckpointError, match=mismatch):
        load_weights(BiSeNetV1(5), str(tmp_path / "w.pth"))
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        read_state_dict(str(tmp_path / "nope.pth"))


def test_weights_of_our_other_architecture_name_its_config_not_the_converter(tmp_path):
    from bisenet.models.bisenetv2 import BiSeNetV2

    torch.save({"model": BiSeNetV2(19).state_dict()}, tmp_path / "v2.pth")
    with pytest.raises(CheckpointError) as error:
        load_weights(BiSeNetV1(19), str(tmp_path / "v2.pth"))
    assert ("These are BiSeNetV2 weights (19 classes); pass a BiSeNetV2 config, e.g. configs/bisenetv2_city.py, or "
            "the config.py saved beside them") in str(error.value)
    assert "convert_checkpoint" not in str(error.value)
    with pytest.raises(CheckpointError, match=r"These are BiSeNetV1 weights \(171 classes\); pass a BiSeNetV1 "
                                              r"config, e.g. configs/bisenetv1_coco.py"):
        load_weights(BiSeNetV2(19), {k: v for k, v in BiSeNetV1(171).state_dict().items()})
    # Names of another implementation still point to the converter.
    with pytest.raises(CheckpointError, match="convert it with tools/convert_checkpoint.py"):
        load_weights(BiSeNetV1(19), {"backbone.stem.weight": torch.zeros(1)})

    image = tmp_path / "street.png"
    image.write_bytes(b"")  # never read: the weights are refused first
    result = run_tool("demo.py", image, "--config", "configs/bisenetv1_synthetic.py", "--weights", tmp_path / "v2.pth",
                      "--out-dir", tmp_path / "demo")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "These are BiSeNetV2 weights (19 classes); pass a BiSeNetV2 config" in result.stderr


def test_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pth"
    save_checkpoint({"iteration": 1}, str(path))

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({"iteration": 2}, str(path))
    monkeypatch.undo()
    assert torch.load(path, weights_only=True) == {"iteration": 1}
    assert os.listdir(tmp_path) == ["ckpt.pth"]
