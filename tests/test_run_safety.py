"""A run never silently does the wrong thing: changed settings on resume, a second run into the
same folder, unreadable or foreign checkpoints, diverged weights, a full disk, stale temporary
files, and the tracebacks that became messages."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

import bisenet.checkpoint as checkpoint_module
import bisenet.engine.trainer as trainer_module
from bisenet.checkpoint import CheckpointError, load_checkpoint
from bisenet.engine.trainer import TrainingError, train
from bisenet.errors import UserError
from bisenet.lr_scheduler import lr_factor

from conftest import REPO, run_tool, run_with_mounts, tool_argv
from test_trainer import crash_after, lr_records


@pytest.fixture
def cfg(tiny_cfg):
    tiny_cfg.train.max_iters = 4
    tiny_cfg.train.checkpoint_interval = 2
    tiny_cfg.train.keep_checkpoints = 5
    return tiny_cfg


# --- Silent wrong results -----------------------------------------------------------------

def test_forced_resume_follows_the_new_schedule_and_says_what_changed(cfg, capsys):
    train(cfg, "cpu", progress=False)  # 4 iterations at base_lr 0.01
    cfg.train.max_iters, cfg.train.base_lr = 8, 0.02
    with pytest.raises(TrainingError, match=r"finished run \(4 iterations\) trained with other settings "
                                            r"\(train.max_iters: 4 in the run, 8 now; train.base_lr: 0.01"):
        train(cfg, "cpu", resume="latest", progress=False)
    train(cfg, "cpu", resume="latest", force_resume=True, progress=False)
    assert "resuming with changed settings, which apply from iteration 4: train.max_iters 4 -> 8; train.base_lr " \
           "0.01 -> 0.02" in capsys.readouterr().out
    lrs = lr_records(cfg.train.output_dir)
    for iteration in (5, 6, 7, 8):  # the LR of the step that made this iteration, under the new config
        factor = lr_factor(iteration - 1, 8, cfg.train.warmup_iters, cfg.train.warmup_ratio, cfg.train.poly_power)
        assert lrs[iteration]["backbone"] == pytest.approx(0.02 * factor) and lrs[iteration]["backbone"] > 0
        assert lrs[iteration]["head"] == pytest.approx(0.2 * factor)


def folder_state(path):
    """Every file under ``path`` with its bytes (None for the lock file, whose content is the
    holder's PID), to tell that a refused launch changed nothing."""
    if not os.path.isdir(path):
        return None
    return {os.path.relpath(os.path.join(d, n), path): None if n == "train.lock" else
            open(os.path.join(d, n), "rb").read() for d, _, names in os.walk(path) for n in names}


def test_a_refused_launch_writes_nothing_into_the_folder(cfg):
    """Every refusal comes before the first write: the run's config.py, log and metrics stay
    those of the run its checkpoints belong to."""
    out = cfg.train.output_dir
    crash_after_iterations(cfg, 3)  # an unfinished run: checkpoint_000002.pth
    before = folder_state(out)
    cfg.train.base_lr = 0.05
    refusals = {"unfinished run": dict(resume=None), "other settings": dict(resume="latest"),
                "no such file": dict(resume=os.path.join(out, "missing.pth"))}
    for expected, kwargs in refusals.items():
        with pytest.raises(UserError, match=expected):
            train(cfg, "cpu", progress=False, **kwargs)
        assert folder_state(out) == before, expected
    cfg.train.base_lr, cfg.data.root = 0.01, os.path.join(out, "no-such-dataset")
    with pytest.raises(UserError, match="dataset root .* does not exist"):  # found after the checkpoint's checks
        train(cfg, "cpu", resume="latest", progress=False)
    assert folder_state(out) == before


def test_a_refused_launch_into_a_new_folder_leaves_no_folder(cfg, tmp_path):
    cfg.data.root = str(tmp_path / "no-such-dataset")
    for folder in (tmp_path / "new", tmp_path / "deeper" / "still" / "new"):
        cfg.train.output_dir = str(folder)
        with pytest.raises(UserError, match="does not exist"):
            train(cfg, "cpu", progress=False)
        assert not folder.exists() and not (tmp_path / "deeper").exists()


def test_a_finished_run_is_treated_like_a_checkpoint(cfg, capsys):
    """Relaunched with the same settings: nothing to train and its evaluation shown again; with
    others: refused naming them; --force-resume continues it to a longer schedule, never to a
    shorter one."""
    out = cfg.train.output_dir
    train(cfg, "cpu", progress=False, final_eval=True)
    results = json.load(open(os.path.join(out, "results.json")))
    capsys.readouterr()
    before = folder_state(out)
    model, _ = train(cfg, "cpu", progress=False, final_eval=True)
    shown = capsys.readouterr().out
    assert model is None and folder_state(out) == before
    assert "already holds this run, finished (4 iterations, the same settings): nothing to train" in shown
    assert results["report"] in shown and f"{100 * results['modes']['ss']['miou']:.2f}" in results["report"]

    cfg.train.max_iters = 3  # the quickstart relaunched with train.max_iters=4 after its 170
    with pytest.raises(TrainingError, match=r"finished run \(4 iterations\) trained with other settings "
                                            r"\(train.max_iters: 4 in the run, 3 now\)"):
        train(cfg, "cpu", progress=False)
    with pytest.raises(TrainingError, match="cannot continue it to train.max_iters=3, which it has passed"):
        train(cfg, "cpu", force_resume=True, progress=False)
    cfg.train.max_iters = 6  # train.max_iters=400 after the quickstart
    for resume in (None, "latest"):
        with pytest.raises(TrainingError, match="pass --force-resume to continue this run with them to "
                                                "train.max_iters=6"):
            train(cfg, "cpu", resume=resume, progress=False)
    assert folder_state(out) == before
    model, _ = train(cfg, "cpu", force_resume=True, progress=False, final_eval=True)
    assert model is not None and load_checkpoint(os.path.join(out, "model_final.pth"))["iteration"] == 6
    log = open(os.path.join(out, "log.txt")).read()
    assert "resumed from" in log and "checkpoint_000004.pth at iteration 4" in log
    assert json.load(open(os.path.join(out, "results.json")))["iteration"] == 6


def test_the_evaluation_after_training_reaches_the_log_the_metrics_and_results_json(cfg, capsys):
    out = cfg.train.output_dir
    cfg.eval.final_modes = ("ss", "ssf")
    train(cfg, "cpu", progress=False, final_eval=True)
    printed = capsys.readouterr().out
    results = json.load(open(os.path.join(out, "results.json")))
    assert list(results["modes"]) == ["ss", "ssf"] and results["iteration"] == 4
    assert results["report"] in printed and results["report"] in open(os.path.join(out, "log.txt")).read()
    [record] = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl")) if "final_evaluation" in line]
    for mode in ("ss", "ssf"):
        scores = record["final_evaluation"][mode]
        assert scores["miou"] == results["modes"][mode]["miou"]
        assert scores["iou"] == {name: entry["iou"] for name, entry in results["modes"][mode]["per_class"].items()}
        assert f"{100 * scores['miou']:.2f}" in results["report"]

    # Not evaluated (interrupted, or --no-eval), or with other eval settings: a relaunch evaluates.
    os.remove(os.path.join(out, "results.json"))
    cfg.eval.final_modes = ("ss",)
    train(cfg, "cpu", progress=False, final_eval=True)
    assert "evaluating it (it was not evaluated after training)" in capsys.readouterr().out
    assert list(json.load(open(os.path.join(out, "results.json")))["modes"]) == ["ss"]
    cfg.eval.final_modes = ("ssf",)
    train(cfg, "cpu", progress=False, final_eval=True)
    assert "evaluating it with the new eval settings" in capsys.readouterr().out
    assert list(json.load(open(os.path.join(out, "results.json")))["modes"]) == ["ssf"]


def test_another_class_count_points_to_finetune(cfg):
    crash_after_iterations(cfg, 3)
    cfg.model.num_classes, cfg.data.class_names, cfg.data.palette = 5, tuple("abcde"), ()
    cfg.data.label_map = {}
    for force in (False, True):
        with pytest.raises(TrainingError, match="--finetune-from .*checkpoint_000002.pth"):
            train(cfg, "cpu", resume="latest", force_resume=force, progress=False)


def crash_after_iterations(cfg, iterations):
    """A run that dies during iteration ``iterations + 1``."""
    monkeypatch = pytest.MonkeyPatch()
    crash_after(monkeypatch, iterations)
    try:
        with pytest.raises(RuntimeError, match="simulated crash"):
            train(cfg, "cpu", progress=False)
    finally:
        monkeypatch.undo()


def test_resume_refuses_when_no_checkpoint_can_be_read_and_deletes_nothing(cfg):
    cfg.train.max_iters = 6
    crash_after_iterations(cfg, 5)
    paths = sorted(os.path.join(cfg.train.output_dir, n) for n in os.listdir(cfg.train.output_dir)
                   if n.startswith("checkpoint_"))
    assert len(paths) == 2
    for path in paths:
        with open(path, "r+b") as f:
            f.truncate(100)
    contents = [open(p, "rb").read() for p in paths]
    with pytest.warns(UserWarning), pytest.raises(CheckpointError) as error:
        train(cfg, "cpu", resume="latest", progress=False)
    message = str(error.value)
    assert "none of the 2 checkpoint(s)" in message and all(p in message for p in paths)
    assert "truncated or damaged" in message and "--resume CKPT" in message
    assert [open(p, "rb").read() for p in paths] == contents
    assert not os.path.exists(os.path.join(cfg.train.output_dir, "model_final.pth"))


def test_pruning_never_deletes_a_file_the_run_did_not_write(cfg):
    cfg.train.max_iters, cfg.train.keep_checkpoints = 6, 1
    crash_after_iterations(cfg, 5)  # writes 2, then 4 (2 pruned)
    out = cfg.train.output_dir
    foreign = os.path.join(out, "checkpoint_000003.pth")
    with open(foreign, "w") as f:
        f.write("someone else's file")
    model, _ = train(cfg, "cpu", resume="latest", progress=False)  # from 4, the newest
    assert model is not None
    names = sorted(n for n in os.listdir(out) if n.startswith("checkpoint_"))
    assert names == ["checkpoint_000003.pth", "checkpoint_000006.pth"]  # 4 was the run's: pruned
    assert open(foreign).read() == "someone else's file"


def test_diverged_weights_are_never_saved(cfg, monkeypatch):
    real_step = trainer_module.train_step
    steps = {"n": 0}

    def exploding_step(run, *args, **kwargs):
        status = real_step(run, *args, **kwargs)
        steps["n"] += 1
        if steps["n"] == 3:  # the loss stayed finite, but BatchNorm's statistics overflowed
            run.model.cp.resnet.bn1.running_var.fill_(float("inf"))
        return status

    monkeypatch.setattr(trainer_module, "train_step", exploding_step)
    with pytest.raises(TrainingError) as error:
        train(cfg, "cpu", progress=False)
    message = str(error.value)
    assert "after iteration 4 the model holds inf or NaN in 1 tensor(s) (cp.resnet.bn1.running_var)" in message
    assert "checkpoint_000002.pth is the last good checkpoint" in message
    names = sorted(n for n in os.listdir(cfg.train.output_dir) if n.endswith(".pth"))
    assert names == ["checkpoint_000002.pth"]


@pytest.mark.slow
def test_a_second_run_into_the_same_folder_is_refused_and_a_dead_ones_lock_taken_over(synthetic_root, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, os.path.join(REPO, "tools", "train.py"), "--config", "configs/bisenetv1_synthetic.py",
           f"data.root={synthetic_root}", f"train.output_dir={out}", "data.crop_size=[64,64]", "data.num_workers=0",
           "train.max_iters=4", "train.warmup_iters=1", "train.batch_size=2", "train.checkpoint_interval=2",
           "train.eval_interval=0", "--no-eval", "--resume"]
    first = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             start_new_session=True)
    try:
        deadline = time.time() + 120
        while not (out / "checkpoint_000002.pth").exists():
            assert first.poll() is None and time.time() < deadline, first.stdout.read()
            time.sleep(0.02)
        os.killpg(first.pid, signal.SIGSTOP)  # frozen mid-run: it holds the folder
        second = run_tool("train.py", *cmd[2:])  # in this process: the lock is the first run's
        assert second.returncode == 1 and "Traceback" not in second.stderr
        assert f"is in use by another training run (PID {first.pid}" in second.stderr
        os.killpg(first.pid, signal.SIGKILL)  # now it crashes
        first.wait(timeout=60)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    third = run_tool("train.py", *cmd[2:])
    assert third.returncode == 0, third.stderr
    assert f"took over {out / 'train.lock'} from PID {first.pid}, which is no longer running" in third.stdout
    assert load_checkpoint(str(out / "model_final.pth"))["iteration"] == 4
    assert (out / "train.lock").read_text() == ""  # released on exit


