import re
from pathlib import Path

import pytest

from bisenet import load_config  # the config's own checks, then the names (bisenet.config_check)
from bisenet.config import Config, ConfigError

ROOT = Path(__file__).resolve().parent.parent
CITY = ROOT / "configs" / "bisenetv1_city.py"


# CoinCheung/BiSeNet's configs in its own words, with the GPUs its dist_train.sh launches each on,
# and the constants of its tools/train_amp.py and datasets (lib/data/*.py).
REFERENCE_CONFIGS = {
    "bisenetv1_city.py": dict(model_type="bisenetv1", n_cats=19, lr_start=1e-2, weight_decay=5e-4, warmup_iters=1000,
                              max_iter=80000, scales=[0.75, 2.0], cropsize=[1024, 1024], eval_crop=[1024, 1024],
                              eval_scales=[0.5, 0.75, 1.0, 1.25, 1.5, 1.75], ims_per_gpu=8, eval_ims_per_gpu=2,
                              use_fp16=True, use_sync_bn=False, gpus=2, dataset="CityScapes"),
    "bisenetv2_city.py": dict(model_type="bisenetv2", n_cats=19, lr_start=5e-3, weight_decay=5e-4, warmup_iters=1000,
                              max_iter=150000, scales=[0.25, 2.0], cropsize=[512, 1024], eval_crop=[1024, 1024],
                              eval_scales=[0.5, 0.75, 1.0, 1.25, 1.5, 1.75], ims_per_gpu=8, eval_ims_per_gpu=2,
                              use_fp16=True, use_sync_bn=True, gpus=2, dataset="CityScapes"),
    "bisenetv1_coco.py": dict(model_type="bisenetv1", n_cats=171, lr_start=1e-2, weight_decay=1e-4, warmup_iters=1000,
                              max_iter=90000, scales=[0.5, 2.0], cropsize=[512, 512], eval_crop=[512, 512],
                              eval_scales=[0.5, 0.75, 1.0, 1.25, 1.5, 1.75], ims_per_gpu=4, eval_ims_per_gpu=1,
                              use_fp16=True, use_sync_bn=True, gpus=4, dataset="CocoStuff"),
    "bisenetv2_coco.py": dict(model_type="bisenetv2", n_cats=171, lr_start=5e-3, weight_decay=1e-4, warmup_iters=1000,
                              max_iter=180000, scales=[0.75, 2.0], cropsize=[640, 640], eval_crop=[640, 640],
                              eval_scales=[0.5, 0.75, 1, 1.25, 1.5, 1.75], ims_per_gpu=2, eval_ims_per_gpu=1,
                              use_fp16=True, use_sync_bn=True, gpus=8, dataset="CocoStuff"),
    "bisenetv1_ade20k.py": dict(model_type="bisenetv1", n_cats=150, lr_start=4e-2, weight_decay=1e-4,
                                warmup_iters=1000, max_iter=40000, scales=[0.5, 2.0], cropsize=[512, 512],
                                eval_crop=[512, 512], eval_scales=[0.5, 0.75, 1.0, 1.25, 1.5, 1.75],
                                eval_start_shortside=512, ims_per_gpu=8, eval_ims_per_gpu=1, use_fp16=True,
                                use_sync_bn=True, gpus=8, dataset="ADE20k"),
    "bisenetv2_ade20k.py": dict(model_type="bisenetv2", n_cats=150, lr_start=5e-3, weight_decay=1e-4,
                                warmup_iters=1000, max_iter=160000, scales=[0.5, 2.0], cropsize=[640, 640],
                                eval_crop=[640, 640], eval_start_shortside=640,
                                eval_scales=[0.5, 0.75, 1, 1.25, 1.5, 1.75], ims_per_gpu=2, eval_ims_per_gpu=1,
                                use_fp16=True, use_sync_bn=True, gpus=8, dataset="ADE20k"),
}
REFERENCE_CONSTANTS = dict(momentum=0.9, warmup_ratio=0.1, power=0.9, ohem_thresh=0.7, lr_multiplier=10.0,
                           aux_weight=1.0, lb_ignore=255)
