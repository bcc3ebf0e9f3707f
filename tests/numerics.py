"""Tolerances for comparing two fp32 evaluations of one network.

Two fp32 evaluations of the same maths in a different order (BatchNorm folded into the weights,
onnxruntime's kernels, TorchScript's fused graph, or oneDNN choosing AVX2 or AVX-512 kernels)
differ by rounding, and how much depends on the network, the input and the CPU. So the bound is
measured, not guessed: the model run in float64 gives the exact result (to about 1e-16), eager
fp32's distance from it is what one fp32 evaluation rounds off on this CPU, and another fp32
evaluation must land within a small multiple of that. A wrong fold or a wrong graph is off by
orders of magnitude more.
"""
import copy

import torch

EPS32 = torch.finfo(torch.float32).eps


def exact_output(model, x):
    """``model(x)`` computed in float64 (the model is copied, not changed)."""
    with torch.no_grad():
        return copy.deepcopy(model).double()(x.double())


def assert_fp32_close(candidate, model, x, margin=8.0):
    """``candidate`` (an fp32 output for input ``x``) is as close to the exact ``model(x)`` as
    eager fp32 is, within ``margin`` times."""
    exact = exact_output(model, x)
    with torch.no_grad():
        eager_error = float((model(x).double() - exact).abs().max())
    # A floor of a few roundings of the largest output, in case eager happens to be exact.
    bound = margin * max(eager_error, 4 * EPS32 * float(exact.abs().max()))
    error = float((torch.as_tensor(candidate).double() - exact).abs().max())
    assert error <= bound, f"fp32 output is {error:.3g} from exact; eager fp32 is {eager_error:.3g} (bound {bound:.3g})"