def test_stale_temporary_files_of_dead_writers_are_removed(cfg):
    out = cfg.train.output_dir
    os.makedirs(out)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = [os.path.join(out, f".tmp-{int(dead.stdout)}-abc.pth"), os.path.join(out, ".tmp-old.pth")]
    alive = os.path.join(out, f".tmp-{os.getppid()}-xyz.pth")  # a writer that still runs
    for path in stale + [alive]:
        open(path, "wb").close()
    train(cfg, "cpu", progress=False)
    assert not any(os.path.exists(p) for p in stale) and os.path.exists(alive)
    log = open(os.path.join(out, "log.txt")).read()
    assert all(f"removed {p}, left by an interrupted save" in log for p in stale)


# --- Tracebacks that became sentences ------------------------------------------------------

def resume_args(synthetic_root, out, checkpoint):
    return ["--config", "configs/bisenetv1_synthetic.py", f"data.root={synthetic_root}", f"train.output_dir={out}",
            "data.crop_size=[64,64]", "data.num_workers=0", "train.max_iters=2", "train.warmup_iters=1",
            "train.batch_size=2", "--no-eval", "--resume", str(checkpoint)]


def test_resume_from_a_file_that_cannot_be_resumed_says_what_it_is(synthetic_root, tmp_path, cfg):
    train(cfg, "cpu", progress=False)
    good = os.path.join(cfg.train.output_dir, "checkpoint_000004.pth")
    truncated, text = tmp_path / "truncated.pth", tmp_path / "notes.pth"
    truncated.write_bytes(open(good, "rb").read()[:5000])
    text.write_text("these are not weights\n")
    cases = {truncated: "it is truncated or damaged", text: "it is a text file, not a PyTorch checkpoint",
             os.path.join(cfg.train.output_dir, "model_final.pth"): "--finetune-from",
             tmp_path / "missing.pth": "no such file"}
    for path, expected in cases.items():
        result = run_tool("train.py", *resume_args(synthetic_root, tmp_path / "out", path))
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        assert f"cannot resume from {path}" in result.stderr and expected in result.stderr


