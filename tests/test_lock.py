"""bisenet.engine.lock: one run per folder; a dead holder never blocks the next run."""
import multiprocessing
import os

import pytest

from bisenet.engine.lock import OutputLock, OutputLockError


def _hold(path, ready, release):
    lock = OutputLock(path)
    lock.acquire()
    ready.set()
    release.wait(30)
    lock.release()


def test_a_held_folder_is_refused_with_the_holders_pid_and_free_once_released(tmp_path):
    context = multiprocessing.get_context("fork")
    ready, release = context.Event(), context.Event()
    holder = context.Process(target=_hold, args=(str(tmp_path), ready, release))
    holder.start()
    try:
        assert ready.wait(30)
        with pytest.raises(OutputLockError, match=f"in use by another training run \\(PID {holder.pid} on "):
            OutputLock(str(tmp_path)).acquire()
    finally:
        release.set()
        holder.join(30)
    lock = OutputLock(str(tmp_path))
    assert lock.acquire() is None  # released cleanly: no note
    lock.release()
    assert (tmp_path / "train.lock").read_text() == ""


def test_a_dead_holders_lock_is_taken_over_with_a_note(tmp_path):
    context = multiprocessing.get_context("fork")
    holder = context.Process(target=os.getpid)  # a process that exists, then is gone
    holder.start()
    holder.join()
    (tmp_path / "train.lock").write_text(f"{holder.pid} {os.uname().nodename}\n")  # as a SIGKILL leaves it
    lock = OutputLock(str(tmp_path))
    assert lock.acquire() == f"took over {tmp_path / 'train.lock'} from PID {holder.pid}, which is no longer running"
    assert (tmp_path / "train.lock").read_text().split()[0] == str(os.getpid())
    lock.release()
