"""Measuring a model: parameters, counted FLOPs, latency and peak memory, the machine's limit to
compare them with (the instruction-set peak in fp32 and int8, an upper bound, beside measured
matrix multiplies), and the time from file to file."""
import contextlib
import ctypes
import glob
import io
import mmap
import os
import platform
import resource
import statistics
import sys
import tempfile
import time

import numpy as np
import torch
from tabulate import tabulate
from torch.utils.flop_counter import FlopCounterMode

from bisenet.data.calibration import calibration_inputs
from bisenet.data.io import DatasetError
from bisenet.data.synthetic import render_scene
from bisenet.demo import Segmenter, segment_images
from bisenet.deploy.export import export_onnx
from bisenet.deploy.quantize import random_calibration_inputs
from bisenet.deploy.runtime import OnnxRuntimeModel, make_fast, onnx_session
from bisenet.errors import UserError
from bisenet.inference import load_model
from bisenet.outputs import check_output_file, write_image, write_json

# The instruction sets that decide which kernels run: fp32 FMA width, int8 dot products (VNNI,
# AMX) and bf16.
CPU_FEATURES = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16",
                "amx_int8")
# Matrix multiplies timed to show how close the libraries come to the peak: the shape most of the
# model's work has (the im2col of a 3x3 convolution with 256 channels at 1/16 of a 1024x2048
# image, ResNet-18's layer3, 9.7 GFLOP) and a square one.
LIMIT_SHAPES = ((8192, 2304, 256), (2048, 2048, 2048))
# The widest multiply-add arithmetic of each instruction set, per core and cycle: (the flags it
# needs, its name, execution units, 32-bit lanes per unit, multiply-adds per lane, vector width).
# A CPU's figure is the largest row whose flags it has. Where processors with the same flags
# differ the row takes the larger figure (two 512-bit FMA units, as on Xeon Gold and Platinum;
# Silver has one), so that threads x operations per cycle x clock is an upper bound on any
# kernel's rate, never a typical one. int8 rows count u8 x s8 products.
PEAK_MACS = {
    "fp32": ((("avx512f",), "AVX-512", 2, 16, 1, 512),
             (("avx2", "fma"), "AVX2 FMA", 2, 8, 1, 256),
             (("avx",), "AVX multiply and add", 1, 8, 1, 256),
             (("sse2",), "SSE multiply and add", 1, 4, 1, 128)),
    "int8": ((("amx_int8",), "AMX (a 16x16x64 tile product per 16 cycles)", 1, 256, 4, None),
             (("avx512_vnni",), "AVX-512 VNNI", 2, 16, 4, 512),
             (("avx512bw",), "AVX-512BW pmaddubsw", 2, 16, 4, 512),
             (("avx_vnni",), "AVX-VNNI", 2, 8, 4, 256),
             (("avx2",), "AVX2 pmaddubsw", 2, 8, 4, 256),
             (("ssse3",), "SSSE3 pmaddubsw", 2, 4, 4, 128)),
}
UNITS = {"fp32": "GFLOP/s", "int8": "GOP/s"}
DEFAULT_SIZES = ((512, 1024), (1024, 2048))


class BenchmarkError(UserError):
    """A benchmark asked for something it does not measure."""


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
    raise BenchmarkError(f"unknown benchmark mode {mode!r}: use one of {', '.join(MODES)}")


def benchmark(run, size, device, warmup=2, runs=5):
    """Latency of ``run`` (a model in one of ``runner``'s forms) on a random 1x3xHxW input, with
    the backend and arithmetic that ran."""
    device = torch.device(device)
    image = torch.randn(1, 3, *size, device=device)
    result = measure_latency(lambda: run(image), device, warmup, runs)
    result["backend"] = type(run).__name__
    result["dtype"] = str(getattr(run, "dtype", None) or torch.float32).replace("torch.", "")
    return result


def cpu_info(path="/proc/cpuinfo"):
    """The CPU as Linux describes it: vendor, family, model, model name, the set of flags and the
    largest "cpu MHz" of any core (empty values elsewhere)."""
    info = {"vendor": "", "family": 0, "model": 0, "model_name": "", "flags": set(), "mhz": None}
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        return info
    for line in lines:
        key, _, value = (part.strip() for part in line.partition(":"))
        if key == "vendor_id":
            info["vendor"] = value
        elif key in ("cpu family", "model") and value.isdigit():
            info["family" if key == "cpu family" else "model"] = int(value)
        elif key == "model name":
            info["model_name"] = value
        elif key == "flags":
            info["flags"] |= set(value.split())
        elif key == "cpu MHz":
            info["mhz"] = max(info["mhz"] or 0.0, float(value))
    return info


