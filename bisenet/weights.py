"""Published weights by name: where they are, how they score, and fetching them into torch's hub
cache (the only code here that touches the network, and only when a name is asked for); and the
ImageNet backbones that ``model.backbone_weights`` names, loaded into a model.

``--weights coincheung/bisenetv1_city`` downloads the reference implementation's released file
once (``torch.hub.download_url_to_file``: progress bar, a ``.partial`` file moved into place only
when complete, so an interrupted download is simply run again), converts it to our format and
caches the result beside it. ``BISENET_WEIGHTS_MIRROR`` replaces the release URL's folder (a
local mirror, or a server in the tests).
"""
import os
import urllib.error
from dataclasses import dataclass, field
from typing import Dict, Optional

import torch
from torchvision.models import ResNet18_Weights

from bisenet.checkpoint import CheckpointError, load_state_strict, read_state_dict, read_torch_file, save_checkpoint
from bisenet.config import Config, load_config
from bisenet.convert import CONVERTERS, detect_architecture
from bisenet.errors import MissingFileError
from bisenet.models import build_model
from bisenet.progress import draws_progress
from bisenet.resources import CONFIG_DIR

RELEASE_URL = "https://github.com/CoinCheung/BiSeNet/releases/download/0.0.0/"
MIRROR_VARIABLE = "BISENET_WEIGHTS_MIRROR"


class WeightsError(CheckpointError):
    """Published weights that cannot be had; the message names the URL and where to put the file."""


@dataclass(frozen=True)
class PublishedWeights:
    name: str
    filename: str  # in the release folder and in the hub cache
    description: str
    config: Optional[str] = None  # in configs/ (bisenet.resources.CONFIG_DIR); None for a backbone
    # mIoU (%) on the dataset's validation split as published, by evaluation mode.
    published_miou: Dict[str, float] = field(default_factory=dict)


PUBLISHED = {w.name: w for w in (
    PublishedWeights("coincheung/bisenetv1_city", "model_final_v1_city_new.pth",
                     "BiSeNetV1 (ResNet-18), Cityscapes, 19 classes", "bisenetv1_city.py",
                     {"ss": 75.44, "ssc": 76.94, "msf": 77.45, "mscf": 78.86}),
    PublishedWeights("coincheung/bisenetv2_city", "model_final_v2_city.pth",
                     "BiSeNetV2, Cityscapes, 19 classes", "bisenetv2_city.py",
                     {"ss": 74.95, "ssc": 75.58, "msf": 76.53, "mscf": 77.08}),
    PublishedWeights("coincheung/bisenetv1_coco", "model_final_v1_coco_new.pth",
                     "BiSeNetV1 (ResNet-18), COCO-Stuff-164k, 171 classes", "bisenetv1_coco.py",
                     {"ss": 31.49, "ssc": 31.42, "msf": 32.46, "mscf": 32.55}),
    PublishedWeights("coincheung/bisenetv2_coco", "model_final_v2_coco.pth",
                     "BiSeNetV2, COCO-Stuff-164k, 171 classes", "bisenetv2_coco.py",
                     {"ss": 30.49, "ssc": 30.55, "msf": 31.81, "mscf": 31.73}),
    PublishedWeights("coincheung/bisenetv1_ade20k", "model_final_v1_ade20k.pth",
                     "BiSeNetV1 (ResNet-18), ADE20K, 150 classes", "bisenetv1_ade20k.py",
                     {"ss": 36.15, "ssc": 36.04, "msf": 37.27, "mscf": 36.58}),
    PublishedWeights("coincheung/bisenetv2_ade20k", "model_final_v2_ade20k.pth",
                     "BiSeNetV2, ADE20K, 150 classes", "bisenetv2_ade20k.py",
                     {"ss": 32.53, "ssc": 32.43, "msf": 33.23, "mscf": 31.72}),
    PublishedWeights("coincheung/backbone_v2", "backbone_v2.pth",
                     "BiSeNetV2's ImageNet-pretrained detail and semantic branches (model.backbone_weights)"),
)}


def hub_checkpoint_path(filename):
    """Where torch's hub machinery keeps ``filename``: ``$TORCH_HOME/hub/checkpoints``."""
    return os.path.join(torch.hub.get_dir(), "checkpoints", filename)


def url_of(entry):
    return (os.environ.get(MIRROR_VARIABLE) or RELEASE_URL).rstrip("/") + "/" + entry.filename


def config_path(entry):
    return os.path.join(CONFIG_DIR, entry.config) if entry.config else None


def lookup(name):
    if name not in PUBLISHED:
        raise WeightsError(f"no published weights named {name!r}; known: {', '.join(PUBLISHED)}")
    return PUBLISHED[name]


def download(name, progress=True):
    """The path of the published file ``name`` in the hub cache, downloaded if it is not there."""
    entry = lookup(name)
    path = hub_checkpoint_path(entry.filename)
    if os.path.isfile(path):
        return path
    url = url_of(entry)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
        # One bar: under torchrun every process resolves the name (they share the cache).
        torch.hub.download_url_to_file(url, path, progress=draws_progress(progress))
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise WeightsError(f"cannot download {url} ({reason}). Without internet access, download it on another "
                           f"machine and put it at {path}") from None
    try:  # the hub's downloader accepts a connection that closes early: check the file is whole
        torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        os.remove(path)
        raise WeightsError(f"the download of {url} is incomplete or damaged ({type(exc).__name__}) and was removed; "
                           "run the command again") from None
    return path


