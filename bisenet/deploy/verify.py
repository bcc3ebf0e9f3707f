"""Deployment files written only once checked: each export is run (in onnxruntime, or reloaded
as TorchScript) and compared with the PyTorch model it came from; over the tolerance the file
is not written and ``ExportCheckError`` says by how much."""
import copy
import dataclasses
import io
from typing import Optional, Tuple

import numpy as np
import torch

from bisenet.deploy.export import ExportError, check_opset, export_onnx, export_torchscript
from bisenet.deploy.quantize import count_quantized, quantize_int8
from bisenet.deploy.runtime import check_onnx, onnx_session
from bisenet.outputs import write_bytes

# Defaults of the ONNX checks: the largest logit difference relative to the largest logit (fp32
# rounding in another order gives about 1e-6), the fraction of pixels whose class differs for a
# class map (only pixels whose two best logits are that close can flip), and for int8, whose
# rounding is 2^-8 of each activation's range, the fraction of pixels that may change class.
ONNX_TOLERANCE = 1e-4
ARGMAX_TOLERANCE = 1e-4
INT8_TOLERANCE = 0.01
# TorchScript's default: this many times the rounding of one fp32 evaluation, measured against
# float64 (``fp32_rounding``). Folding BatchNorm and a traced graph only reorder fp32 arithmetic,
# which stays within a few roundings; a wrong fold or a size baked into the trace is off by
# orders of magnitude more.
ROUNDING_MARGIN = 8.0
EPS32 = torch.finfo(torch.float32).eps


class ExportCheckError(ExportError):
    """An export that differs from PyTorch by more than the tolerance; nothing was written."""


@dataclasses.dataclass(frozen=True)
class OnnxOptions:
    """How to export to ONNX: traced at ``size``; ``dynamic`` frees the batch size, height and
    width; ``argmax`` outputs the class map; ``opset`` (default 17); ``int8`` quantises instead,
    calibrated on ``calib_images`` training images; ``tolerance`` of the check (default: that of
    the kind of output, see ``ONNX_TOLERANCE``)."""

    size: Tuple[int, int] = (1024, 2048)
    dynamic: bool = False
    argmax: bool = False
    opset: Optional[int] = None
    int8: bool = False
    calib_images: int = 32
    tolerance: Optional[float] = None

    def check(self):
        """Refuse options that contradict each other or an opset that cannot be written, naming
        the fix; returns the opset."""
        if self.int8 and self.argmax:
            raise ExportError("--int8 writes logits (the classifier stays fp32); take the argmax after it, or drop "
                              "--argmax")
        if self.int8 and self.opset is not None:
            raise ExportError("--int8 exports at opset 17, the one its quantisation was measured at: drop --opset")
        return check_opset(17 if self.opset is None else self.opset)


def relative_difference(got, expected):
    """The largest difference of ``got`` from ``expected`` relative to the largest ``|expected|``,
    so that the tolerance does not depend on the logits' scale; infinite when either is not
    finite or their shapes differ."""
    got, expected = torch.as_tensor(got).double(), torch.as_tensor(expected).double()
    if got.shape != expected.shape or not (torch.isfinite(got).all() and torch.isfinite(expected).all()):
        return float("inf")
    return float((got - expected).abs().max() / max(float(expected.abs().max()), np.finfo(np.float32).tiny))


def fp32_rounding(model, image):
    """What one fp32 evaluation of ``model`` on ``image`` rounds off, relative to the largest
    logit: eager fp32 against the same model in float64 (exact to about 1e-16), at least four
    roundings of the largest logit in case eager happens to be exact."""
    with torch.no_grad():
        exact = copy.deepcopy(model).double()(image.double())
        eager = model(image)
    return max(relative_difference(eager, exact), 4 * EPS32)


def _written(out, data, difference, tolerance, summary):
    """Write ``data`` to ``out`` if ``difference`` is within ``tolerance``, else refuse."""
    if not difference <= tolerance:  # NaN fails too
        raise ExportCheckError(f"the exported model differs from PyTorch by more than the tolerance, so {out} was "
                               f"not written: {summary}")
    write_bytes(out, data)
    return summary


