"""bisenet.benchmark and tools/benchmark.py: FLOPs counted independently, latency statistics
checked on a fake clock (no timing in tests), the machine's limit (the instruction-set table,
never below a measured rate), the tool's JSON."""
import json
import platform
import statistics
import sys
import time

import numpy as np
import pytest
import torch
import torch.nn as nn

import bisenet.benchmark as benchmark_module
from bisenet.benchmark import (
    count_flops,
    describe_limit,
    fraction_of_limit,
    limit_of,
    measure_latency,
    peak_ops_per_cycle,
)

from conftest import random_statistics_model, run_tool


def test_flops_of_a_small_network_are_those_counted_by_hand():
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 4, 1, stride=2),
                        nn.Conv2d(4, 4, 3, padding=1, groups=4))
    # 2 operations per multiply-add: 3x3x3 -> 8 at 16x16, 1x1 8 -> 4 at 8x8, depthwise 3x3 on 4 at
    # 8x8; BatchNorm, ReLU and biases are not counted.
    assert count_flops(net, (16, 16)) == 2 * (27 * 8 * 16 * 16 + 8 * 4 * 8 * 8 + 9 * 4 * 8 * 8) == 119_296


def test_flops_of_bisenetv1_are_the_references_figure():
    model = random_statistics_model()
    # The reference's 236.7 GFLOPs at 1024x2048 (4 figures), at 1/64 and 1/256 of the area.
    assert count_flops(model, (128, 256)) * 64 == pytest.approx(236.7e9, rel=2e-3)
    assert count_flops(model, (64, 128)) * 256 == pytest.approx(236.7e9, rel=2e-3)


def test_latency_is_the_median_of_the_timed_runs(monkeypatch):
    clock = {"now": 0.0}
    durations = iter([9.0, 8.0, 0.5, 0.125, 0.375, 0.25, 0.4375])  # two warm-up runs, then five timed
    monkeypatch.setattr(benchmark_module.time, "perf_counter", lambda: clock["now"])

    def run():
        clock["now"] += next(durations)

    result = measure_latency(run, "cpu", warmup=2, runs=5)
    assert (result["median_s"], result["min_s"], result["max_s"], result["runs"]) == (0.375, 0.125, 0.5, 5)
    assert result["stdev_s"] == pytest.approx(statistics.stdev([0.5, 0.125, 0.375, 0.25, 0.4375]))


def printed_rows(stdout):
    """The printed table as dicts of its column titles."""
    header, _, *rows = [[cell.strip() for cell in line.split("|")[1:-1]] for line in stdout.splitlines()
                        if line.startswith("|")]
    return [dict(zip(header, row)) for row in rows]


def test_benchmark_tool(tmp_path):
    out = tmp_path / "bench.json"
    result = run_tool("benchmark.py", "--config", "configs/bisenetv1_city.py", "--size", "64", "128", "--mode",
                      "eager", "fast", "onnx", "--runs", "2", "--warmup", "1", "--json", out)
    assert result.returncode == 0, result.stderr
    records = json.loads(out.read_text())["results"]
    assert [(r["mode"], r["backend"]) for r in records] == [("eager", "BiSeNetV1"), ("fast", "OnnxRuntimeModel"),
                                                            ("onnx", "OnnxRuntimeModel")]
    for record in records:
        assert (record["parameters"], record["inference_parameters"]) == (13_425_721, 13_275_539)
        assert record["gflops"] * 256 == pytest.approx(236.7, rel=2e-3)  # the reference's figure at 1024x2048
        assert 0 < record["min_s"] <= record["median_s"] <= record["max_s"] and record["end_to_end_s"] > 0
    # What is printed is what was measured and written.
    rows = printed_rows(result.stdout)
    assert [row["mode"] for row in rows] == [f"{r['mode']} ({r['backend']}, {r['dtype']})" for r in records]
    for row, record in zip(rows, records):
        assert row["input"] == "1x3x64x128" and float(row["GFLOPs"]) == pytest.approx(record["gflops"], abs=0.05)
        assert float(row["median s"]) == pytest.approx(record["median_s"], abs=5e-4)
        assert float(row["FPS"]) * record["median_s"] == pytest.approx(1, abs=0.01 * record["median_s"] + 1e-3)
    assert result.stdout.startswith("bisenetv1: 13,425,721 parameters (13,275,539 for inference), cpu")


