"""One training run per output folder: a lock held for the run's lifetime.

The lock is a POSIX record lock (``fcntl.lockf``) on ``<output_dir>/train.lock``, which holds the
holder's PID. The kernel releases it when the holder exits in any way (SIGKILL, a crash), so a
dead run never blocks the next one; unlike ``flock``, it is not inherited by the data loader's
forked workers, which may outlive a killed trainer for a few seconds. Power loss leaves only the
file, whose PID the next run reports as gone.
"""
import fcntl
import os
import socket

from bisenet.errors import UserError
from bisenet.processes import process_alive

LOCK_NAME = "train.lock"


class OutputLockError(UserError):
    """Another live run holds the folder."""


class OutputLock:
    """``acquire()`` takes the folder or raises ``OutputLockError`` naming the holder; the
    returned note (or None) says when a dead run's lock was taken over."""

    def __init__(self, output_dir):
        self.path = os.path.join(output_dir, LOCK_NAME)
        self.fd = None

    def acquire(self):
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        # Read through this descriptor only: closing any other one on the file would drop a
        # POSIX lock this process holds.
        previous = os.pread(fd, 200, 0).decode(errors="replace").split()
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            holder = "a process"
            if previous:
                holder = f"PID {previous[0]}" + (f" on {previous[1]}" if len(previous) > 1 else "")
            raise OutputLockError(f"{os.path.dirname(self.path)} is in use by another training run ({holder}); wait "
                                  "for it to finish, or set train.output_dir to another folder") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
        os.fsync(fd)
        self.fd = fd
        if previous and previous[0].isdigit() and int(previous[0]) != os.getpid():
            same_host = len(previous) < 2 or previous[1] == socket.gethostname()
            if not (same_host and process_alive(int(previous[0]))):
                return f"took over {self.path} from PID {previous[0]}, which is no longer running"
        return None

    def release(self):
        if self.fd is not None:
            os.ftruncate(self.fd, 0)  # a clean exit leaves no PID behind
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()
