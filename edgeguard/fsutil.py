"""Safe files: atomic writes for state, and refusing files others could have changed.

Every state file (temporary allows, blocks, checkpoint keys, shipping cursors) is
written with :func:`atomic_write` (temporary file, fsync, rename, fsync the directory),
so a crash leaves the old or the new content, never half. Policy and key files are
refused when anyone but root could have written them (:func:`unsafe_reason`).
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

__all__ = ["atomic_write", "fsync_directory", "unsafe_reason", "write_whole"]


def fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` atomically and durably, created with ``mode``."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW,
                 mode)
    try:
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.replace(tmp, path)
    fsync_directory(path.parent)


def unsafe_reason(path: Path, owner_uid: int = 0) -> str | None:
    """Why ``path`` must not be trusted, or None.

    Unsafe: not a regular file, owned by someone other than ``owner_uid``, writable by
    group or others, or inside a directory others can write to without the sticky bit.
    """
    try:
        st = path.stat()
    except OSError as exc:
        return f"cannot stat: {exc.strerror}"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    mode = stat.S_IMODE(st.st_mode)
    if st.st_uid != owner_uid:
        return f"owned by uid {st.st_uid}, not {owner_uid}"
    if mode & 0o022:
        return f"mode {mode:04o} lets group or others write it (chmod go-w {path})"
    parent = path.resolve().parent.stat()
    if stat.S_IMODE(parent.st_mode) & 0o002 and not parent.st_mode & stat.S_ISVTX:
        return f"its directory is world-writable (mode {stat.S_IMODE(parent.st_mode):04o})"
    return None


def write_whole(fd: int, data: bytes, size: int) -> None:
    """Append all of ``data`` to ``fd`` (an O_APPEND file now ``size`` bytes long), or
    none of it: after a failed or short write the file is cut back to ``size`` and the
    error raised, so a reader never finds half a record."""
    view = memoryview(data)
    try:
        while view:
            written = os.write(fd, view)
            view = view[written:]
    except OSError:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, size)
        raise
