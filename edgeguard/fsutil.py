"""Safe files: atomic writes for state, and refusing files others could have changed.

Every state file (temporary allows, blocks, checkpoint keys, shipping cursors) is
written with :func:`atomic_write` (temporary file, fsync, rename, fsync the directory),
so a crash leaves the old or the new content, never half. Policy and key files are
refused when anyone but root could have written them, the file or any directory on the
way to it (:func:`open_trusted`, sshd's StrictModes), and read from the descriptor that
was checked, so nothing can be swapped between the check and the read.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path

__all__ = [
    "UnsafeFileError",
    "atomic_write",
    "fsync_directory",
    "open_trusted",
    "read_bounded",
    "unsafe_reason",
    "write_whole",
]


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


class UnsafeFileError(Exception):
    """A file that must not be trusted; ``reason`` says why, in words for the admin."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_READ = os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NOFOLLOW


def _open_at(name: str, flags: int, dir_fd: int | None, shown: str) -> int:
    try:
        return os.open(name, flags, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR) and flags & os.O_NOFOLLOW:
            raise UnsafeFileError(f"{shown} is a symbolic link (refused: a link can be "
                                  "changed to point elsewhere)") from None
        raise


def _check_directory(st: os.stat_result, shown: str, owner_uid: int) -> None:
    """sshd's StrictModes for one directory on the way: owned by ``owner_uid`` (or
    root), not writable by group or others unless sticky and root's (like ``/tmp``: in
    a sticky directory only an entry's owner may rename or remove it, and every entry
    below must be ``owner_uid``'s anyway)."""
    mode = stat.S_IMODE(st.st_mode)
    if st.st_uid not in (0, owner_uid):
        raise UnsafeFileError(f"directory {shown} is owned by uid {st.st_uid}, not root")
    if mode & 0o022 and not (mode & stat.S_ISVTX and st.st_uid == 0):
        who = "group" if mode & 0o020 else "others"
        raise UnsafeFileError(
            f"directory {shown} is writable by {who} (mode {mode:04o}): they could swap "
            f"the file for another or a link (chmod go-w {shown})")


def _check_file(st: os.stat_result, shown: str, owner_uid: int) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise UnsafeFileError("not a regular file")
    mode = stat.S_IMODE(st.st_mode)
    if st.st_uid != owner_uid:
        raise UnsafeFileError(f"owned by uid {st.st_uid}, not {owner_uid}")
    if mode & 0o022:
        raise UnsafeFileError(f"mode {mode:04o} lets group or others write it "
                              f"(chmod go-w {shown})")


def open_trusted(path: Path, owner_uid: int = 0) -> int:
    """A read-only descriptor of ``path``, which only ``owner_uid`` (root) can have
    written. Raises :class:`UnsafeFileError` (or ``OSError``: missing, unreadable).

    Every directory from ``/`` down is opened relative to the one before with
    ``O_NOFOLLOW`` and checked with ``fstat`` (owned by root, not group- or
    other-writable, see :func:`_check_directory`); the file is opened the same way and
    checked with ``fstat``: a regular file owned by ``owner_uid``, not group- or
    other-writable. What is checked is what is read: a symbolic link anywhere, or a
    path swapped between two steps, is refused, never followed. Symbolic links in the
    directories above are resolved first (``/var/run`` → ``/run``) and the resolved
    chain is what is checked.
    """
    where = Path(os.path.realpath(Path(path).absolute().parent))
    shown = str(where)
    fd = _open_at("/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, None, "/")
    try:
        _check_directory(os.fstat(fd), "/", owner_uid)
        current = Path("/")
        for part in where.parts[1:]:
            current = current / part
            shown = str(current)
            child = _open_at(part, _READ | os.O_DIRECTORY, fd, shown)
            os.close(fd)
            fd = child
            _check_directory(os.fstat(fd), shown, owner_uid)
        shown = str(where / Path(path).name)
        handle = _open_at(Path(path).name, _READ | os.O_NONBLOCK, fd, shown)
    finally:
        os.close(fd)
    try:
        _check_file(os.fstat(handle), shown, owner_uid)
    except UnsafeFileError:
        os.close(handle)
        raise
    return handle


def unsafe_reason(path: Path, owner_uid: int = 0) -> str | None:
    """Why ``path`` must not be trusted (see :func:`open_trusted`), or None."""
    try:
        fd = open_trusted(path, owner_uid)
    except UnsafeFileError as exc:
        return exc.reason
    except OSError as exc:
        return f"cannot open: {exc.strerror}"
    os.close(fd)
    return None


def read_bounded(fd: int, limit: int) -> bytes:
    """At most ``limit`` bytes from ``fd`` (to its end if shorter)."""
    chunks: list[bytes] = []
    left = limit
    while left > 0:
        chunk = os.read(fd, min(left, 1 << 16))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


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
