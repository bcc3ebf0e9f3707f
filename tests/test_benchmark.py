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
    records = json.loads(out.read_text())["results"]
    assert [r["mode"] for r in records] == ["eager", "fast", "onnx"]
    flops = count_flops(random_statistics_model(), (64, 128))
    for record in records:
        assert (record["parameters"], record["inference_parameters"]) == (13_425_721, 13_275_539)
        assert record["gflops"] * 1e9 == pytest.approx(flops)
        assert record["min_s"] <= record["median_s"] <= record["max_s"]
        assert record["fps"] == pytest.approx(1 / record["median_s"])
    assert "GFLOPs" in result.stdout and "FPS" in result.stdout


def test_benchmark_tool_measures_the_machine_limit_and_int8(tmp_path):
    out = tmp_path / "bench.json"
    result = run_tool("benchmark.py", "--config", "configs/bisenetv1_city.py", "--size", "64", "128", "--mode",
                      "onnx", "int8", "--runs", "1", "--warmup", "0", "--calib-images", "1", "--json", out)
    assert result.returncode == 0, result.stderr
    assert "int8 calibrated on random images" in result.stderr  # no Cityscapes here
    report = json.loads(out.read_text())
    limit = report["machine_limit"]
    assert limit["fp32_gflops"] > 0 and limit["int8_gops"] > 0 and limit["shape"] == [8192, 2304, 256]
    assert set(limit["cpu_features"]) <= set(benchmark_module.CPU_FEATURES)
    for record in report["results"]:
        peak = limit["int8_gops"] if record["mode"] == "int8" else limit["fp32_gflops"]
        assert record["achieved_gflops_per_s"] == pytest.approx(record["gflops"] / record["median_s"])
        assert record["fraction_of_limit"] == pytest.approx(record["achieved_gflops_per_s"] / peak)
        assert record["end_to_end_s"] > 0
    assert [(r["mode"], r["dtype"]) for r in report["results"]] == [("onnx", "float32"), ("int8", "int8")]
    assert "limit on a 8192x2304x256 matrix multiply" in result.stdout and "of limit" in result.stdout


def test_cpu_features_are_read_from_cpuinfo(monkeypatch, tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 fma avx512f avx512_vnni amx_int8\n")
    real_open = open
    monkeypatch.setattr("builtins.open", lambda path, *a, **k: real_open(cpuinfo if path == "/proc/cpuinfo" else path,
                                                                         *a, **k))
    assert benchmark_module.cpu_features() == ["avx2", "fma", "avx512f", "avx512_vnni", "amx_int8"]
