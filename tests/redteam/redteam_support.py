"""Helpers for the red-team suite: throwaway users, running as them, hostile input.

* :func:`throwaway_user` creates a system user (and optionally a group) with
  ``useradd``/``groupadd`` and removes both again, also when a test fails.
* :func:`as_user` runs a command as that user through ``setpriv`` with exactly the
  supplementary groups given (``--clear-groups`` when none): no capabilities, no root.
* :func:`udev_message` builds a libudev netlink message (what systemd-udevd broadcasts
  on the udev group after its rules ran) so a test can replay uevents, well-formed or
  not, into the live daemon's monitor.
* :func:`malformed_frames` is a seeded, bounded fuzz corpus of Ethernet frames: valid
  probes mutated (truncated, lying lengths, bad versions, flipped bits) so they pass
  the capture filter yet cannot all be decoded.
"""

from __future__ import annotations

import contextlib
import random
import socket
import struct
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "User",
    "as_user",
    "inject_frames",
    "malformed_frames",
    "murmur2",
    "send_uevent",
    "throwaway_group",
    "throwaway_user",
    "udev_message",
]

USERADD, USERDEL = "/usr/sbin/useradd", "/usr/sbin/userdel"
GROUPADD, GROUPDEL = "/usr/sbin/groupadd", "/usr/sbin/groupdel"
SETPRIV = "/usr/bin/setpriv"
GETENT = "/usr/bin/getent"


@dataclass(frozen=True, slots=True)
class User:
    name: str
    uid: int
    gid: int


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=30, check=True)


def _gid_of(group: str) -> int:
    return int(_run(GETENT, "group", group).stdout.split(":")[2])


@contextlib.contextmanager
def throwaway_group(name: str) -> Iterator[int]:
    _run(GROUPADD, "--system", name)
    try:
        yield _gid_of(name)
    finally:
        subprocess.run([GROUPDEL, name], capture_output=True, timeout=30, check=False)


@contextlib.contextmanager
def throwaway_user(name: str) -> Iterator[User]:
    """A system user with its own primary group, no home, no login shell."""
    _run(USERADD, "--system", "--user-group", "--no-create-home", "--shell",
         "/usr/sbin/nologin", name)
    try:
        fields = _run(GETENT, "passwd", name).stdout.split(":")
        yield User(name, int(fields[2]), int(fields[3]))
    finally:
        subprocess.run([USERDEL, name], capture_output=True, timeout=30, check=False)
        subprocess.run([GROUPDEL, name], capture_output=True, timeout=30, check=False)


