"""BiSeNet semantic segmentation: ``load_config``, ``build_model``, ``load_weights``,
``load_model`` and ``predict``.

This file is the top of the package's layers (README, Layout): it imports those names only when
one is first asked for (PEP 562), so that importing a submodule (``bisenet.errors``,
``bisenet.config``) loads that submodule and what it imports, not the whole package."""
__version__ = "0.1.0"
__all__ = ["Config", "load_config", "build_model", "load_weights", "load_model", "predict"]


def __getattr__(name):
    if name not in __all__:
        raise AttributeError(f"module 'bisenet' has no attribute {name!r}")
    from bisenet.checkpoint import load_weights
    from bisenet.config import Config
    from bisenet.config_check import load_config
    from bisenet.inference import load_model, predict
    from bisenet.models import build_model

    public = dict(Config=Config, load_config=load_config, build_model=build_model, load_weights=load_weights,
                  load_model=load_model, predict=predict)
    globals().update(public)  # looked up once
    return public[name]


def __dir__():
    return sorted([*globals(), *__all__])
