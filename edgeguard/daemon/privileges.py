"""Give up what the daemon no longer needs once its resources are open.

After the audit log, netlink, udev and capture sockets are open, the daemon keeps only
the capabilities its actions use, drops the rest from the bounding set (so programs it
runs, like nft or mount, cannot get them back either) and sets ``PR_SET_NO_NEW_PRIVS``.

Kept, and why:

* ``CAP_SYS_ADMIN``: BLKROSET/BLKROGET on block devices, mount/umount of media,
  ``setns``, writing USB ``authorized`` in sysfs.
* ``CAP_NET_ADMIN``: nftables changes, nl80211 disconnect, promiscuous mode, rfkill.
* ``CAP_NET_RAW``: AF_PACKET sockets when a capture worker is restarted.

Not kept: ``CAP_CHOWN``. The audit directory is given to root:<audit.file_group> at start,
before the drop, with the set-group-ID bit, so every segment created later takes the
group from the directory (:mod:`edgeguard.audit.ownership`).

Nothing here reads ``/proc/sys`` (the unit mounts ``/proc`` with ``subset=pid``): the
highest capability number is found with ``PR_CAPBSET_READ``, which fails past it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Iterable

__all__ = ["KEEP", "capability_sets", "drop_capabilities", "last_cap", "set_no_new_privs"]

CAP_NET_ADMIN = 12
CAP_NET_RAW = 13
CAP_SYS_ADMIN = 21
KEEP = frozenset({CAP_NET_ADMIN, CAP_NET_RAW, CAP_SYS_ADMIN})

_PR_CAPBSET_READ = 23
_PR_CAPBSET_DROP = 24
_PR_SET_NO_NEW_PRIVS = 38
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_CLEAR_ALL = 4
_CAP_VERSION_3 = 0x20080522

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def last_cap() -> int:
    """The kernel's highest capability number (``/proc/sys/kernel/cap_last_cap``)."""
    cap = 0
    while _libc.prctl(_PR_CAPBSET_READ, cap + 1, 0, 0, 0) >= 0:  # EINVAL past the last
        cap += 1
    return cap


def set_no_new_privs() -> None:
    _check(_libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "PR_SET_NO_NEW_PRIVS")


def drop_capabilities(keep: Iterable[int] = KEEP) -> None:
    """Keep only ``keep`` in the effective, permitted and bounding sets."""
    kept = frozenset(keep)
    _check(_libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "ambient clear")
    for cap in range(last_cap() + 1):
        if cap not in kept:
            _check(_libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0), f"drop capability {cap}")
    mask = sum(1 << cap for cap in kept)
    header = _Header(_CAP_VERSION_3, 0)
    data = (_Data * 2)()
    for index in range(2):
        word = (mask >> (32 * index)) & 0xFFFFFFFF
        data[index].effective = word
        data[index].permitted = word
        data[index].inheritable = 0
    _check(_libc.capset(ctypes.byref(header), data), "capset")


def capability_sets(pid: int | str = "self") -> dict[str, int]:
    """CapEff/CapPrm/CapBnd/CapAmb and NoNewPrivs of a process, from /proc."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("CapEff", "CapPrm", "CapBnd", "CapAmb", "CapInh"):
                out[key] = int(value.strip(), 16)
            elif key == "NoNewPrivs":
                out[key] = int(value.strip())
    return out
