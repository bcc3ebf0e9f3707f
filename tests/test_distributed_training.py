"""tools/train.py as users launch it: torchrun with 2 CPU processes (gloo), crashes, signals.

Every launch has a hard timeout. torchrun's in-place restarts are not used (they hang in
process-group setup on some machines); a crash is followed by a relaunch of the same command.
"""
import itertools
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from bisenet.checkpoint import load_checkpoint
from bisenet.data.samplers import InfiniteSampler
from bisenet.models.bisenetv1 import BiSeNetV1

from conftest import REPO

TIMEOUT = 300
pytestmark = pytest.mark.slow  # several processes each


def command(synthetic_root, output_dir, processes, *extra):
    overrides = [f"data.root={synthetic_root}", f"train.output_dir={output_dir}", "data.crop_size=[64,64]",
                 "data.num_workers=1", "eval.num_workers=0", "train.max_iters=8", "train.batch_size=4",
                 "train.warmup_iters=2", "train.checkpoint_interval=2", "train.log_interval=1", "train.amp=false"]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    if processes == 1:
        launcher = [sys.executable]
    return [*launcher, os.path.join(REPO, "tools", "train.py"), "--config", "configs/bisenetv1_synthetic.py",
            "--resume", "--no-eval", *overrides, *extra]


def environment():
    return dict(os.environ, OMP_NUM_THREADS="1")


