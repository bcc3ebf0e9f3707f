"""Measuring a model: parameters, counted FLOPs, latency and peak memory, the machine's own limit
(matrix multiplies in fp32 and int8) to compare them with, and the time from file to file."""
import io
import os
import resource
import statistics
import tempfile
import time

import cv2
import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from bisenet.deploy.export import export_onnx
from bisenet.deploy.runtime import OnnxRuntimeModel, make_fast, onnx_session

# The instruction sets that decide which kernels run: fp32 FMA width, int8 dot products (VNNI,
# AMX) and bf16.
CPU_FEATURES = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
# A matrix multiply of the shape most of the model's work has: the im2col of a 3x3 convolution
# with 256 channels at 1/16 of a 1024x2048 image (ResNet-18's layer3), 9.7 GFLOP.
LIMIT_SHAPE = (8192, 2304, 256)


def count_flops(model, size, device="cpu"):
    """FLOPs (2 per multiply-add) of one eval forward pass, counted by PyTorch's FLOP counter."""
    model = model.eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.randn(1, 3, *size, device=device))
    return counter.get_total_flops()


def _peak_rss_bytes():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


@torch.no_grad()
def measure_latency(run, device, warmup=2, runs=5):
    """Seconds per call of ``run()`` over ``runs`` timed calls after ``warmup``, and the peak
    memory: CUDA allocations on a GPU, the process's peak resident size on the CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for i in range(warmup + runs):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        run()
        if device.type == "cuda":
            torch.cuda.synchronize(device)  # CUDA runs asynchronously: time the work, not the launch
        if i >= warmup:
            times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else _peak_rss_bytes()
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
            "stdev_s": statistics.stdev(times) if len(times) > 1 else 0.0, "runs": runs, "peak_memory_bytes": peak}


MODES = ("eager", "fast", "onnx", "int8")


def runner(model, size, device, mode="eager", calibration=None):
    """``model`` (eval) in ``mode``: "eager" (fp32), "fast" (``make_fast``), "onnx" (onnxruntime,
    exported at ``size``) or "int8" (``make_fast``'s int8, calibrated on ``calibration``)."""
    device = torch.device(device)
    model = model.eval().to(device)
    if mode == "eager":
        return model
    if mode == "fast":
        return make_fast(model, device)
    if mode == "int8":
        return make_fast(model, device, "int8", calibration)
    if mode == "onnx":
        buffer = io.BytesIO()
        export_onnx(model, buffer, size)
        return OnnxRuntimeModel(buffer.getvalue())
    raise ValueError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")


def benchmark(run, size, device, warmup=2, runs=5):
    """Latency of ``run`` (a model in one of ``runner``'s forms) on a random 1x3xHxW input, with
    the backend and arithmetic that ran."""
    device = torch.device(device)
    image = torch.randn(1, 3, *size, device=device)
    result = measure_latency(lambda: run(image), device, warmup, runs)
    result["backend"] = type(run).__name__
    result["dtype"] = str(getattr(run, "dtype", None) or torch.float32).replace("torch.", "")
    return result


def cpu_features():
    """The instruction sets of ``CPU_FEATURES`` this CPU has (Linux's /proc/cpuinfo; empty
    elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return []
    return [name for name in CPU_FEATURES if name in flags]


def _matmul_graph(m, k, n, integer):
    """A one-node ONNX model: ``a @ b`` with ``b`` a constant, fp32 or uint8 x int8 -> int32."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    if integer:
        b = numpy_helper.from_array(rng.integers(-128, 128, (k, n), dtype=np.int8), "b")
        node = helper.make_node("MatMulInteger", ["a", "b"], ["y"])
        a_type, y_type = TensorProto.UINT8, TensorProto.INT32
    else:
        b = numpy_helper.from_array(rng.standard_normal((k, n), dtype=np.float32), "b")
        node = helper.make_node("MatMul", ["a", "b"], ["y"])
        a_type, y_type = TensorProto.FLOAT, TensorProto.FLOAT
    graph = helper.make_graph([node], "matmul", [helper.make_tensor_value_info("a", a_type, [m, k])],
                              [helper.make_tensor_value_info("y", y_type, [m, n])], initializer=[b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def machine_limit(shape=LIMIT_SHAPE, warmup=2, runs=5):
    """This machine's fp32 and int8 throughput, in billions of operations per second (a multiply
    and an add count as two), on a matrix multiply of ``shape`` (M, K, N) with torch's threads:
    fp32 the faster of PyTorch and onnxruntime, int8 onnxruntime's uint8 x int8 kernel (the one
    its int8 convolutions use; None without onnxruntime)."""
    m, k, n = shape
    ops = 2 * m * k * n
    rng = np.random.default_rng(0)
    a = torch.from_numpy(rng.standard_normal((m, k), dtype=np.float32))
    b = torch.from_numpy(rng.standard_normal((k, n), dtype=np.float32))
    best = {"fp32": ops / measure_latency(lambda: torch.mm(a, b), "cpu", warmup, runs)["min_s"], "int8": None}
    try:
        inputs = (("fp32", False, a.numpy()), ("int8", True, rng.integers(0, 256, (m, k), np.uint8)))
        for dtype, integer, feed in inputs:
            session = onnx_session(_matmul_graph(m, k, n, integer))
            rate = ops / measure_latency(lambda: session.run(None, {"a": feed}), "cpu", warmup, runs)["min_s"]
            best[dtype] = max(best[dtype] or 0.0, rate)
    except ImportError:
        pass
    return {"fp32_gflops": best["fp32"] / 1e9, "int8_gops": best["int8"] / 1e9 if best["int8"] else None,
            "shape": list(shape), "threads": torch.get_num_threads(), "cpu_features": cpu_features()}


def end_to_end(segmenter, size, warmup=1, runs=3):
    """Seconds per image from file to files, as the demo does it: read a PNG of ``size`` (a
    synthetic street scene), preprocess, infer, colour, write the colouring and the overlay."""
    from bisenet.data.synthetic import render_scene
    from bisenet.demo import segment_images

    with tempfile.TemporaryDirectory() as folder:
        _, _, image = render_scene(np.random.default_rng(0), *size)
        path = os.path.join(folder, "scene.png")
        cv2.imwrite(path, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        out = os.path.join(folder, "out")
        return measure_latency(lambda: segment_images(segmenter, [path], out, progress=False, workers=0), "cpu",
                               warmup, runs)