def test_a_full_disk_is_a_sentence_and_the_previous_checkpoint_survives(synthetic_root, tmp_path):
    # A real 180 MB disk: the checkpoint of iteration 2 (about 100 MB: weights and momentum)
    # fits, the one of iteration 4 does not.
    disk = tmp_path / "disk"
    out = disk / "run"
    args = ["--config", "configs/bisenetv1_synthetic.py", f"data.root={synthetic_root}", f"train.output_dir={out}",
            "data.crop_size=[64,64]", "data.num_workers=0", "train.max_iters=4", "train.warmup_iters=1",
            "train.batch_size=2", "train.checkpoint_interval=2", "train.keep_checkpoints=5", "train.amp=false",
            "--no-eval"]
    result = run_with_mounts(tool_argv("train.py", *args), {disk: "size=180m"})
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith(f"error: no space left on {disk} while writing {out}/checkpoint_000004.pth (about ")
    assert "MB free); train.keep_checkpoints=5 keeps about 5 x" in message
    assert f"{out}/checkpoint_000002.pth is intact" in message
    # The mount is gone with the namespace: what the run left is not visible here; the same run
    # on a disk with room shows the files it keeps, and the message above came before any write.


SAVE_ON_AN_ALMOST_FULL_DISK = """
import os, sys, torch
from bisenet.checkpoint import DiskFullError, save_checkpoint
state = {f"w{i}": torch.zeros(64) for i in range(400)}
folder, size = sys.argv[1], int(sys.argv[2])
free = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
with open(os.path.join(folder, "filler"), "wb") as f:   # leave room for the tensors, not for the file
    f.write(bytes(free - size))
try:
    save_checkpoint(state, os.path.join(folder, "c.pth"))
except DiskFullError as exc:
    print(exc)
    print(sorted(os.listdir(folder)))
    sys.exit(3)
"""


