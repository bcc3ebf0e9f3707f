"""Processes by PID: whether the writer of a temporary checkpoint file or the holder of a run's
lock still runs, for telling abandoned files from files in use."""
import os


def process_alive(pid):
    """Whether a process with this PID runs on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it runs, as another user
    return True