def as_user(user: User, argv: Sequence[str], *, groups: Sequence[int] = (),
            env: Mapping[str, str] | None = None, timeout: float = 60,
            ) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` as ``user`` with only ``groups`` as supplementary groups."""
    group_opt = [f"--groups={','.join(map(str, groups))}"] if groups else ["--clear-groups"]
    base = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/", "LANG": "C.UTF-8"}
    return subprocess.run(
        [SETPRIV, f"--reuid={user.uid}", f"--regid={user.gid}", *group_opt,
         "--inh-caps=-all", "--bounding-set=-all", "--", *argv],
        capture_output=True, text=True, timeout=timeout, check=False, cwd="/",
        env={**base, **(env or {})})


# -- uevents -----------------------------------------------------------------------------
UDEV_MONITOR_MAGIC = 0xFEEDCAFE
NETLINK_KOBJECT_UEVENT = 15
UDEV_GROUP = 2  # MONITOR_GROUP_UDEV: what udevd broadcasts after running its rules
_HEADER = struct.Struct("=8sIIIIIIII")  # struct monitor_netlink_header (libudev/sd-device)


def murmur2(data: bytes, seed: int = 0) -> int:
    """MurmurHash2, 32 bit: systemd's ``string_hash32`` for the subsystem filter."""
    m, r = 0x5BD1E995, 24
    h = (seed ^ len(data)) & 0xFFFFFFFF
    full = len(data) - len(data) % 4
    for i in range(0, full, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    tail = data[full:]
    if len(tail) >= 3:
        h ^= tail[2] << 16
    if len(tail) >= 2:
        h ^= tail[1] << 8
    if tail:
        h ^= tail[0]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h


def udev_message(props: Mapping[str, str], subsystem: str = "block") -> bytes:
    """A libudev monitor message carrying ``props`` (KEY=VALUE, NUL separated)."""
    body = b"".join(f"{k}={v}".encode(errors="surrogateescape") + b"\0"
                    for k, v in props.items())
    header = _HEADER.pack(b"libudev\0", socket.htonl(UDEV_MONITOR_MAGIC), _HEADER.size,
                          _HEADER.size, len(body), socket.htonl(murmur2(subsystem.encode())),
                          0, 0, 0)
    return header + body


def send_uevent(messages: Sequence[bytes]) -> int:
    """Broadcast messages on the udev netlink group of this network namespace (needs
    CAP_NET_ADMIN); returns how many were sent."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                         NETLINK_KOBJECT_UEVENT)
    try:
        sock.bind((0, 0))
        for message in messages:
            sock.sendto(message, (0, UDEV_GROUP))
    finally:
        sock.close()
    return len(messages)


# -- frames ------------------------------------------------------------------------------
def _csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def _syn(src_ip: str, dst_ip: str, sport: int, dport: int) -> bytes:
    tcp = struct.pack("!HHIIBBHHH", sport, dport, 1000, 0, 5 << 4, 0x02, 1024, 0, 0)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0, 64, 6, 0,
                     socket.inet_aton(src_ip), socket.inet_aton(dst_ip))
    ip = ip[:10] + struct.pack("!H", _csum(ip)) + ip[12:]
    return ip + tcp


def malformed_frames(seed: int, count: int, src_mac: str, dst_mac: str, src_ip: str,
                     dst_ip: str) -> Iterator[bytes]:
    """``count`` hostile frames, the same for the same seed.

    Each kind is aimed past the capture filter (which passes ARP, ICMP, TCP SYN...) at
    a decoder check: ARP with wrong sizes or cut short, IPv4 with an IHL below 5, a
    total length shorter than the header or a wrong version, a TCP header cut off or
    with a data offset beyond the frame, IPv6 with a wrong version or a payload cut
    short, a VLAN tag with nothing after it, and random bit flips of a valid SYN.
    """
    rnd = random.Random(seed)
    eth = _mac(dst_mac) + _mac(src_mac)
    for i in range(count):
        kind = i % 9
        syn = _syn(src_ip, dst_ip, 1024 + rnd.randrange(60000), 1 + rnd.randrange(1024))
        if kind == 0:  # ARP with impossible hardware/protocol sizes
            arp = struct.pack("!HHBBH", rnd.choice([1, 6, 0xFFFF]), 0x0800,
                              rnd.choice([0, 7, 255]), rnd.choice([0, 16]), 1) + \
                rnd.randbytes(20)
            frame = eth + b"\x08\x06" + arp
        elif kind == 1:  # ARP cut short
            frame = eth + b"\x08\x06" + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + \
                rnd.randbytes(rnd.randrange(0, 19))
        elif kind == 2:  # IPv4 header length below 20 bytes
            frame = eth + b"\x08\x00" + bytes([0x40 | rnd.randrange(0, 5)]) + syn[1:]
        elif kind == 3:  # IPv4 total length shorter than its header
            frame = eth + b"\x08\x00" + syn[:2] + struct.pack("!H", rnd.randrange(0, 20)) + \
                syn[4:]
        elif kind == 4:  # TCP header cut off after a few bytes
            frame = eth + b"\x08\x00" + syn[:20 + rnd.randrange(1, 13)]
        elif kind == 5:  # TCP data offset pointing past the segment
            tcp = bytearray(syn[20:])
            tcp[12] = rnd.choice([0x00, 0x10, 0x40, 0xF0])
            frame = eth + b"\x08\x00" + syn[:20] + bytes(tcp)
        elif kind == 6:  # IPv6 with a wrong version or a payload cut short
            v6 = bytearray(struct.pack("!IHBB16s16s", 0x60000000, 40, 6, 64,
                                       rnd.randbytes(16), rnd.randbytes(16)))
            if rnd.random() < 0.5:
                v6[0] = 0x40 | rnd.randrange(16)
            frame = eth + b"\x86\xdd" + bytes(v6[:rnd.choice([10, 39, 40])]) + \
                rnd.randbytes(rnd.randrange(0, 8))
        elif kind == 7:  # a VLAN tag and nothing after it
            frame = eth + b"\x81\x00" + rnd.randbytes(rnd.randrange(0, 2))
        else:  # a valid SYN with random bits flipped
            data = bytearray(eth + b"\x08\x00" + syn)
            for _ in range(rnd.randrange(1, 6)):
                pos = rnd.randrange(14, len(data))
                data[pos] ^= 1 << rnd.randrange(8)
            frame = bytes(data[:rnd.randrange(15, len(data) + 1)])
        yield frame


def inject_frames(interface: str, frames: Sequence[bytes]) -> int:
    """Send raw frames out of ``interface`` (in the caller's namespace)."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW | socket.SOCK_CLOEXEC)
    try:
        sock.bind((interface, 0))
        for frame in frames:
            sock.send(frame)
    finally:
        sock.close()
    return len(frames)