def test_a_disk_that_fills_during_the_write_is_recognised_by_its_free_space(tmp_path):
    # 400 tensors of 256 bytes: 100 KiB of data; torch's zip file adds about 100 KiB of records.
    # 108 KiB are free: the check before the write passes, the write fails inside torch (whose
    # error speaks of "unexpected pos"), and the free space names the cause.
    import torch

    state = {f"w{i}": torch.zeros(64) for i in range(400)}
    checkpoint_module.save_checkpoint(state, str(tmp_path / "whole.pth"))
    assert os.path.getsize(tmp_path / "whole.pth") > 112 * 1024  # more than will be free
    disk = tmp_path / "disk"
    result = run_with_mounts([sys.executable, "-c", SAVE_ON_AN_ALMOST_FULL_DISK, disk, 108 * 1024],
                             {disk: "size=1m"})
    assert result.returncode == 3, result.stderr
    message, files = result.stdout.strip().splitlines()
    assert message.startswith(f"no space left on {disk} while writing {disk}/c.pth (about 0 MB needed")
    assert files == "['filler']"  # no partial checkpoint, no temporary file


@pytest.mark.slow
def test_ctrl_c_before_training_starts_is_a_message(synthetic_root, tmp_path):
    out = tmp_path / "run"
    process = subprocess.Popen([sys.executable, os.path.join(REPO, "tools", "train.py"),
                                *resume_args(synthetic_root, out, "")[:-2]], cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 120
    while not (out / "train.lock").exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130 and "Traceback" not in stderr, stderr
    assert "interrupted" in stderr or "stopped at iteration" in stderr


def test_export_and_convert_refuse_bad_arguments_with_a_message(tmp_path, cfg):
    train(cfg, "cpu", progress=False)
    weights = os.path.join(cfg.train.output_dir, "model_final.pth")
    result = run_tool("export_onnx.py", "--config", "configs/bisenetv1_synthetic.py", "--weights", weights,
                      "--out", str(tmp_path / "m.onnx"), "--size", "0", "128")
    assert result.returncode == 1 and "--size: 0 must be at least 1" in result.stderr
    (tmp_path / "file").write_text("")
    result = run_tool("convert_checkpoint.py", "--from", "coincheung", weights, str(tmp_path / "file" / "x.pth"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"cannot write the converted checkpoint {tmp_path / 'file' / 'x.pth'}: {tmp_path / 'file'} is a file" \
        in result.stderr