def cpu_features(info=None):
    """The instruction sets of ``CPU_FEATURES`` this CPU has (Linux's /proc/cpuinfo; empty
    elsewhere)."""
    flags = (info or cpu_info())["flags"]
    return [name for name in CPU_FEATURES if name in flags]


def peak_ops_per_cycle(dtype, flags, vendor="", family=0):
    """``(operations per cycle per core, how)`` for ``dtype`` ("fp32" or "int8"; a multiply-add
    is 2 operations), the most any CPU with ``flags`` can do, or ``(None, None)`` when no row of
    ``PEAK_MACS`` applies."""
    # AMD's Zen 4 (family 25; Zen 3 in that family has no AVX-512) runs each 512-bit
    # instruction on 256-bit halves, so AVX-512 doubles no throughput there. Zen 5 (family 26)
    # has full-width units and keeps the row's figure, the larger one.
    halves = vendor == "AuthenticAMD" and family <= 25
    best = (None, None)
    for needs, name, units, lanes, per_lane, width in PEAK_MACS[dtype]:
        if not set(needs) <= set(flags):
            continue
        if halves and width == 512:
            name, lanes = f"{name} on 256-bit halves (AMD family {family})", lanes // 2
        ops = 2 * units * lanes * per_lane
        if best[0] is None or ops > best[0]:
            best = (ops, f"{name}: {units} unit{'s' if units > 1 else ''} x {lanes} lanes x {per_lane} "
                         f"multiply-add{'s' if per_lane > 1 else ''} x 2")
    return best