REFERENCE_NORMALISATION = {  # (mean, std), RGB
    "CityScapes": ((0.3257, 0.3690, 0.3223), (0.2112, 0.2148, 0.2115)),
    "CocoStuff": ((0.46962251, 0.4464104, 0.40718787), (0.27469736, 0.27012361, 0.28515933)),
    "ADE20k": ((0.49343230, 0.46819794, 0.43106043), (0.25680755, 0.25506608, 0.27422913)),
}


@pytest.mark.parametrize("name, ref", REFERENCE_CONFIGS.items())
def test_configs_are_the_references_recipes(name, ref):
    cfg = load_config(ROOT / "configs" / name)
    const = REFERENCE_CONSTANTS
    assert (cfg.model.name, cfg.model.num_classes, cfg.model.backbone_weights) == (ref["model_type"], ref["n_cats"],
                                                                                    "imagenet")
    assert (cfg.train.base_lr, cfg.train.weight_decay, cfg.train.warmup_iters, cfg.train.max_iters) == (
        ref["lr_start"], ref["weight_decay"], ref["warmup_iters"], ref["max_iter"])
    assert cfg.train.batch_size == ref["ims_per_gpu"] * ref["gpus"]
    assert cfg.eval.batch_size == ref["eval_ims_per_gpu"]
    assert cfg.eval.short_side == ref.get("eval_start_shortside", 0)
    assert (cfg.train.amp, cfg.train.amp_dtype, cfg.train.sync_bn) == (ref["use_fp16"], "auto", ref["use_sync_bn"])
    assert list(cfg.data.scale_range) == ref["scales"] and list(cfg.data.crop_size) == ref["cropsize"]
    assert list(cfg.eval.crop_size) == ref["eval_crop"] and list(cfg.eval.scales) == ref["eval_scales"]
    assert (cfg.train.momentum, cfg.train.warmup_ratio, cfg.train.poly_power, cfg.train.loss, cfg.train.ohem_thresh,
            cfg.train.head_lr_multiplier, cfg.train.aux_weight) == (const["momentum"], const["warmup_ratio"],
                                                                    const["power"], "ohem", const["ohem_thresh"],
                                                                    const["lr_multiplier"], const["aux_weight"])
    assert (cfg.data.ignore_index, (cfg.data.mean, cfg.data.std)) == (const["lb_ignore"],
                                                                     REFERENCE_NORMALISATION[ref["dataset"]])
    assert (cfg.data.color_jitter, cfg.data.flip_prob) == (0.4, 0.5)
    assert (cfg.eval.protocol, cfg.eval.final_modes) == ("coincheung", ("ss", "ssc", "msf", "mscf"))


def test_overrides_are_parsed_and_typed():
    cfg = load_config(CITY, ["train.max_iters=100", "train.warmup_iters=10", "data.crop_size=[512,512]",
                             "train.amp=false", "train.output_dir=out/x"])
    assert cfg.train.max_iters == 100 and type(cfg.train.max_iters) is int
    assert cfg.data.crop_size == (512, 512)
    assert type(cfg.data.crop_size) is tuple and all(type(v) is int for v in cfg.data.crop_size)
    assert cfg.train.amp is False
    assert cfg.train.output_dir == "out/x"


def test_a_text_field_takes_the_text_the_shell_gives():
    # data.root=2024 is the folder "2024", not a number that needs quoting
    cfg = load_config(CITY, ["data.root=2024", "train.output_dir=1e3", "model.backbone_weights=None",
                             "data.train_list='quoted.txt'", "eval.protocol=standard"])
    assert (cfg.data.root, cfg.train.output_dir, cfg.model.backbone_weights) == ("2024", "1e3", "None")
    assert (cfg.data.train_list, cfg.eval.protocol) == ("quoted.txt", "standard")
    with pytest.raises(ConfigError, match="train.max_iters"):  # numbers stay numbers
        load_config(CITY, ["train.max_iters=2024.5"])


