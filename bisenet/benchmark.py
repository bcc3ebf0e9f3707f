"""Forward-pass latency of a model built from a config."""
import statistics
import time

import torch


@torch.no_grad()
def measure_latency(model, size, device, warmup=2, runs=5, batch_size=1):
    """Seconds per forward pass (eval mode) over ``runs`` timed passes after ``warmup``."""
    model.eval().to(device)
    x = torch.randn(batch_size, 3, *size, device=device)
    times = []
    for i in range(warmup + runs):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        model(x)
        if device.type == "cuda":
            torch.cuda.synchronize(device)  # CUDA runs asynchronously: time the work, not the launch
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times), "runs": runs}
