"""Export: BatchNorm folded into the convolutions, ONNX and TorchScript files. Depends on the
models only; running the exports is ``bisenet.deploy.runtime``'s job."""
import copy
import functools
import inspect
import io

import torch
import torch.nn as nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from bisenet.errors import UserError, require
from bisenet.outputs import write_bytes


class ExportError(UserError):
    """An export asked for in a way it cannot be made (an opset, a model in training mode)."""


@functools.lru_cache(maxsize=None)
def supported_opsets():
    """The ONNX opsets ``export_onnx`` writes with the installed torch: from 11, the first whose
    Resize has the coordinate modes of our bilinear resizes (opsets 9 and 10 export a different
    resize, 7 and 8 none), to the newest the TorchScript-based exporter supports (it warns and
    writes untested graphs above that)."""
    from torch.onnx import _constants  # private, so every name is looked up with a fallback

    highest = getattr(_constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", None) or getattr(
        _constants, "ONNX_MAX_OPSET", 17)
    return range(max(11, getattr(_constants, "ONNX_MIN_OPSET", 7)), highest + 1)


def check_opset(opset):
    """Refuse an opset ``export_onnx`` cannot write, naming the range it can."""
    opsets = supported_opsets()
    if opset not in opsets:
        raise ExportError(f"ONNX opset {opset} is not one that torch {torch.__version__.split('+')[0]} exports these "
                        f"models to: give {opsets[0]} to {opsets[-1]}")
    return opset


def _write(path, data):
    """``data`` into a binary buffer, or to a file name atomically."""
    if hasattr(path, "write"):
        path.write(data)
    else:
        write_bytes(path, data)


def fold_batchnorm(model):
    """Fold every eval-mode BatchNorm that follows a convolution into it, in place.

    Pairs are found structurally: in a Sequential, a Conv2d directly followed by a BatchNorm2d;
    elsewhere, attributes named ``conv*`` and ``bn*`` with the same suffix (conv1/bn1,
    conv_atten/bn_atten, conv/bn). The BatchNorm becomes an Identity. Returns the count folded.
    (The tests check on both models that this finds every BatchNorm that reads a convolution's
    output, by following the tensors of a forward pass.)
    """
    if model.training:
        raise ExportError("fold_batchnorm needs a model in eval mode, whose BatchNorm uses its running statistics: "
                          "call model.eval() first")
    folded = 0
    for module in model.modules():
        if isinstance(module, nn.Sequential):
            names = list(module._modules)
            for first, second in zip(names, names[1:]):
                conv, bn = module._modules[first], module._modules[second]
                if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                    module._modules[first] = fuse_conv_bn_eval(conv, bn)
                    module._modules[second] = nn.Identity()
                    folded += 1
        for name, conv in list(module._modules.items()):
            if not (isinstance(conv, nn.Conv2d) and name.startswith("conv")):
                continue
            bn_name = "bn" + name[len("conv"):]
            bn = module._modules.get(bn_name)
            if isinstance(bn, nn.BatchNorm2d) and not isinstance(module, nn.Sequential):
                module._modules[name] = fuse_conv_bn_eval(conv, bn)
                module._modules[bn_name] = nn.Identity()
                folded += 1
    return folded


class ExportModel(nn.Module):
    """Eval-mode model with BatchNorm folded; returns logits, or the class map with ``argmax``."""

    def __init__(self, model, argmax=False):
        super().__init__()
        self.model = copy.deepcopy(model).eval()
        fold_batchnorm(self.model)
        self.argmax = argmax

    def forward(self, image):
        logits = self.model(image)
        return logits.argmax(dim=1) if self.argmax else logits


def export_onnx(model, path, size, dynamic=False, argmax=False, opset=17):
    """Write ``path`` (a file name, written atomically, or a binary buffer); with ``dynamic`` the
    batch size, height and width are free. ``opset``: one of ``supported_opsets()``. Returns the exported
    (folded) module."""
    check_opset(opset)
    require("onnx", "deploy", "ONNX export")  # torch's exporter writes through it
    wrapper = ExportModel(model.cpu(), argmax).eval()
    example = torch.randn(1, 3, *size)
    output = "labels" if argmax else "logits"
    axes = None
    if dynamic:
        axes = {"image": {0: "batch", 2: "height", 3: "width"},
                output: {0: "batch", 1 if argmax else 2: "height", 2 if argmax else 3: "width"}}
    # The TorchScript-based exporter: it takes dynamic_axes as written. Newer torch defaults to
    # the dynamo exporter and older torch (< 2.5) has no such argument.
    legacy = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
    buffer = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(wrapper, (example,), buffer, input_names=["image"], output_names=[output],
                          dynamic_axes=axes, opset_version=opset, **legacy)
    _write(path, buffer.getvalue())
    return wrapper


def export_torchscript(model, path, size):
    """A traced TorchScript module (logits) for libtorch, written to ``path`` (a file name,
    atomically, or a binary buffer); sizes stay free because every resize in the model reads its
    target size from a tensor."""
    wrapper = ExportModel(model.cpu()).eval()
    with torch.no_grad():
        traced = torch.jit.trace(wrapper, torch.randn(1, 3, *size), check_trace=False)
    buffer = io.BytesIO()
    torch.jit.save(traced, buffer)
    _write(path, buffer.getvalue())
    return traced
