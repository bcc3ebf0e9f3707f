"""BiSeNet semantic segmentation: ``load_config``, ``build_model`` and ``load_weights``."""
from bisenet.checkpoint import load_weights
from bisenet.config import Config, load_config
from bisenet.models import build_model

__all__ = ["Config", "load_config", "build_model", "load_weights"]
__version__ = "0.1.0"
