"""Output files, the one way every part of the toolbox writes them: checked before the work
(``check_output_file``, ``check_output_dir``), written atomically (a temporary file beside the
target, moved into place only when complete), and claimed by the caller only once written.

A check changes nothing on disk: it finds the nearest folder that exists on the way to the path
and creates and removes a file in it, which is the only test that holds for every user (root
writes into a ``chmod 555`` folder; nobody writes on a read-only mount). Missing parent folders
are created when the first file is written, so a command refused later leaves no empty folder.
"""
import contextlib
import errno
import json
import os
import shutil
import tempfile

import cv2
import numpy as np

from bisenet.errors import UserError

TEMP_PREFIX = ".tmp-"
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


class OutputError(UserError):
    """An output path that cannot be written; the message names it and the reason.
    ``no_space``: the filesystem (or the user's quota) is full."""

    no_space = False


def mount_point(path):
    """The mount point of the filesystem that holds (or would hold) ``path``."""
    path = nearest_existing(path)
    while not os.path.ismount(path):
        path = os.path.dirname(path)
    return path


def free_bytes(path):
    """Bytes that may still be written on the filesystem that holds (or would hold) ``path``."""
    return shutil.disk_usage(nearest_existing(path)).free


def nearest_existing(path):
    """The nearest existing path on the way up to ``path`` (``path`` itself if it exists),
    absolute."""
    path = os.path.abspath(path)
    while not os.path.lexists(path):
        path = os.path.dirname(path)
    return path


def _reason(exc):
    return exc.strerror or str(exc) if isinstance(exc, OSError) else str(exc)


def _probe(folder, path, what):
    """Create and remove a file in ``folder`` (which exists), or refuse naming ``path``."""
    try:
        fd, probe = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=folder)
        os.close(fd)
        os.remove(probe)
    except OSError as exc:
        raise OutputError(f"cannot write {what} {path}: {folder} is not writable ({_reason(exc)})") from None


def _check_folder(folder, path, what):
    """Refuse ``path`` (``folder`` or a file in it) if ``folder`` could not take files."""
    ancestor = nearest_existing(folder)
    if ancestor == os.path.abspath(path) and not os.path.isdir(ancestor):
        raise OutputError(f"{what} {path} is a file, not a folder; choose another path")
    if not os.path.isdir(ancestor):
        raise OutputError(f"cannot write {what} {path}: {ancestor} is a file, not a folder")
    _probe(ancestor, path, what)
    return path


def check_output_dir(path, what="the output folder"):
    """Refuse now, in one sentence naming ``path``, a folder that could not take files: a file
    in its place or on the way to it, or no permission / a read-only filesystem. Returns
    ``path``."""
    return _check_folder(path, path, what)


def check_output_file(path, what="the output file"):
    """Refuse now a file path that could not be written: a folder, a file on the way to it, or
    a folder that does not take files. Returns ``path``."""
    if os.path.isdir(path):
        raise OutputError(f"{what} {path} is a folder; give a file name in it, e.g. "
                          f"{os.path.join(path, 'out' + (os.path.splitext(path)[1] or '.json'))}")
    return _check_folder(os.path.dirname(os.path.abspath(path)), path, what)


def write_error(path, exc):
    """The ``OutputError`` for a failed write of ``path``: a full disk names its filesystem."""
    if isinstance(exc, OSError) and exc.errno in NO_SPACE:
        error = OutputError(f"no space left on {mount_point(path)} while writing {path}; free some space or "
                            "write elsewhere")
        error.no_space = True
        return error
    return OutputError(f"cannot write {path}: {_reason(exc)}")


@contextlib.contextmanager
def atomic_path(path):
    """``atomic_open`` for writers that take a file name (OpenCV's video writer): a temporary
    path beside ``path``, with its extension (so that the writer picks the same format), moved
    over ``path`` when the block ends without an error and removed on an error. An ``OSError``
    becomes an ``OutputError`` naming ``path``."""
    directory = os.path.dirname(os.path.abspath(path))
    temp = os.path.join(directory, f"{TEMP_PREFIX}{os.getpid()}-{os.path.basename(path)}")
    try:
        os.makedirs(directory, exist_ok=True)
        yield temp
        os.replace(temp, path)
    except OSError as exc:
        _remove(temp)
        raise write_error(path, exc) from None
    except BaseException:
        _remove(temp)
        raise


@contextlib.contextmanager
def atomic_open(path, mode="wb"):
    """A file object for ``path``'s content: written to a temporary file beside it, synced and
    moved over ``path`` when the block ends without an error; on an error the temporary file is
    removed and ``path`` is as it was. An ``OSError`` (full disk, permissions) becomes an
    ``OutputError`` naming ``path``; other errors pass through unchanged."""
    with atomic_path(path) as temp, open(temp, mode) as f:
        yield f
        f.flush()
        os.fsync(f.fileno())


def _remove(path):
    with contextlib.suppress(OSError):
        os.remove(path)


def write_bytes(path, data):
    with atomic_open(path, "wb") as f:
        f.write(data)
    return path


def write_text(path, text):
    with atomic_open(path, "w") as f:
        f.write(text)
    return path


def write_json(path, data):
    """``data`` as indented JSON (NaN is not JSON: give None)."""
    return write_text(path, json.dumps(data, indent=2, allow_nan=False) + "\n")


def encode_image(path, image):
    """The bytes of ``image`` (HxW, or HxWx3 in **RGB**) in the format of ``path``'s extension."""
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(os.path.splitext(path)[1] or ".png", np.ascontiguousarray(image))
    if not ok:
        raise OutputError(f"cannot encode {path}: OpenCV has no encoder for {os.path.splitext(path)[1]!r}")
    return encoded.tobytes()


def write_image(path, image):
    """``image`` (HxW, or HxWx3 RGB) written atomically in the format of ``path``'s extension."""
    return write_bytes(path, encode_image(path, image))