def available_cpus():
    """The CPUs this process may run on (its affinity mask, e.g. a container's share)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


# A chain of dependent register additions (add rax, rdx: one cycle of latency on every x86-64
# core; a register operand, so that no renamer can fold it as it can an immediate), then
# dec rdi / jnz back, ret: System V's first argument (rdi) is the iteration count. The loop
# counter is a second, independent chain that overlaps, so an iteration takes CLOCK_CHAIN cycles.
CLOCK_CHAIN = 64
_CLOCK_LOOP = (bytes.fromhex("4801d0") * CLOCK_CHAIN + bytes.fromhex("48ffcf")
               + bytes.fromhex("0f85") + (-(3 * CLOCK_CHAIN + 3 + 6)).to_bytes(4, "little", signed=True)
               + bytes.fromhex("c3"))


def measure_clock_ghz(iterations=1 << 14, repeats=200):
    """The clock this core runs at, in GHz, from timed runs of ``CLOCK_CHAIN`` x ``iterations``
    and twice as many dependent one-cycle additions: the fastest of ``repeats`` runs of each
    (being descheduled only slows a run; at ~0.3 ms one fits between the time slices of a busy
    machine). One busy core of scalar work runs at a turbo clock at least as high as that of
    all cores in vector work. None where it cannot run: not x86-64 Linux, or executable memory
    refused."""
    if sys.platform != "linux" or platform.machine() != "x86_64":
        return None
    try:
        memory = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    except (OSError, ValueError):
        return None
    with memory:
        memory.write(_CLOCK_LOOP)
        cell = ctypes.c_char.from_buffer(memory)
        loop = ctypes.CFUNCTYPE(None, ctypes.c_uint64)(ctypes.addressof(cell))
        loop(64 * iterations)  # raise the clock from idle before timing it
        fastest = {1: float("inf"), 2: float("inf")}
        for _ in range(repeats):
            for times in fastest:
                start = time.perf_counter()
                loop(times * iterations)
                fastest[times] = min(fastest[times], time.perf_counter() - start)
        del loop, cell  # the buffer must not be exported when the mapping closes
    # The difference of the two lengths cancels the time of the call itself, unless a fastest
    # run was still slowed: then its implied call time is negative or large, and the longer run
    # alone (call included, a clock a little low) is what is left.
    call = 2 * fastest[1] - fastest[2]
    seconds = fastest[2] - fastest[1] if 0 <= call < 0.05 * fastest[1] else fastest[2] / 2
    return CLOCK_CHAIN * iterations / seconds / 1e9


def reported_clocks_ghz(info=None):
    """The clocks the system reports, in GHz by source: /proc/cpuinfo's "cpu MHz" (the current
    clock on bare metal, often the nominal one in a VM) and cpufreq's maximum (absent in most
    VMs)."""
    info = info or cpu_info()
    clocks = {}
    if info["mhz"]:
        clocks["/proc/cpuinfo cpu MHz"] = info["mhz"] / 1000
    khz = []
    for path in glob.glob("/sys/devices/system/cpu/cpu[0-9]*/cpufreq/cpuinfo_max_freq"):
        with contextlib.suppress(OSError, ValueError), open(path) as f:
            khz.append(int(f.read()))
    if khz:
        clocks["cpufreq cpuinfo_max_freq"] = max(khz) / 1e6
    return clocks


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


def matmul_rates(shapes=LIMIT_SHAPES, warmup=2, runs=5):
    """Measured matrix-multiply rates with torch's threads, in billions of operations per second
    (a multiply-add is two): fp32 in PyTorch and onnxruntime, int8 in onnxruntime's uint8 x int8
    kernel (the one its int8 convolutions use; none without onnxruntime), for each (M, K, N) of
    ``shapes``. Each is the fastest of ``runs``: a rate the machine has shown it reaches."""
    rates = []
    rng = np.random.default_rng(0)
    for m, k, n in shapes:
        ops = 2 * m * k * n
        a = torch.from_numpy(rng.standard_normal((m, k), dtype=np.float32))
        b = torch.from_numpy(rng.standard_normal((k, n), dtype=np.float32))
        timed = [("fp32", "torch", lambda: torch.mm(a, b))]
        try:
            for dtype, integer, feed in (("fp32", False, a.numpy()),
                                         ("int8", True, rng.integers(0, 256, (m, k), np.uint8))):
                session = onnx_session(_matmul_graph(m, k, n, integer))
                timed.append((dtype, "onnxruntime", lambda session=session, feed=feed: session.run(None, {"a": feed})))
        except ImportError:
            pass
        for dtype, library, run in timed:
            seconds = measure_latency(run, "cpu", warmup, runs)["min_s"]
            rates.append({"dtype": dtype, "library": library, "shape": [m, k, n], "gops": ops / seconds / 1e9})
    return rates


def limit_of(dtype, rates, threads, clocks, flags, vendor="", family=0):
    """The limit on ``dtype``'s rate (GOP/s) that the benchmark compares its modes with, an
    upper bound wherever the CPU is known.

    The instruction-set peak: ``threads`` x ``peak_ops_per_cycle`` x the highest of ``clocks``
    (GHz by source), each figure taken at its largest so that the product is never too low (a
    thread counts as a whole core, though two hyperthreads share one core's units). It
    is also never below a rate of ``rates`` (``matmul_rates``'s list): if one beats it, a
    premise was wrong (a clock under the real one), and the best measured rate is the limit,
    named as such. Without a table row for the CPU the best measured rate is all there is; it
    is then not a bound, as a convolution may beat a matrix multiply."""
    measured = sorted((r for r in rates if r["dtype"] == dtype), key=lambda r: r["gops"], reverse=True)
    best = measured[0] if measured else None
    ops_per_cycle, how = peak_ops_per_cycle(dtype, flags, vendor, family)
    peak = None
    if ops_per_cycle and clocks:
        source, ghz = max(clocks.items(), key=lambda item: item[1])
        peak = {"threads": threads, "ops_per_cycle": ops_per_cycle, "how": how, "ghz": ghz, "clock_source": source,
                "gops": threads * ops_per_cycle * ghz}
    if peak and (best is None or peak["gops"] >= best["gops"]):
        kind, gops = "instruction-set peak", peak["gops"]
    elif best:
        kind, gops = "best measured matmul", best["gops"]
    else:
        kind, gops = None, None
    return {"dtype": dtype, "gops": gops, "kind": kind, "is_upper_bound": kind == "instruction-set peak",
            "peak": peak, "best_measured": best, "measured": measured}


def machine_limit(shapes=LIMIT_SHAPES, warmup=2, runs=5, clock=True):
    """This machine's fp32 and int8 limits (``limit_of``) for torch's thread count (at most the
    CPUs this process may use), with what they were computed from: the CPU, its clocks (reported
    and, with ``clock``, measured) and the measured matrix multiplies."""
    info = cpu_info()
    threads = min(torch.get_num_threads(), available_cpus())
    clocks = reported_clocks_ghz(info)
    measured = measure_clock_ghz() if clock else None
    if measured:
        clocks["measured"] = measured
    rates = matmul_rates(shapes, warmup, runs)
    limits = {dtype: limit_of(dtype, rates, threads, clocks, info["flags"], info["vendor"], info["family"])
              for dtype in PEAK_MACS}
    return {"fp32_gflops": limits["fp32"]["gops"], "int8_gops": limits["int8"]["gops"], **limits,
            "threads": threads, "clocks_ghz": clocks, "cpu_features": cpu_features(info),
            "cpu": {key: info[key] for key in ("vendor", "family", "model", "model_name")}}


def limit_for(limit, dtype):
    """``machine_limit``'s entry for a result's ``dtype`` (int8 models count against int8's)."""
    return limit["int8" if dtype == "int8" else "fp32"]


def fraction_of_limit(rate, entry):
    """``rate`` / the limit ``entry`` (``limit_of``), or None when there is no limit or the rate
    is above it: a limit that is exceeded is not one, and no fraction over 1 is printed."""
    if not entry["gops"] or rate > entry["gops"]:
        return None
    return rate / entry["gops"]


def describe_limit(entry):
    """One line: which kind of limit ``entry`` (``limit_of``) is, how it was obtained, and the
    best measured matrix multiply."""
    unit, best = UNITS[entry["dtype"]], entry["best_measured"]
    measured = (f"best measured matmul {best['gops']:.0f} {unit} ({best['library']}, "
                f"{'x'.join(map(str, best['shape']))})") if best else "no matmul measured (no onnxruntime)"
    peak = entry["peak"]
    if peak:
        clock = "measured clock" if peak["clock_source"] == "measured" else peak["clock_source"]
        peak_text = (f"instruction-set peak {peak['threads']} threads x {peak['ops_per_cycle']} "
                     f"{'FLOP' if entry['dtype'] == 'fp32' else 'OP'}/cycle ({peak['how']}) x {peak['ghz']:.2f} GHz "
                     f"({clock}) = {peak['gops']:.0f} {unit}")
    if entry["kind"] == "instruction-set peak":
        return f"{entry['dtype']} limit: {peak_text}; {measured}"
    if entry["kind"] == "best measured matmul":
        why = (f"the {peak_text} is below it, so a premise of the peak is wrong" if peak
               else "no instruction-set peak is known for this CPU")
        return f"{entry['dtype']} limit: {measured}, not an upper bound ({why})"
    return f"{entry['dtype']} limit: unknown (no instruction-set peak for this CPU and {measured})"


def end_to_end(segmenter, size, warmup=1, runs=3):
    """Seconds per image from file to files, as the demo does it: read a PNG of ``size`` (a
    synthetic street scene), preprocess, infer, colour, write the colouring and the overlay."""
    with tempfile.TemporaryDirectory() as folder:
        _, _, image = render_scene(np.random.default_rng(0), *size)
        path = write_image(os.path.join(folder, "scene.png"), image)
        out = os.path.join(folder, "out")
        return measure_latency(lambda: segment_images(segmenter, [path], out, progress=False, workers=0), "cpu",
                               warmup, runs)


def count_parameters(model):
    """``(trainable parameters, those inference uses)``: the auxiliary heads
    (``model.aux_head_modules``) only train."""
    heads = tuple(f"{name}." for name in getattr(model, "aux_head_modules", ()))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for name, p in model.named_parameters() if not name.startswith(heads))


def calibration_or_random(cfg, count, size):
    """int8's calibration images: ``count`` of the config's training split, or random ones of
    ``size`` (with a warning) when it cannot be read; the timing does not depend on the values."""
    try:
        return calibration_inputs(cfg, count)
    except DatasetError as exc:
        print(f"warning: int8 calibrated on random images ({exc}); the timing holds, the accuracy would not",
              file=sys.stderr)
        return random_calibration_inputs(count, size)


TABLE_HEADERS = ["input", "mode", "GFLOPs", "median s", "range s", "FPS", "peak MiB", "GFLOP/s", "of limit",
                 "end to end s"]


def table_row(record):
    """A result's row of the printed table (``TABLE_HEADERS``)."""
    size, fraction, e2e = record["size"], record["fraction_of_limit"], record.get("end_to_end_s")
    return [f"1x3x{size[0]}x{size[1]}", f"{record['mode']} ({record['backend']}, {record['dtype']})",
            f"{record['gflops']:.1f}", f"{record['median_s']:.3f}", f"{record['min_s']:.3f}-{record['max_s']:.3f}",
            f"{record['fps']:.2f}", f"{record['peak_memory_bytes'] / 2**20:.0f}",
            f"{record['achieved_gflops_per_s']:.0f}", f"{100 * fraction:.0f}%" if fraction is not None else "-",
            f"{e2e:.3f}" if e2e is not None else "-"]


def describe_machine(limit):
    """The CPU line and each arithmetic's limit line (``describe_limit``)."""
    cpu = limit["cpu"]
    return [f"CPU: {cpu['model_name'] or 'unknown'} ({cpu['vendor'] or '?'} family {cpu['family']} model "
            f"{cpu['model']}), {', '.join(limit['cpu_features']) or 'no AVX2/AVX-512/AMX flags'}"] + [
        describe_limit(limit[dtype]) for dtype in ("fp32", "int8")]


def measure_mode(run_mode, size, device, flops, limit, warmup=2, runs=5):
    """The measures of ``run_mode`` (a ``runner``) at ``size``: ``benchmark``'s timing, and with
    the model's counted ``flops`` the rate it reaches, the limit that rate counts against
    (``limit_for``; none without a machine ``limit``) and its fraction of it."""
    timing = benchmark(run_mode, size, device, warmup, runs)
    rate = flops / timing["median_s"] / 1e9
    entry = limit_for(limit, timing["dtype"]) if limit else None
    return {"gflops": flops / 1e9, "fps": 1 / timing["median_s"], "achieved_gflops_per_s": rate,
            "limit_gops_per_s": entry["gops"] if entry else None, "limit_kind": entry["kind"] if entry else None,
            "fraction_of_limit": fraction_of_limit(rate, entry) if entry else None, **timing}


def above_the_limit(record):
    """A warning for a rate above its limit (no fraction was printed), or None."""
    if record["limit_gops_per_s"] and record["fraction_of_limit"] is None:
        dtype = "int8" if record["dtype"] == "int8" else "fp32"
        return (f"warning: {record['mode']} at {record['achieved_gflops_per_s']:.0f} GFLOP/s is above the {dtype} "
                "limit, so that limit is no bound here: a clock reported below the real one, or fewer operations "
                "done than counted (e.g. Winograd convolutions); no fraction is printed")
    return None


def run_benchmark(cfg, device, sizes=DEFAULT_SIZES, modes=("eager",), runs=5, warmup=2, calib_images=8,
                  timed_end_to_end=True, json_path=None):
    """Benchmark the model of ``cfg`` (random weights: the timing does not depend on them) on
    ``device`` in each of ``modes`` at each of ``sizes``, ``runs`` timed runs after ``warmup``:
    print the model, the machine's limit (CPU only), a table of the results and warnings, and
    write them to ``json_path`` (checked first). int8 calibrates on ``calib_images`` images
    (``calibration_or_random``). Returns the records."""
    if json_path:
        check_output_file(json_path, "--json")
    device = torch.device(device)
    model = load_model(cfg, None)
    params, inference_params = count_parameters(model)
    limit = machine_limit() if device.type == "cpu" else None
    records = []
    for size in sizes:
        flops = count_flops(model, size)
        calibration = calibration_or_random(cfg, calib_images, size) if "int8" in modes else None
        for mode in modes:
            run_mode = runner(model, size, device, mode, calibration)  # built once: int8 calibrates
            record = {"model": cfg.model.name, "size": list(size), "mode": mode, "device": str(device),
                      "threads": torch.get_num_threads(), "parameters": params,
                      "inference_parameters": inference_params,
                      **measure_mode(run_mode, size, device, flops, limit, warmup, runs)}
            if timed_end_to_end:
                segmenter = Segmenter(cfg, None, device, model=run_mode)
                record["end_to_end_s"] = end_to_end(segmenter, size, min(warmup, 1), runs)["median_s"]
            records.append(record)
    print(f"{cfg.model.name}: {params:,} parameters ({inference_params:,} for inference), {device}, "
          f"{torch.get_num_threads()} threads")
    for line in describe_machine(limit) if limit else ():
        print(line)
    print(tabulate([table_row(r) for r in records], headers=TABLE_HEADERS, tablefmt="github"))
    for warning in filter(None, map(above_the_limit, records)):
        print(warning, file=sys.stderr)
    if json_path:
        write_json(json_path, {"machine_limit": limit, "results": records})
        print(f"wrote {json_path}")
    return records
