"""Measuring a model: parameters, counted FLOPs, latency and peak memory."""
import io
import resource
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from bisenet.deploy.export import export_onnx
from bisenet.deploy.runtime import make_fast, onnx_session


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


def benchmark(model, size, device, mode="eager", warmup=2, runs=5):
    """Latency of ``model`` (eval) on a 1x3xHxW input in ``mode``: "eager" (fp32), "fast"
    (``bisenet.deploy.runtime.make_fast``) or "onnx" (onnxruntime on the CPU)."""
    device = torch.device(device)
    model = model.eval().to(device)
    image = torch.randn(1, 3, *size, device=device)
    if mode == "eager":
        return measure_latency(lambda: model(image), device, warmup, runs)
    if mode == "fast":
        fast = make_fast(model, device)
        result = measure_latency(lambda: fast(image), device, warmup, runs)
        result["backend"] = type(fast).__name__
        result["dtype"] = str(getattr(fast, "dtype", None) or torch.float32).replace("torch.", "")
        return result
    if mode == "onnx":
        buffer = io.BytesIO()
        export_onnx(model, buffer, size)
        session = onnx_session(buffer.getvalue())
        feed = {"image": image.cpu().numpy()}
        return measure_latency(lambda: session.run(None, feed), torch.device("cpu"), warmup, runs)
    raise ValueError(f"unknown mode {mode!r}; use eager, fast or onnx")