@pytest.mark.parametrize("override, key", [
    ("data.std=[0.2,0.0,0.2]", "data.std=[0.2, 0.0, 0.2]: each channel's standard deviation must be positive"),
    ("data.std=[0.2,-0.1,0.2]", "data.std=[0.2, -0.1, 0.2]"),
])
def test_a_normalisation_that_cannot_work_is_refused_at_load(override, key):
    with pytest.raises(ConfigError, match=re.escape(key)):
        load_config(CITY, [override])


@pytest.mark.parametrize("line, key", [
    ("cfg.data.std = (0.2, float('nan'), 0.2)", "data.std=[0.2, nan, 0.2]: must be a finite number"),
    ("cfg.data.mean = (float('inf'), 0.3, 0.3)", "data.mean=[inf, 0.3, 0.3]: must be a finite number"),
    ("cfg.train.base_lr = float('nan')", "train.base_lr=nan: must be a finite number"),
    ("cfg.eval.scales = (1.0, float('inf'))", "eval.scales=[1.0, inf]"),
    ("cfg.train.ohem_thresh = float('nan')", "train.ohem_thresh=nan"),
])
def test_inf_and_nan_are_refused_in_every_number(tmp_path, line, key):
    path = tmp_path / "nonfinite.py"
    path.write_text(f"from bisenet.config import base_config\ncfg = base_config({str(CITY)!r})\n{line}\n")
    with pytest.raises(ConfigError, match=re.escape(key)):
        load_config(path)


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
    cfg = load_config(CITY, ["train.max_iters=123", "train.warmup_iters=10", "data.crop_size=[256,512]"])
    assert Config.from_dict(cfg.to_dict()) == cfg


def test_dict_round_trip_through_lists():
    cfg = load_config(CITY)
    plain = {s: {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()} for s, d in cfg.to_dict().items()}
    assert Config.from_dict(plain) == cfg


def test_ignore_index_inside_the_classes_is_refused():
    with pytest.raises(ConfigError, match=r"data.ignore_index=5: is a class id \(0-18\)"):
        load_config(CITY, ["data.ignore_index=5", "data.label_map={}"])
    assert load_config(CITY, ["data.ignore_index=19", "data.label_map={}"]).data.ignore_index == 19


@pytest.mark.parametrize("override, key", [
    ("data.crop_size=[0,512]", "data.crop_size"), ("data.crop_size=[512,-1]", "data.crop_size"),
    ("train.batch_size=1", "BatchNorm needs more than one value per channel"),
    ("train.checkpoint_interval=0", "train.checkpoint_interval"), ("train.log_interval=0", "train.log_interval"),
    ("data.num_workers=-1", "data.num_workers"), ("train.max_iters=-5", "train.max_iters"),
    ("train.max_iters=0", "train.max_iters"), ("train.warmup_iters=80000", "less than train.max_iters=80000"),
    ("train.keep_checkpoints=0", "train.keep_checkpoints"), ("data.flip_prob=1.5", "data.flip_prob"),
    ("model.name=bisenetv3", "bisenetv1, bisenetv2"), ("eval.scales=[]", "eval.scales"),
    ("data.scale_range=[2.0,0.5]", "data.scale_range"), ("train.base_lr=0.0", "train.base_lr"),
    ("train.ema_decay=1.0", "train.ema_decay=1.0: must be in [0, 1)"), ("train.ema_decay=-0.5", "train.ema_decay"),
    ("train.label_smoothing=1.0", "train.label_smoothing"), ("train.clip_grad_norm=-1.0", "train.clip_grad_norm"),
    ("train.dist_bn=mean", "train.dist_bn='mean': choose reduce, broadcast"),
    ("eval.final_modes=['ss','msf','ss']", "eval.final_modes=['ss', 'msf', 'ss']: ss is listed twice"),
])
def test_values_outside_their_range_are_refused_at_load(override, key):
    with pytest.raises(ConfigError, match=re.escape(key)):
        load_config(CITY, [override])


@pytest.mark.parametrize("text, expected", [
    ("from bisenet.config import Config\ncfg = Config(\n", "bad.py:2: SyntaxError"),
    ("import bisenet\nfrom bisenet.nowhere import X\ncfg = None\n", "bad.py:2: ModuleNotFoundError"),
    ("from bisenet.config import Config, TrainConfig\n\ncfg = Config(train=TrainConfig(max_iter=5))\n",
     "bad.py:3: TypeError"),
])
def test_a_broken_config_file_is_reported_with_its_line(tmp_path, text, expected):
    path = tmp_path / "bad.py"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(expected)):
        load_config(path)


