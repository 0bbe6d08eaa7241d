"""The privileged part of starting, done before the daemon runs without CAP_CHOWN.

The hardened unit runs ``edgeguard prepare`` as ``ExecStartPre=+`` (full privileges, a
few milliseconds) and the daemon without CAP_CHOWN, CAP_FOWNER or CAP_FSETID. What
needs those is giving directories to groups:

* the audit directory: 2750 root:<``audit.file_group``>, its segments root:<group>, so
  the segments the daemon creates later take the group from the directory;
* the control socket's directory: 2755 root:<``daemon.admin_group``>, so the socket the
  daemon binds there is in the admin group and can be 0660;
* the state and shipping-cursor directories, root-only.

Idempotent; each step says what it found or changed.
"""

from __future__ import annotations

import grp
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from edgeguard.audit.ownership import Ownership, OwnershipError
from edgeguard.audit.segments import ACTIVE_NAME
from edgeguard.policy.model import Policy

__all__ = ["SOCKET_DIRECTORY_MODE", "Prepared", "prepare"]

#: The control socket's directory: everyone may reach the socket (its own mode decides),
#: set-group-ID so the socket is born in the admin group.
SOCKET_DIRECTORY_MODE = 0o2755


@dataclass(frozen=True, slots=True)
class Prepared:
    path: str
    detail: str


def prepare(policy: Policy, *, audit_dir: Path | None = None,
            control_socket: Path | None = None, state_dir: Path | None = None,
            ) -> list[Prepared]:
    """Make the daemon's directories as the policy says; raise OSError on failure."""
    audit = audit_dir or Path(policy.audit.directory)
    sock = control_socket or Path(policy.daemon.control_socket)
    state = state_dir or Path(policy.daemon.state_directory)
    done = [_audit(audit, policy), _socket_dir(sock.parent, policy.daemon.admin_group)]
    for path in (state, Path(policy.audit.shipping.cursor_directory)):
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        done.append(Prepared(str(path), _describe(path)))
    return done


def _audit(directory: Path, policy: Policy) -> Prepared:
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    owner = Ownership(directory, policy.audit.file_mode, policy.audit.file_group.gid)
    owner.own_directory()
    active = directory / ACTIVE_NAME
    if active.exists():
        fd = os.open(active, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            owner.own_file(fd)
        finally:
            os.close(fd)
    return Prepared(str(directory), _describe(directory))


def _socket_dir(directory: Path, admin_group: str | None) -> Prepared:
    directory.mkdir(parents=True, exist_ok=True, mode=0o755)
    if admin_group is not None:
        try:
            gid = grp.getgrnam(admin_group).gr_gid
        except KeyError:
            return Prepared(str(directory), f"{_describe(directory)}; no group "
                            f"{admin_group!r}: the control socket stays root-only")
        os.chown(directory, 0, gid)
        os.chmod(directory, SOCKET_DIRECTORY_MODE)
        if stat.S_IMODE(directory.stat().st_mode) != SOCKET_DIRECTORY_MODE:
            raise OwnershipError(1, f"{directory}: set-group-ID refused")
    return Prepared(str(directory), _describe(directory))


def _describe(path: Path) -> str:
    st = path.stat()
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    return f"{stat.S_IMODE(st.st_mode):04o} uid {st.st_uid} group {group}"
