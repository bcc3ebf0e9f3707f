"""Export to ONNX (checked in onnxruntime) and TorchScript."""
import copy
import io

import numpy as np
import torch
import torch.nn as nn

from bisenet.deploy import fold_batchnorm


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
    """Write ``path``; with ``dynamic`` the batch size, height and width are free."""
    wrapper = ExportModel(model.cpu(), argmax).eval()
    example = torch.randn(1, 3, *size)
    output = "labels" if argmax else "logits"
    axes = None
    if dynamic:
        axes = {"image": {0: "batch", 2: "height", 3: "width"},
                output: {0: "batch", 1 if argmax else 2: "height", 2 if argmax else 3: "width"}}
    with torch.no_grad():
        torch.onnx.export(wrapper, (example,), path, input_names=["image"], output_names=[output],
                          dynamic_axes=axes, opset_version=opset, dynamo=False)
    return wrapper


def check_onnx(path, wrapper, size):
    """Run the exported model in onnxruntime on a random image and compare with PyTorch.

    Returns the largest logit difference relative to the largest logit, so that the tolerance
    does not depend on the logits' scale (or, for a class map, the fraction of pixels that
    differ); infinite when either output is not finite."""
    import onnxruntime

    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    image = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = wrapper(image).numpy()
    got = session.run(None, {"image": image.numpy()})[0]
    if wrapper.argmax:
        return float(np.mean(got != expected))
    if not (np.isfinite(got).all() and np.isfinite(expected).all()):
        return float("inf")
    return float(np.abs(got - expected).max() / max(np.abs(expected).max(), np.finfo(np.float32).tiny))


def export_torchscript(model, path, size):
    """A traced TorchScript module (logits) for libtorch; sizes stay free because every resize
    in the model reads its target size from a tensor."""
    wrapper = ExportModel(model.cpu()).eval()
    with torch.no_grad():
        traced = torch.jit.trace(wrapper, torch.randn(1, 3, *size), check_trace=False)
    traced.save(path)
    return traced


class OnnxRuntimeModel(nn.Module):
    """A model run by onnxruntime on the CPU (BatchNorm folded, any input size): the fastest CPU
    path measured here, 0.82 s against 1.78 s for PyTorch eager at 1x3x1024x2048 on 2 threads.
    Takes and returns torch tensors, so it drops into ``bisenet.inference``."""

    def __init__(self, model, threads=None):
        super().__init__()
        import onnxruntime

        buffer = io.BytesIO()
        export_onnx(model, buffer, (64, 128), dynamic=True)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        self.session = onnxruntime.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])

    def forward(self, x):
        logits = self.session.run(None, {"image": x.detach().float().cpu().contiguous().numpy()})[0]
        return torch.from_numpy(logits).to(x.device)
