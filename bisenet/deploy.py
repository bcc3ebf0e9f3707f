"""The fast inference path: BatchNorm folded into convolutions, channels-last memory, weights
prepacked for oneDNN on the CPU, and reduced precision where it is faster (fp16 on CUDA; bf16 on
request, see ``reduced_precision_dtype``)."""
import copy
import warnings

import torch
import torch.nn as nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def fold_batchnorm(model):
    """Fold every eval-mode BatchNorm that follows a convolution into it, in place.

    Pairs are found structurally: in a Sequential, a Conv2d directly followed by a BatchNorm2d;
    elsewhere, attributes named ``conv*`` and ``bn*`` with the same suffix (conv1/bn1,
    conv_atten/bn_atten, conv/bn). The BatchNorm becomes an Identity. Returns the count folded.
    """
    if model.training:
        raise ValueError("fold_batchnorm needs a model in eval mode (running statistics)")
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


def reduced_precision_dtype(device):
    """fp16 on CUDA; on the CPU None (fp32). Measured on a 2-core AVX-512 BF16 Xeon, oneDNN's
    bf16 convolutions ran at 165-175 GFLOP/s against 300 for fp32, so bf16 is slower there;
    ``precision="bf16"`` still forces it where it pays (AMX CPUs)."""
    return torch.float16 if torch.device(device).type == "cuda" else None


def cpu_supports_bf16():
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


class FastModel(nn.Module):
    """A folded, channels-last copy of an eval-mode model that runs in ``dtype`` and returns
    float32 logits; a drop-in for the model in ``bisenet.inference``.

    In fp32 on the CPU the model is also traced and frozen with oneDNN-prepacked weights
    (``torch.jit.optimize_for_inference``): 20% faster than eager at 1024x2048. Every resize in
    the models reads its size from a tensor, so the trace serves any input size.
    """

    def __init__(self, model, dtype=None, device="cpu"):
        super().__init__()
        self.model = copy.deepcopy(model).eval().to(device)
        self.folded = fold_batchnorm(self.model)
        self.dtype = dtype
        self.model.to(memory_format=torch.channels_last)
        if dtype is not None:
            self.model.to(dtype)
        self.frozen = None
        if torch.device(device).type == "cpu" and dtype is None:
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated, not gone
                example = torch.zeros(1, 3, 64, 128).contiguous(memory_format=torch.channels_last)
                traced = torch.jit.trace(self.model, example, check_trace=False)
                self.frozen = torch.jit.optimize_for_inference(torch.jit.freeze(traced))

    def forward(self, x):
        x = x.contiguous(memory_format=torch.channels_last)
        if self.frozen is not None:
            return self.frozen(x)
        if self.dtype is not None:
            x = x.to(self.dtype)
        return self.model(x).float()


def make_fast(model, device, precision="auto"):
    """The fastest inference form of an eval-mode ``model`` on ``device``.

    ``precision``: "auto" (fp16 on CUDA, fp32 on the CPU), "fp32", "bf16" or "fp16". An fp32
    CPU model runs in onnxruntime when it is installed (it reaches the CPU's fp32 peak), else
    as a frozen TorchScript graph; everything else is a ``FastModel``.
    """
    dtype = {"auto": reduced_precision_dtype(device), "fp32": None, "bf16": torch.bfloat16,
             "fp16": torch.float16}[precision]
    if torch.device(device).type == "cpu" and dtype is None:
        try:
            from bisenet.export import OnnxRuntimeModel

            return OnnxRuntimeModel(model.cpu())
        except ImportError:
            pass
    return FastModel(model, dtype, device)