def test_a_broken_config_file_is_a_message_from_the_tools(tmp_path):
    from conftest import run_tool

    (tmp_path / "bad.py").write_text("cfg = Config(\n")
    result = run_tool("train.py", "--config", str(tmp_path / "bad.py"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"error: {tmp_path / 'bad.py'}:1: SyntaxError" in result.stderr


def test_values_a_config_file_sets_get_their_declared_types(tmp_path):
    path = tmp_path / "typed.py"
    path.write_text(f"from bisenet.config import base_config\ncfg = base_config({str(CITY)!r})\n"
                    "cfg.data.crop_size = [512, 256]\ncfg.train.base_lr = 1\ncfg.eval.scales = [1, 1.5]\n")
    cfg = load_config(path)
    assert (cfg.data.crop_size, cfg.eval.scales) == ((512, 256), (1.0, 1.5))
    assert type(cfg.train.base_lr) is float and all(type(s) is float for s in cfg.eval.scales)


def test_validate_checks_and_changes_nothing():
    from bisenet.config import validate

    cfg = Config()
    cfg.data.crop_size = [512, 512]  # set in code, past the places that give values their types
    with pytest.raises(ConfigError, match=re.escape("'data.crop_size' expects Tuple, got [512, 512]")):
        validate(cfg)
    assert cfg.data.crop_size == [512, 512]
    cfg.data.crop_size = (512, 512)
    before = Config.from_dict(cfg.to_dict())
    validate(cfg)
    assert cfg == before


def test_typed_gives_a_config_built_in_code_its_declared_types_in_a_copy():
    from bisenet.config import typed

    cfg = Config()
    cfg.data.crop_size, cfg.train.base_lr, cfg.eval.scales = [512, 256], 1, [1, 1.5]
    got = typed(cfg)
    assert (got.data.crop_size, got.eval.scales) == ((512, 256), (1.0, 1.5)) and type(got.train.base_lr) is float
    assert cfg.data.crop_size == [512, 256] and type(cfg.train.base_lr) is int  # the caller's config unchanged
    cfg.train.max_iter = 5  # a misspelt field set in code
    with pytest.raises(ConfigError, match="train.max_iter.*did you mean train.max_iters"):
        typed(cfg)


def test_a_base_config_is_found_beside_the_file_that_names_it(tmp_path, monkeypatch):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "base.py").write_text("from bisenet.config import base_config\n"
                                            f"cfg = base_config({str(CITY)!r})\ncfg.train.max_iters = 3210\n")
    (tmp_path / "a" / "b" / "child.py").write_text("from bisenet.config import base_config\n"
                                                   "cfg = base_config('../base.py')\ncfg.train.warmup_iters = 7\n")
    monkeypatch.chdir(tmp_path)  # not where the files are
    cfg = load_config("a/b/child.py")
    assert (cfg.train.max_iters, cfg.train.warmup_iters, cfg.train.output_dir) == (3210, 7, "output/child")


def test_the_config_alone_does_not_know_the_package_names_which_bisenet_load_config_checks():
    # bisenet.config imports nothing of what it configures (tests/test_imports.py); the names of
    # models, losses, datasets and evaluation modes are checked one layer up, by config_check.
    from bisenet import config

    for override, message in (("model.name=bisenetv3", "model.name='bisenetv3': choose one of bisenetv1, bisenetv2"),
                              ("train.loss=dice", "train.loss='dice': choose one of"),
                              ("data.dataset=kitti", "data.dataset must be one of cityscapes"),
                              ("eval.protocol=mine", "eval.protocol must be one of coincheung, standard"),
                              ("eval.final_modes=['ssx']", "eval.final_modes: unknown evaluation mode 'ssx'")):
        assert config.load_config(CITY, [override])
        with pytest.raises(ConfigError, match=re.escape(message)):
            load_config(CITY, [override])
