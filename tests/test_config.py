from pathlib import Path

import pytest

from bisenet.config import Config, ConfigError, load_config

ROOT = Path(__file__).resolve().parent.parent
CITY = ROOT / "configs" / "bisenetv1_city.py"


def test_city_config_is_the_published_recipe():
    cfg = load_config(CITY)
    assert cfg.model.num_classes == 19
    assert cfg.data.ignore_index == 255
    assert cfg.data.root == "datasets/cityscapes"
    assert cfg.data.mean == (0.3257, 0.3690, 0.3223)
    assert cfg.data.std == (0.2112, 0.2148, 0.2115)
    assert cfg.data.scale_range == (0.75, 2.0)
    assert cfg.data.crop_size == (1024, 1024)
    assert cfg.train.momentum == 0.9
    assert cfg.train.base_lr == 1e-2
    assert cfg.train.weight_decay == 5e-4
    assert cfg.train.warmup_iters == 1000
    assert cfg.train.max_iters == 80000
    assert cfg.train.batch_size == 16
    assert cfg.train.amp is True
    assert cfg.train.sync_bn is False
    assert cfg.eval.crop_size == (1024, 1024)
    assert cfg.eval.scales == (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)


def test_overrides_are_parsed_and_typed():
    cfg = load_config(CITY, ["train.max_iters=100", "data.crop_size=[512,512]",
                             "train.amp=false", "train.output_dir=out/x"])
    assert cfg.train.max_iters == 100 and type(cfg.train.max_iters) is int
    assert cfg.data.crop_size == (512, 512)
    assert type(cfg.data.crop_size) is tuple and all(type(v) is int for v in cfg.data.crop_size)
    assert cfg.train.amp is False
    assert cfg.train.output_dir == "out/x"


def test_unknown_override_key_names_it_and_suggests_the_right_one():
    with pytest.raises(ConfigError) as info:
        load_config(CITY, ["train.max_iter=5"])
    assert "train.max_iter" in str(info.value)
    assert "train.max_iters" in str(info.value)


def test_wrongly_typed_override_names_the_key():
    with pytest.raises(ConfigError, match="train.max_iters"):
        load_config(CITY, ["train.max_iters=abc"])


def test_misspelt_keyword_in_config_file(tmp_path):
    path = tmp_path / "bad.py"
    path.write_text("from bisenet.config import Config, TrainConfig\n"
                    "cfg = Config(train=TrainConfig(max_iter=5))\n")
    with pytest.raises(ConfigError, match="max_iter"):
        load_config(path)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError):
        load_config(tmp_path / "nope.py")


def test_dict_round_trip():
    cfg = load_config(CITY, ["train.max_iters=123", "data.crop_size=[256,512]"])
    assert Config.from_dict(cfg.to_dict()) == cfg


def test_dict_round_trip_through_lists():
    cfg = load_config(CITY)
    plain = {s: {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()} for s, d in cfg.to_dict().items()}
    assert Config.from_dict(plain) == cfg