def run(cmd):
    result = subprocess.run(cmd, cwd=REPO, env=environment(), capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def run_together(*cmds):
    """Launch the 1-thread runs ``cmds`` side by side (one per core) and wait for all."""
    processes = [subprocess.Popen(cmd, cwd=REPO, env=environment(), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True) for cmd in cmds]
    for process in processes:
        _, stderr = process.communicate(timeout=TIMEOUT)
        assert process.returncode == 0, stderr[-3000:]


def final_weights(output_dir):
    return load_checkpoint(os.path.join(output_dir, "model_final.pth"))["model"]


# timm's training options, on in the runs that are interrupted and resumed: the EMA, the averaged
# BatchNorm statistics and the clipped gradients must come back to the bit too.
TIMM_OPTIONS = ("train.ema_decay=0.9", "train.ema_warmup=true", "train.dist_bn=reduce", "train.clip_grad_norm=1.0",
                "train.label_smoothing=0.1")


def final_state(output_dir):
    """The weights and the EMA of ``model_final.pth``, as one name -> tensor mapping."""
    saved = load_checkpoint(os.path.join(output_dir, "model_final.pth"))
    assert saved["ema_updates"] == 8
    return {**saved["model"], **{f"ema.{name}": value for name, value in saved["model_ema"].items()}}


def launch_and_signal(cmd, output_dir, when_exists, sig):
    """Start ``cmd``; once ``when_exists`` appears in ``output_dir``, send ``sig`` to every
    process of the run (launcher, trainers, loader workers). Returns the exit code."""
    process = subprocess.Popen(cmd, cwd=REPO, env=environment(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    deadline = time.time() + TIMEOUT
    target = os.path.join(output_dir, when_exists)
    while not os.path.exists(target):
        if process.poll() is not None:
            pytest.fail(f"run ended before {when_exists} appeared:\n{process.stdout.read()[-3000:]}")
        if time.time() > deadline:
            process.kill()
            pytest.fail("timed out waiting for the checkpoint")
        time.sleep(0.02)
    if sig == signal.SIGKILL:
        # A crash: every process of the run dies at once, wherever it is.
        pids = subprocess.run(["pgrep", "-f", str(output_dir)], capture_output=True, text=True).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
    else:
        os.killpg(process.pid, sig)  # as a terminal's Ctrl-C or a scheduler's SIGTERM would
    try:
        process.wait(timeout=TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
    return process.returncode


@pytest.fixture(scope="module")
def uninterrupted(synthetic_root, tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("two_processes")
    run(command(synthetic_root, output_dir, 2, *TIMM_OPTIONS))
    return output_dir


def first_loss(output_dir):
    with open(os.path.join(output_dir, "metrics.jsonl")) as f:
        return json.loads(f.readline())["loss"]


def test_two_processes_average_their_gradients(synthetic_root, tmp_path):
    # Plain BN normalises (and back-propagates) over each process's own images, so the exact
    # reference for a 2-process step is not a 1-process step on all 4 images but the mean of two
    # 1-process steps, each on one process's 2 images: process 0 gets [X, X], process 1 [Y, Y],
    # with no random augmentation. The first SGD step is linear in the gradient
    # (w1 = w0 - lr * (g + wd * w0); momentum starts at g), so DDP's averaged gradient must give
    # exactly the mean of the two single-process updates, up to fp32 rounding; summing instead of
    # averaging doubles the update, and a missing all-reduce leaves process 0 at X's update.
    images = sorted(os.listdir(os.path.join(synthetic_root, "leftImg8bit", "train", "aachen")))[:2]
    pairs = [(f"leftImg8bit/train/aachen/{name}",
              f"gtFine/train/aachen/{name.replace('leftImg8bit', 'gtFine_labelIds')}") for name in images]
    seed = 3
    first = [index for index, _ in itertools.islice(InfiniteSampler(4, seed, rank=0, world_size=2), 2)]
    lists = {"x": [pairs[0]] * 2, "y": [pairs[1]] * 2, "two": [pairs[0] if i in first else pairs[1] for i in range(4)]}
    for name, entries in lists.items():
        (tmp_path / f"{name}.txt").write_text("".join(f"{image},{label}\n" for image, label in entries))
    torch.manual_seed(1)
    initial = BiSeNetV1(19).state_dict()
    torch.save(initial, tmp_path / "initial.pth")
    fixed = ["data.scale_range=[1.0,1.0]", "data.flip_prob=0.0", "data.color_jitter=0.0",
             "data.crop_size=[64,128]", "train.max_iters=1", "train.warmup_iters=0", f"train.seed={seed}",
             "--finetune-from", str(tmp_path / "initial.pth")]
    commands = {name: command(synthetic_root, tmp_path / name, processes, f"data.train_list={tmp_path / name}.txt",
                              f"train.batch_size={batch}", *fixed)
                for name, processes, batch in (("x", 1, 2), ("y", 1, 2), ("two", 2, 4))}
    run_together(commands["x"], commands["y"])
    run(commands["two"])

    eps = torch.finfo(torch.float32).eps
    losses = {name: first_loss(tmp_path / name) for name in lists}
    assert losses["two"] == pytest.approx((losses["x"] + losses["y"]) / 2, rel=4 * eps)
    x, y, two = (final_weights(tmp_path / name) for name in ("x", "y", "two"))
    parameters = {name for name, _ in BiSeNetV1(19).named_parameters()}
    discriminating, total = 0, 0
    for name in parameters:
        w0, wx, wy, w2 = (t[name].double() for t in (initial, x, y, two))
        # Each fp32 operation of the step rounds relative to its operands, whose size is that of
        # w0 and of the update: a few roundings of each.
        tolerance = 4 * eps * (w0.abs() + (wx - w0).abs() + (wy - w0).abs())
        error = (w2 - (wx + wy) / 2).abs()
        assert bool((error <= tolerance).all()), (name, float((error - tolerance).max()))
        discriminating += int(((wx - wy).abs() / 2 > tolerance).sum())
        total += w0.numel()
    assert discriminating > 0.5 * total  # X's and Y's updates differ where the test looks
    # Process 0 keeps its own BN statistics (DDP broadcasts them from there), computed on [X, X].
    buffers = [name for name in initial if name not in parameters]
    assert [name for name in buffers if not torch.equal(two[name], x[name])] == []


def test_sigkill_and_relaunch_is_bit_identical(synthetic_root, uninterrupted, tmp_path):
    cmd = command(synthetic_root, tmp_path, 2, *TIMM_OPTIONS)
    code = launch_and_signal(cmd, tmp_path, "checkpoint_000004.pth", signal.SIGKILL)
    assert code != 0 and not (tmp_path / "model_final.pth").exists()
    relaunch = run(cmd)  # the same command again, unattended
    assert f"took over {tmp_path / 'train.lock'}" in relaunch.stdout  # the killed run's lock
    expected, got = final_state(uninterrupted), final_state(tmp_path)
    assert [k for k in expected if not torch.equal(expected[k], got[k])] == []
    assert any(not torch.equal(got[k], got[f"ema.{k}"]) for k in final_weights(tmp_path))


def test_sigterm_saves_and_resumes(synthetic_root, uninterrupted, tmp_path):
    # No periodic checkpoint before the end (interval 100): a checkpoint now can only come from
    # the signal. It is sent once the metrics show 2 iterations done.
    cmd = command(synthetic_root, tmp_path, 2, *TIMM_OPTIONS, "train.checkpoint_interval=100")
    process = subprocess.Popen(cmd, cwd=REPO, env=environment(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    metrics, deadline = tmp_path / "metrics.jsonl", time.time() + TIMEOUT
    while not (metrics.exists() and metrics.read_text().count("\n") >= 2):
        assert process.poll() is None and time.time() < deadline, process.stdout.read()[-3000:]
        time.sleep(0.01)
    os.killpg(process.pid, signal.SIGTERM)  # as a scheduler stopping the job would
    output, _ = process.communicate(timeout=TIMEOUT)
    saved = sorted(n for n in os.listdir(tmp_path) if n.startswith("checkpoint_"))
    assert len(saved) == 1 and not (tmp_path / "model_final.pth").exists(), output[-3000:]
    newest = load_checkpoint(os.path.join(tmp_path, saved[0]))
    assert newest["interrupted"] is True and 2 <= newest["iteration"] < 8
    # Both processes stopped at that step and said so; the launcher reports the failure.
    for rank in (0, 1):
        assert f"stopped (rank {rank}): stopped at iteration {newest['iteration']}: checkpoint saved" in output
    assert process.returncode != 0
    run(cmd)
    expected, got = final_state(uninterrupted), final_state(tmp_path)
    assert [k for k in expected if not torch.equal(expected[k], got[k])] == []


def test_sigterm_exit_code_is_that_of_the_signal(synthetic_root, tmp_path):
    cmd = command(synthetic_root, tmp_path, 1, "train.checkpoint_interval=100", "train.max_iters=50")
    process = subprocess.Popen(cmd, cwd=REPO, env=environment(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    metrics, deadline = tmp_path / "metrics.jsonl", time.time() + TIMEOUT
    while not metrics.exists() or not metrics.read_text():
        assert process.poll() is None and time.time() < deadline, process.stdout.read()[-3000:]
        time.sleep(0.01)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 128 + signal.SIGTERM, output[-3000:]
    assert load_checkpoint(str(next(tmp_path.glob("checkpoint_*.pth"))))["interrupted"] is True


def test_a_bad_file_counts_once_over_processes_and_epochs(synthetic_copy, tmp_path):
    # 6 training images, 4 per step over 2 processes: 6 steps are 4 epochs, the broken file met
    # in each, by either process. One distinct bad file is within data.max_skipped_samples=1.
    broken = sorted((synthetic_copy / "leftImg8bit" / "train").rglob("*.png"))[2]
    broken.write_bytes(b"")
    result = run(command(synthetic_copy, tmp_path / "run", 2, "train.max_iters=6", "data.max_skipped_samples=1"))
    assert "1 bad sample(s) were skipped" in result.stdout
    log = (tmp_path / "run" / "log.txt").read_text()
    assert log.count("skipped a bad sample") == 1 and broken.name in log
    assert load_checkpoint(str(tmp_path / "run" / "model_final.pth"))["iteration"] == 6
