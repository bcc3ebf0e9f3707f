"""bisenet.benchmark and tools/benchmark.py: FLOPs counted independently, latency statistics
checked on a fake clock (no timing in tests), the tool's JSON."""
import json
import statistics

import pytest
import torch.nn as nn

import bisenet.benchmark as benchmark_module
from bisenet.benchmark import count_flops, measure_latency

from conftest import random_statistics_model, run_tool


def test_flops_are_counted():
    model = random_statistics_model()
    total = []  # an independent count: 2 x multiply-adds of every convolution, from forward hooks

    def hook(module, inputs, output):
        kernel = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
        total.append(2 * kernel * output.numel())

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    counted = count_flops(model, (128, 256))
    for handle in handles:
        handle.remove()
    assert counted == sum(total)
    assert counted * 64 == pytest.approx(236.7e9, rel=2e-3)  # the reference's 1024x2048 figure


def test_latency_is_the_median_of_the_timed_runs(monkeypatch):
    clock = {"now": 0.0}
    durations = iter([9.0, 8.0, 0.5, 0.125, 0.375, 0.25, 0.4375])  # two warm-up runs, then five timed
    monkeypatch.setattr(benchmark_module.time, "perf_counter", lambda: clock["now"])

    def run():
        clock["now"] += next(durations)

    result = measure_latency(run, "cpu", warmup=2, runs=5)
    assert (result["median_s"], result["min_s"], result["max_s"], result["runs"]) == (0.375, 0.125, 0.5, 5)
    assert result["stdev_s"] == pytest.approx(statistics.stdev([0.5, 0.125, 0.375, 0.25, 0.4375]))


def test_benchmark_tool(tmp_path):
    out = tmp_path / "bench.json"
    result = run_tool("benchmark.py", "--config", "configs/bisenetv1_city.py", "--size", "64", "128", "--mode",
                      "eager", "fast", "onnx", "--runs", "2", "--warmup", "1", "--json", out)
    assert result.returncode == 0, result.stderr
    records = json.loads(out.read_text())
    assert [r["mode"] for r in records] == ["eager", "fast", "onnx"]
    flops = count_flops(random_statistics_model(), (64, 128))
    for record in records:
        assert (record["parameters"], record["inference_parameters"]) == (13_425_721, 13_275_539)
        assert record["gflops"] * 1e9 == pytest.approx(flops)
        assert record["min_s"] <= record["median_s"] <= record["max_s"]
        assert record["fps"] == pytest.approx(1 / record["median_s"])
    assert "GFLOPs" in result.stdout and "FPS" in result.stdout
