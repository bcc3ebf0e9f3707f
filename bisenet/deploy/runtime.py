"""Running models fast: BatchNorm folded, then onnxruntime on the CPU (fp32; a frozen TorchScript
graph with prepacked oneDNN weights without it), fp16 channels-last on CUDA, bf16 on request.
Every runtime model takes and returns torch tensors, so it drops into ``bisenet.inference``."""
import copy
import io
import warnings

import numpy as np
import torch
import torch.nn as nn

from bisenet.deploy.export import export_onnx, fold_batchnorm
from bisenet.deploy.quantize import quantize_int8
from bisenet.errors import UserError, require


def onnx_session(model_file, threads=None):
    """An onnxruntime CPU session for a .onnx path or bytes, on ``threads`` (default: torch's)."""
    onnxruntime = require("onnxruntime", "deploy", "running ONNX models")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    return onnxruntime.InferenceSession(model_file, options, providers=["CPUExecutionProvider"])


def check_onnx(path, wrapper, size):
    """Run the exported model in onnxruntime on a random image and compare with PyTorch.

    Returns the largest logit difference relative to the largest logit, so that the tolerance
    does not depend on the logits' scale (or, for a class map, the fraction of pixels that
    differ); infinite when either output is not finite."""
    session = onnx_session(path)
    image = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = wrapper(image).numpy()
    got = session.run(None, {"image": image.numpy()})[0]
    if wrapper.argmax:
        return float(np.mean(got != expected))
    if not (np.isfinite(got).all() and np.isfinite(expected).all()):
        return float("inf")
    return float(np.abs(got - expected).max() / max(np.abs(expected).max(), np.finfo(np.float32).tiny))


class OnnxRuntimeModel(nn.Module):
    """A model run by onnxruntime on the CPU, any input size: ``model`` is an eval-mode module
    (exported with BatchNorm folded: the fastest fp32 CPU path measured here) or an ONNX model's
    bytes (the int8 one of ``bisenet.deploy.quantize``). ``dtype`` names its arithmetic."""

    def __init__(self, model, threads=None, dtype="float32"):
        super().__init__()
        if isinstance(model, nn.Module):
            buffer = io.BytesIO()
            export_onnx(model, buffer, (64, 128), dynamic=True)
            model = buffer.getvalue()
        self.session = onnx_session(model, threads)
        self.dtype = dtype

    def forward(self, x):
        logits = self.session.run(None, {"image": x.detach().float().cpu().contiguous().numpy()})[0]
        return torch.from_numpy(logits).to(x.device)


class FastModel(nn.Module):
    """A folded, channels-last copy of an eval-mode model that runs in ``dtype`` and returns
    float32 logits.

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


PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")


def make_fast(model, device, precision="auto", calibration=None):
    """The fastest inference form of an eval-mode ``model`` on ``device``.

    ``precision``: "auto" (fp16 on CUDA, fp32 on the CPU, where oneDNN's bf16 convolutions ran
    at 165-175 GFLOP/s against 300 for fp32 on an AVX-512 BF16 Xeon, and emulated on AVX2),
    "fp32", "bf16", "fp16", or "int8" (CPU only: onnxruntime, calibrated on ``calibration``, a
    list of preprocessed images that the caller reads, e.g. with
    ``bisenet.data.calibration.calibration_inputs``). An fp32 CPU model runs in onnxruntime when it
    is installed (the ``deploy`` extra), else as a frozen TorchScript graph; bf16 and fp16 are a
    ``FastModel``.
    """
    if precision not in PRECISIONS:
        raise UserError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    cuda = torch.device(device).type == "cuda"
    if precision == "int8":
        if cuda:
            raise UserError("int8 inference runs on the CPU (onnxruntime): use --device cpu, or fp16 on CUDA")
        return OnnxRuntimeModel(quantize_int8(model.cpu(), calibration), dtype="int8")
    dtype = {"auto": torch.float16 if cuda else None, "fp32": None, "bf16": torch.bfloat16,
             "fp16": torch.float16}[precision]
    if not cuda and dtype is None:
        try:
            return OnnxRuntimeModel(model.cpu())
        except ImportError:
            pass
    return FastModel(model, dtype, device)