def converted_path(name):
    return hub_checkpoint_path(os.path.join("bisenet", name.replace("/", "_") + ".pth"))


def fetch(name, progress=True):
    """A checkpoint in our format for the published model ``name``: downloaded, converted and
    cached on first use (the converted file sits in the hub cache's ``bisenet/`` folder)."""
    entry = lookup(name)
    if entry.config is None:
        raise WeightsError(f"{name} is a backbone, not a whole model: use it as model.backbone_weights "
                           f"(the config's 'imagenet' reads it from {hub_checkpoint_path(entry.filename)})")
    target = converted_path(name)
    source = download(name, progress)
    if os.path.isfile(target) and os.path.getmtime(target) >= os.path.getmtime(source):
        return target
    state, _, cfg = convert_reference(read_state_dict(source), source)
    save_checkpoint({"model": state, "config": cfg.to_dict(), "converted_from": url_of(entry)}, target)
    return target


def convert_reference(state, source, cfg=None):
    """A CoinCheung/BiSeNet state dict -> ``(our state dict, notes, cfg)``. The architecture and
    class count are read from the keys; ``cfg``, when given, must build that model, else the
    published config for it is used (or the defaults with that model)."""
    name, num_classes = detect_architecture(state, source)
    if cfg is None:
        for entry in PUBLISHED.values():
            if entry.config and entry.config.startswith(f"{name}_"):
                candidate = load_config(config_path(entry))
                if candidate.model.num_classes == num_classes:
                    cfg = candidate
                    break
        else:
            cfg = Config()
            cfg.model.name, cfg.model.num_classes = name, num_classes
            cfg.data.class_names = tuple(f"class {i}" for i in range(num_classes))
            cfg.data.palette, cfg.data.label_map = (), {}
    elif (cfg.model.name, cfg.model.num_classes) != (name, num_classes):
        raise CheckpointError(f"{source} holds a {name} with {num_classes} classes, but the config builds a "
                              f"{cfg.model.name} with {cfg.model.num_classes}: pass the config of that model")
    converted, notes = CONVERTERS["coincheung"](state, build_model(cfg))
    return converted, notes, cfg


TORCHVISION_HINT = (
    "Get the ImageNet ResNet-18 weights on a machine with internet access, e.g.\n"
    "  python -c \"import torchvision; torchvision.models.resnet18(weights='IMAGENET1K_V1')\"\n"
    "which stores resnet18-f37072fd.pth in torch's hub cache ($TORCH_HOME/hub/checkpoints, default "
    "~/.cache/torch/hub/checkpoints); copy it there on this machine or pass its path as "
    "model.backbone_weights=/path/to/resnet18-f37072fd.pth"
)


def load_backbone(model, cfg):
    """Start the ImageNet-pretrained modules of ``model`` (``model.backbone_modules``) from
    ``cfg.model.backbone_weights``, strictly, and return ``model``: "imagenet" is the published
    file in torch's hub cache (BiSeNetV1: torchvision's resnet18-f37072fd.pth; BiSeNetV2: the
    reference's backbone_v2.pth), never downloaded here, so that starting a run works offline
    and cannot hang on the network; any other text is a path to such a file; empty keeps the
    random initialisation. A missing file says how to get it."""
    source = cfg.model.backbone_weights
    if not source:
        return model
    modules = {name: model.get_submodule(name) for name in model.backbone_modules}
    if cfg.model.name == "bisenetv2":
        entry = PUBLISHED["coincheung/backbone_v2"]
        path = hub_checkpoint_path(entry.filename) if source == "imagenet" else os.path.expanduser(source)
        if not os.path.isfile(path):
            raise MissingFileError(
                f"BiSeNetV2's ImageNet-pretrained backbone not found at {path}. Get it with\n"
                f"  python tools/download_weights.py {entry.name}\n"
                f"(or download {url_of(entry)} and put it at {hub_checkpoint_path(entry.filename)}), or pass its path "
                "as model.backbone_weights=/path/to/backbone_v2.pth. To train from scratch on purpose, set "
                "model.backbone_weights= (empty): its authors report about 71-74 mIoU on Cityscapes that way, "
                "against 74.95 with the backbone.")
        state = read_torch_file(path)  # {"detail": state dict, "segment": state dict}
        if not isinstance(state, dict) or set(state) != set(modules):
            found = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise CheckpointError(f"{path} is not BiSeNetV2's backbone file: expected the branches "
                                  f"{sorted(modules)}, found {found}")
        load_state_strict(modules, state, path, "BiSeNetV2's branches", limit=1000)
        return model
    filename = os.path.basename(ResNet18_Weights.IMAGENET1K_V1.url)
    path = hub_checkpoint_path(filename) if source == "imagenet" else os.path.expanduser(source)
    if not os.path.isfile(path):
        raise MissingFileError(f"ImageNet backbone weights not found at {path}.\n{TORCHVISION_HINT}")
    state = read_torch_file(path)
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} is not a torchvision ResNet-18 state dict")
    # torchvision's classifier, which the feature extractor does not have
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    (resnet,) = modules.values()
    load_state_strict(resnet, state, path, "torchvision's ResNet-18")
    return model