def write_onnx(model, out, size, dynamic=False, argmax=False, opset=17, tolerance=None):
    """Export ``model`` to ONNX (``export_onnx``), compare onnxruntime with PyTorch on a random
    image (at ``size``, or with ``dynamic`` at about half of it, odd, to show that sizes are
    free) and write ``out`` only if within ``tolerance`` (default ``ONNX_TOLERANCE``, or
    ``ARGMAX_TOLERANCE`` of the pixels for a class map). Returns the check's summary."""
    tolerance = (ARGMAX_TOLERANCE if argmax else ONNX_TOLERANCE) if tolerance is None else tolerance
    buffer = io.BytesIO()
    wrapper = export_onnx(model, buffer, tuple(size), dynamic, argmax, opset)
    check_size = (size[0] // 2 + 5, size[1] // 2 + 3) if dynamic else tuple(size)
    difference = check_onnx(buffer.getvalue(), wrapper, check_size)
    what = "fraction of differing pixels" if argmax else "largest logit difference (relative)"
    summary = (f"onnxruntime vs PyTorch at {check_size[0]}x{check_size[1]}: {what} {difference:.3g} "
               f"(tolerance {tolerance:g})")
    return _written(out, buffer.getvalue(), difference, tolerance, summary)


def int8_disagreement(model_bytes, model, images):
    """The fraction of pixels of ``images`` whose class differs between PyTorch and the ONNX
    model ``model_bytes``."""
    session = onnx_session(model_bytes)
    differ = total = 0
    for image in images:
        with torch.no_grad():
            expected = model(torch.from_numpy(image)).argmax(1).numpy()
        got = session.run(None, {"image": image})[0].argmax(1)
        differ, total = differ + int(np.sum(got != expected)), total + expected.size
    return differ / total


def write_int8_onnx(model, out, images, tolerance=None):
    """Quantise ``model`` to int8 (``quantize_int8``, calibrated on ``images``), compare its
    classes with PyTorch's on the first four of them and write ``out`` only if the fraction of
    pixels that differ is within ``tolerance`` (default ``INT8_TOLERANCE``). Returns the
    summary."""
    tolerance = INT8_TOLERANCE if tolerance is None else tolerance
    data = quantize_int8(model, images)
    quantized, kept = count_quantized(data)
    difference = int8_disagreement(data, model, images[:4])
    summary = (f"{quantized} convolutions in int8, {kept} in fp32, calibrated on {len(images)} images; pixels "
               f"whose class differs from PyTorch's: {100 * difference:.2f}% (tolerance {100 * tolerance:g}%)")
    return _written(out, data, difference, tolerance, summary)


def write_torchscript(model, out, size, tolerance=None):
    """Trace ``model`` at ``size`` (``export_torchscript``), reload the module from its bytes and
    compare it with the eager model on a random image of another size (about half, odd: a size
    baked into the trace shows); write ``out`` only if the largest logit difference, relative to
    the largest logit, is within ``tolerance`` (default ``ROUNDING_MARGIN`` times the fp32
    rounding of that evaluation, ``fp32_rounding``). Returns the summary."""
    buffer = io.BytesIO()
    export_torchscript(model, buffer, tuple(size))
    check_size = (size[0] // 2 + 5, size[1] // 2 + 3)
    image = torch.randn(1, 3, *check_size, generator=torch.Generator().manual_seed(0))
    model = model.eval()
    how = "given"
    if tolerance is None:
        tolerance, how = ROUNDING_MARGIN * fp32_rounding(model, image), f"{ROUNDING_MARGIN:g} x fp32's rounding"
    reloaded = torch.jit.load(io.BytesIO(buffer.getvalue()))
    with torch.no_grad():
        try:
            got = reloaded(image)
        except RuntimeError:  # a size baked into the trace
            got = torch.full((1,), float("nan"))
        difference = relative_difference(got, model(image))
    summary = (f"reloaded module vs PyTorch at {check_size[0]}x{check_size[1]}: largest logit difference (relative) "
               f"{difference:.3g} (tolerance {tolerance:.3g}, {how})")
    return _written(out, buffer.getvalue(), difference, tolerance, summary)
