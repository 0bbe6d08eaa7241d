"""Run a command inside the sandbox a systemd unit file describes, as far as a host
without systemd as PID 1 allows: ``python -m tests.support.unit_sandbox UNIT -- ARGV``.

What it applies, read from the unit's ``[Service]`` section, before ``execve``:

* ``ProtectProc=invisible`` / ``ProcSubset=pid``: a private mount namespace (``/``
  made a slave, as systemd does, so nothing mounted inside reaches the host) with a
  fresh ``/proc`` mounted ``hidepid=invisible,subset=pid``;
* ``CapabilityBoundingSet=``: every other capability dropped from the bounding set,
  so the exec'd root process holds exactly these (as under systemd);
* ``NoNewPrivileges=yes``: ``PR_SET_NO_NEW_PRIVS``;
* ``RestrictAddressFamilies=``: a seccomp filter that fails ``socket()`` and
  ``socketpair()`` of any other family with EAFNOSUPPORT (systemd's errno too);
* ``Environment=``: with ``%b`` (the boot id) expanded.

Not applied: the other mount settings, the syscall filter and IPAddressDeny (moot without
AF_INET). ``ExecStartPre=+`` commands run outside any sandbox, so the caller runs them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import socket
import struct
import sys
from pathlib import Path

__all__ = ["CAPABILITIES", "service_settings"]

#: linux/capability.h, in number order.
CAPABILITIES = (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
    "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
    "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE",
    "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME",
    "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
    "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ",
    "PERFMON", "BPF", "CHECKPOINT_RESTORE",
)

_CLONE_NEWNS = 0x00020000
_MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 0x2, 0x4, 0x8
_MS_REC, _MS_SLAVE = 0x4000, 0x80000
_PR_CAPBSET_READ, _PR_CAPBSET_DROP = 23, 24
_PR_SET_NO_NEW_PRIVS, _PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 38, 22, 2
_SECCOMP_RET_ALLOW, _SECCOMP_RET_ERRNO = 0x7FFF0000, 0x00050000
_EAFNOSUPPORT = 97
#: (AUDIT_ARCH, socket, socketpair) by machine.
_ARCH = {"x86_64": (0xC000003E, 41, 53), "aarch64": (0xC00000B7, 198, 199)}
_FAMILIES = {"AF_UNIX": socket.AF_UNIX, "AF_INET": socket.AF_INET,
             "AF_INET6": socket.AF_INET6, "AF_NETLINK": socket.AF_NETLINK,
             "AF_PACKET": socket.AF_PACKET}

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def service_settings(unit: Path) -> dict[str, list[str]]:
    """Every ``key=value`` of the [Service] section, values of repeated keys in order
    (an empty assignment resets the list, as systemd reads it)."""
    out: dict[str, list[str]] = {}
    section = ""
    for raw in unit.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
            continue
        key, _, value = line.partition("=")
        if section != "[Service]":
            continue
        out.setdefault(key, [])
        if value == "":
            out[key] = [""]
        else:
            out[key] = [v for v in out[key] if v] + [value]
    return out


def _check(result: int, what: str) -> None:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _private_proc(options: str) -> None:
    _check(_libc.unshare(_CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _check(_libc.mount(None, b"/", None, _MS_REC | _MS_SLAVE, None), "make / a slave")
    _check(_libc.mount(b"proc", b"/proc", b"proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC,
                       options.encode()), "mount /proc")


def _bounding_set(keep: set[str]) -> None:
    unknown = keep - set(CAPABILITIES)
    if unknown:
        raise ValueError(f"unknown capabilities {sorted(unknown)}")
    for number, name in enumerate(CAPABILITIES):
        if name not in keep and _libc.prctl(_PR_CAPBSET_READ, number, 0, 0, 0) >= 0:
            _check(_libc.prctl(_PR_CAPBSET_DROP, number, 0, 0, 0), f"drop CAP_{name}")


def _seccomp_families(allowed: list[int]) -> None:
    arch, nr_socket, nr_socketpair = _ARCH[os.uname().machine]
    ld_w_abs, jeq_k, ret_k = 0x20, 0x15, 0x06
    allow_at = 6 + len(allowed) + 1  # index of the ALLOW return
    prog = [(ld_w_abs, 0, 0, 4),                           # 0: arch
            (jeq_k, 0, allow_at - 2, arch),                # 1: other arch: allow
            (ld_w_abs, 0, 0, 0),                           # 2: syscall number
            (jeq_k, 1, 0, nr_socket),                      # 3
            (jeq_k, 0, allow_at - 5, nr_socketpair),       # 4: neither: allow
            (ld_w_abs, 0, 0, 16)]                          # 5: args[0] (low word)
    for family in allowed:
        prog.append((jeq_k, allow_at - len(prog) - 1, 0, family))
    prog.append((ret_k, 0, 0, _SECCOMP_RET_ERRNO | _EAFNOSUPPORT))
    prog.append((ret_k, 0, 0, _SECCOMP_RET_ALLOW))
    assert len(prog) == allow_at + 1
    raw = b"".join(struct.pack("=HBBI", *ins) for ins in prog)
    buf = ctypes.create_string_buffer(raw)
    fprog = struct.pack("=HxxxxxxQ", len(prog), ctypes.addressof(buf))
    fbuf = ctypes.create_string_buffer(fprog)
    _check(_libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, fbuf, 0, 0), "seccomp")


def _boot_id() -> str:
    return Path("/proc/sys/kernel/random/boot_id").read_text().strip().replace("-", "")


def enter(unit: Path) -> None:
    """Apply ``unit``'s sandbox to this process (then exec the service)."""
    settings = service_settings(unit)

    def last(key: str) -> str:
        return (settings.get(key) or [""])[-1]

    for assignment in settings.get("Environment", []):
        for item in assignment.split():
            key, _, value = item.partition("=")
            os.environ[key] = value.replace("%b", _boot_id())
    proc_options = []
    if last("ProtectProc") in ("invisible", "noaccess", "ptraceable"):
        proc_options.append(f"hidepid={last('ProtectProc')}")
    if last("ProcSubset") == "pid":
        proc_options.append("subset=pid")
    if proc_options:
        _private_proc(",".join(proc_options))
    if "CapabilityBoundingSet" in settings:
        caps = " ".join(settings["CapabilityBoundingSet"]).split()
        _bounding_set({c.removeprefix("CAP_") for c in caps})
    if last("NoNewPrivileges") == "yes":
        _check(_libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    if "RestrictAddressFamilies" in settings:
        names = " ".join(settings["RestrictAddressFamilies"]).split()
        _seccomp_families([_FAMILIES[n] for n in names])


def main(argv: list[str]) -> None:
    if len(argv) < 3 or argv[1] != "--":
        raise SystemExit("usage: python -m tests.support.unit_sandbox UNIT -- ARGV...")
    enter(Path(argv[0]))
    os.execv(argv[2], argv[2:])


if __name__ == "__main__":
    main(sys.argv[1:])