def fastest_matmul_gflops(n=512, runs=5):
    """An fp32 rate this machine reaches, measured here: the fastest of ``runs`` n x n x n products."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    fastest = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        torch.mm(a, b)
        fastest = min(fastest, time.perf_counter() - start)
    return 2 * n ** 3 / fastest / 1e9


def test_benchmark_tool_measures_the_machine_limit_and_int8(tmp_path):
    out = tmp_path / "bench.json"
    result = run_tool("benchmark.py", "--config", "configs/bisenetv1_city.py", "--size", "64", "128", "--mode",
                      "onnx", "int8", "--runs", "1", "--warmup", "0", "--calib-images", "1", "--json", out)
    assert result.returncode == 0, result.stderr
    assert "int8 calibrated on random images" in result.stderr  # no Cityscapes here
    report = json.loads(out.read_text())
    limit = report["machine_limit"]
    assert limit["fp32_gflops"] > 0 and limit["int8_gops"] > 0
    assert set(limit["cpu_features"]) <= set(benchmark_module.CPU_FEATURES)
    for dtype in ("fp32", "int8"):
        assert {tuple(r["shape"]) for r in limit[dtype]["measured"]} == set(benchmark_module.LIMIT_SHAPES)
        assert all(limit[dtype]["gops"] >= r["gops"] for r in limit[dtype]["measured"])
        assert f"{dtype} limit: " in result.stdout
    # An upper bound holds for a multiply the tool never saw, measured here.
    if limit["fp32"]["is_upper_bound"]:
        assert limit["fp32"]["gops"] >= fastest_matmul_gflops()
    for record in report["results"]:
        entry = limit["int8" if record["mode"] == "int8" else "fp32"]
        assert (record["limit_gops_per_s"], record["limit_kind"]) == (entry["gops"], entry["kind"])
        assert record["fraction_of_limit"] is None or 0 < record["fraction_of_limit"] <= 1
        assert record["end_to_end_s"] > 0
    assert [(r["mode"], r["dtype"]) for r in report["results"]] == [("onnx", "float32"), ("int8", "int8")]
    assert all(cell == "-" or 0 < int(cell.rstrip("%")) <= 100 for cell in _printed_fractions(result.stdout))
    assert f"wrote {out}" in result.stdout


def _printed_fractions(stdout):
    return [row["of limit"] for row in printed_rows(stdout)]


def test_a_mode_faster_than_every_measured_matmul_stays_within_the_limit(monkeypatch, tmp_path):
    # The limit once was the measured matrix multiply, and a mode that beat it printed 134%.
    # Here every matmul "ran" at 1 MFLOP/s: the modes beat them all, and the instruction-set
    # peak still bounds them.
    slow = [{"dtype": dtype, "library": "torch", "shape": [8, 8, 8], "gops": 1e-3} for dtype in ("fp32", "int8")]
    monkeypatch.setattr(benchmark_module, "matmul_rates", lambda *args, **kwargs: slow)
    out = tmp_path / "bench.json"
    result = run_tool("benchmark.py", "--config", "configs/bisenetv1_city.py", "--size", "64", "128", "--mode",
                      "eager", "onnx", "--runs", "1", "--warmup", "0", "--no-end-to-end", "--json", out)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    for record in report["results"]:
        assert record["achieved_gflops_per_s"] > 1e-3
        assert record["fraction_of_limit"] is None or record["fraction_of_limit"] <= 1
        if benchmark_module.peak_ops_per_cycle("fp32", benchmark_module.cpu_info()["flags"])[0]:
            assert record["limit_kind"] == "instruction-set peak" and record["fraction_of_limit"] is not None
    printed = _printed_fractions(result.stdout)
    assert len(printed) == 2 and all(cell == "-" or int(cell.rstrip("%")) <= 100 for cell in printed)


def test_a_rate_above_the_limit_gets_no_fraction():
    entry = {"gops": 100.0}
    assert fraction_of_limit(25.0, entry) == 0.25 and fraction_of_limit(100.0, entry) == 1.0
    assert fraction_of_limit(100.5, entry) is None and fraction_of_limit(1.0, {"gops": None}) is None
    rng = np.random.default_rng(0)
    for rate, gops in 10.0 ** rng.uniform(-3, 4, (1000, 2)):  # never above 100%, whatever the two
        fraction = fraction_of_limit(rate, {"gops": gops})
        assert fraction is None if rate > gops else 0 < fraction <= 1


INTEL_VNNI = {"sse2", "ssse3", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni"}


@pytest.mark.parametrize("flags, vendor, family, fp32, int8", [
    (INTEL_VNNI, "GenuineIntel", 6, 64, 256),  # Cascade Lake, Ice Lake server
    (INTEL_VNNI | {"avx_vnni", "amx_int8", "amx_bf16"}, "GenuineIntel", 6, 64, 2048),  # Sapphire Rapids
    (INTEL_VNNI - {"avx512_vnni"}, "GenuineIntel", 6, 64, 256),  # Skylake-SP
    (INTEL_VNNI, "AuthenticAMD", 25, 32, 128),  # Zen 4: AVX-512 on 256-bit halves
    (INTEL_VNNI, "AuthenticAMD", 26, 64, 256),  # Zen 5: full-width units
    ({"sse2", "ssse3", "avx", "avx2", "fma"}, "AuthenticAMD", 25, 32, 128),  # Zen 3
    ({"sse2", "ssse3", "avx", "avx2", "fma", "avx_vnni"}, "GenuineIntel", 6, 32, 128),  # Alder Lake
    ({"sse2", "ssse3", "avx"}, "GenuineIntel", 6, 16, 64),  # Sandy Bridge: no FMA
    ({"sse2"}, "", 0, 8, None),
])
def test_peak_operations_per_cycle_follow_the_flags(flags, vendor, family, fp32, int8):
    assert peak_ops_per_cycle("fp32", flags, vendor, family)[0] == fp32
    assert peak_ops_per_cycle("int8", flags, vendor, family)[0] == int8


def test_the_peak_names_how_it_is_made():
    assert peak_ops_per_cycle("fp32", INTEL_VNNI, "AuthenticAMD", 25)[1] == \
        "AVX-512 on 256-bit halves (AMD family 25): 2 units x 8 lanes x 1 multiply-add x 2"
    assert peak_ops_per_cycle("int8", INTEL_VNNI)[1] == "AVX-512 VNNI: 2 units x 16 lanes x 4 multiply-adds x 2"


def _rate(gops, dtype="fp32", library="torch", shape=(2048, 2048, 2048)):
    return {"dtype": dtype, "library": library, "shape": list(shape), "gops": gops}


def test_the_limit_is_the_peak_at_the_highest_clock_and_never_below_a_measured_rate():
    clocks = {"/proc/cpuinfo cpu MHz": 2.596, "measured": 3.7}
    rates = [_rate(118.0), _rate(90.0, library="onnxruntime"), _rate(300.0, "int8", "onnxruntime")]
    fp32 = limit_of("fp32", rates, 2, clocks, INTEL_VNNI, "AuthenticAMD", 25)
    assert (fp32["kind"], fp32["is_upper_bound"]) == ("instruction-set peak", True)
    assert fp32["gops"] == pytest.approx(2 * 32 * 3.7) and fp32["best_measured"]["gops"] == 118.0
    assert [r["gops"] for r in fp32["measured"]] == [118.0, 90.0]
    assert describe_limit(fp32) == (
        "fp32 limit: instruction-set peak 2 threads x 32 FLOP/cycle (AVX-512 on 256-bit halves (AMD family 25): 2 "
        "units x 8 lanes x 1 multiply-add x 2) x 3.70 GHz (measured clock) = 237 GFLOP/s; best measured matmul 118 "
        "GFLOP/s (torch, 2048x2048x2048)")
    int8 = limit_of("int8", rates, 2, {"/proc/cpuinfo cpu MHz": 2.596}, INTEL_VNNI, "AuthenticAMD", 25)
    assert int8["gops"] == pytest.approx(2 * 128 * 2.596) and int8["peak"]["clock_source"] == "/proc/cpuinfo cpu MHz"

    # A measured rate above the peak: a premise was wrong (here a clock reported far too low).
    low = limit_of("fp32", rates, 2, {"/proc/cpuinfo cpu MHz": 1.0}, INTEL_VNNI, "AuthenticAMD", 25)
    assert (low["gops"], low["kind"], low["is_upper_bound"]) == (118.0, "best measured matmul", False)
    assert "not an upper bound (the instruction-set peak 2 threads x 32 FLOP/cycle" in describe_limit(low)
    # No table row (not x86) or no clock: only the measured rate, and it says it is no bound.
    for flags, clock in ((set(), clocks), (INTEL_VNNI, {})):
        entry = limit_of("fp32", rates, 2, clock, flags)
        assert (entry["gops"], entry["is_upper_bound"], entry["peak"]) == (118.0, False, None)
    assert limit_of("int8", [], 2, {}, set())["gops"] is None


def test_machine_limit_is_at_least_every_measured_rate():
    limit = benchmark_module.machine_limit(shapes=((64, 64, 64),), warmup=0, runs=1, clock=False)
    for dtype in ("fp32", "int8"):
        entry = limit[dtype]
        assert entry["measured"] and all(entry["gops"] >= r["gops"] for r in entry["measured"])
    assert limit["fp32_gflops"] == limit["fp32"]["gops"] and "measured" not in limit["clocks_ghz"]
    assert 1 <= limit["threads"] <= benchmark_module.available_cpus()


def test_the_clock_loop_jumps_back_to_its_start():
    loop = benchmark_module._CLOCK_LOOP
    assert loop[-7:-5] == bytes.fromhex("0f85") and loop[-1:] == bytes.fromhex("c3")  # jnz rel32, ret
    assert int.from_bytes(loop[-5:-1], "little", signed=True) == -(len(loop) - 1)
    assert loop[:-7] == bytes.fromhex("4801d0") * benchmark_module.CLOCK_CHAIN + bytes.fromhex("48ffcf")


@pytest.mark.skipif(sys.platform != "linux" or platform.machine() != "x86_64", reason="the clock loop is x86-64 code")
def test_the_clock_is_measured_on_x86_64_linux():
    ghz = benchmark_module.measure_clock_ghz(iterations=1 << 12, repeats=2)
    assert isinstance(ghz, float) and ghz > 0


def test_the_json_path_is_checked_before_the_work(tmp_path):
    (tmp_path / "file").write_text("")
    result = run_tool("benchmark.py", "--config", "configs/bisenetv1_city.py", "--size", "64", "128",
                      "--json", tmp_path / "file" / "bench.json")
    assert result.returncode == 1
    assert "--json" in result.stderr and "not a folder" in result.stderr and result.stdout == ""


def test_cpu_info_is_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    core = ("vendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\nmodel name\t: AMD EPYC\n"
            "cpu MHz\t\t: {mhz}\nflags\t\t: fpu avx2 fma avx512f\n\n")
    cpuinfo.write_text(core.format(mhz="2596.130") + core.format(mhz="3700.000"))
    info = benchmark_module.cpu_info(str(cpuinfo))
    assert info == {"vendor": "AuthenticAMD", "family": 25, "model": 17, "model_name": "AMD EPYC",
                    "flags": {"fpu", "avx2", "fma", "avx512f"}, "mhz": 3700.0}
    assert benchmark_module.reported_clocks_ghz(info)["/proc/cpuinfo cpu MHz"] == 3.7
    assert benchmark_module.cpu_info(str(tmp_path / "absent"))["flags"] == set()


def test_cpu_features_are_read_from_cpuinfo(monkeypatch, tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 fma avx512f avx512_vnni amx_int8\n")
    real_open = open
    monkeypatch.setattr("builtins.open", lambda path, *a, **k: real_open(cpuinfo if path == "/proc/cpuinfo" else path,
                                                                         *a, **k))
    assert benchmark_module.cpu_features() == ["avx2", "fma", "avx512f", "avx512_vnni", "amx_int8"]
