"""Forged rtnetlink datagrams, each with what the watcher must make of it.

:func:`forged` is a seeded, bounded corpus in eleven classes (the same for the same
seed). Every datagram carries its expected outcome, worked out from how it was built,
not by running the decoder: ``malformed`` (the watcher counts one error and drops it),
or the number of notifications it holds (``events``; 0 for a well-framed message of a
type the watcher has no use for). Sent by anyone but the kernel, every one of them is
``foreign`` instead and never decoded.

:func:`send` sends datagrams from a netlink socket of its own: by unicast to a port id
(the kernel refuses that for a connected socket) or by multicast to rtnetlink groups
(needs CAP_NET_ADMIN in the namespace).

:func:`netlink_ports` finds a process's NETLINK_ROUTE sockets and their port ids from
``/proc/net/netlink`` and the process's open files, as an attacker on the host would.

:class:`ScriptedKernel` stands in for the kernel in unit tests: it is the watcher's
``opener``, answers link dumps from its table, and delivers what a test pushes (a
datagram with its sender, or an OSError such as ENOBUFS) to the open event socket.
"""

from __future__ import annotations

import asyncio
import errno
import os
import random
import socket
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CLASSES", "Forged", "ScriptedKernel", "ScriptedSocket", "attr", "done", "forged",
           "link_message", "message", "netlink_ports", "send"]

NLMSGHDR = struct.Struct("=IHHII")
IFINFOMSG = struct.Struct("=BxHiII")
NLMSG_NOOP, NLMSG_ERROR, NLMSG_DONE, NLMSG_OVERRUN = 1, 2, 3, 4
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_DELADDR, RTM_NEWROUTE, RTM_DELROUTE = 20, 21, 24, 25
RTM_NEWNEIGH = 28
#: types the watcher decodes, and the size of each one's fixed header
EVENT_SIZES = {RTM_NEWLINK: 16, RTM_DELLINK: 16, RTM_NEWADDR: 8, RTM_DELADDR: 8,
               RTM_NEWROUTE: 12, RTM_DELROUTE: 12}
KNOWN = {*EVENT_SIZES, NLMSG_ERROR, NLMSG_DONE}
IFLA_IFNAME, IFLA_MTU, IFLA_IFALIAS = 3, 4, 20
IFF_UP, IFF_LOWER_UP = 0x1, 0x10000
NLM_F_MULTI = 0x2
RTMGRP_LINK = 0x1

@dataclass(frozen=True, slots=True)
class Forged:
    kind: str  # one of CLASSES
    data: bytes
    malformed: bool = False
    events: int = 0  # notifications in it, when it is not malformed


def attr(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * ((4 - length % 4) % 4)


def message(kind: int, body: bytes, *, seq: int = 0, pid: int = 0, flags: int = 0,
            length: int | None = None) -> bytes:
    """One netlink message; ``length`` overrides the header's own count."""
    size = NLMSGHDR.size + len(body) if length is None else length
    return NLMSGHDR.pack(size, kind, flags, seq, pid) + body


def done(seq: int) -> bytes:
    return message(NLMSG_DONE, struct.pack("=i", 0), seq=seq, flags=NLM_F_MULTI)


def link_message(name: str | bytes | None, *, up: bool = True, kind: int = RTM_NEWLINK,
                 index: int = 7, extra: Sequence[bytes] = (), seq: int = 0,
                 flags: int = 0) -> bytes:
    """An RTM_NEWLINK/DELLINK as the kernel lays it out."""
    attrs = list(extra)
    if name is not None:
        raw = name.encode() if isinstance(name, str) else name
        attrs.insert(0, attr(IFLA_IFNAME, raw + b"\0"))
    body = IFINFOMSG.pack(0, 1, index, IFF_UP | IFF_LOWER_UP if up else 0, 0xFFFFFFFF)
    return message(kind, body + b"".join(attrs), seq=seq, flags=flags)


def _valid(rnd: random.Random) -> bytes:
    name = f"eg{rnd.randrange(1000)}"
    return link_message(name, up=rnd.random() < 0.5,
                        extra=[attr(IFLA_MTU, struct.pack("=I", 1500)),
                               attr(IFLA_IFALIAS, rnd.randbytes(rnd.randrange(1, 40)))])


def _random_attrs(rnd: random.Random, count: int) -> list[bytes]:
    """Well-framed attributes of random types (never IFLA_IFNAME) and random payloads."""
    out = []
    for _ in range(count):
        kind = rnd.randrange(0x10000)
        if kind & 0x3FFF == IFLA_IFNAME:
            kind ^= 0x1
        out.append(attr(kind, rnd.randbytes(rnd.randrange(0, 200))))
    return out


def _short(rnd: random.Random) -> Forged:
    """Shorter than a netlink header (not empty: the kernel refuses to send that, ENODATA)."""
    return Forged("short", rnd.randbytes(rnd.randrange(1, NLMSGHDR.size)), malformed=True)


def _truncated(rnd: random.Random) -> Forged:
    """A valid link message cut short, its header left as it was."""
    full = _valid(rnd)
    return Forged("truncated", full[:rnd.randrange(NLMSGHDR.size, len(full))], malformed=True)


def _oversized_len(rnd: random.Random) -> Forged:
    """nlmsg_len beyond the datagram."""
    full = _valid(rnd)
    length = rnd.choice([len(full) + 1 + rnd.randrange(4096), 0xFFFFFFFF, 0x80000000])
    return Forged("oversized-len", struct.pack("=I", length) + full[4:], malformed=True)


def _undersized_len(rnd: random.Random) -> Forged:
    """nlmsg_len shorter than the header itself (0 would loop a careless parser)."""
    full = _valid(rnd)
    return Forged("undersized-len", struct.pack("=I", rnd.randrange(0, NLMSGHDR.size))
                  + full[4:], malformed=True)


def _bad_attr_len(rnd: random.Random) -> Forged:
    """An attribute below 4 bytes or running past the message's end."""
    good = attr(IFLA_MTU, struct.pack("=I", 1500))
    bad = struct.pack("=HH", rnd.choice([0, 1, 2, 3, 200, 0xFFFF]), IFLA_MTU) + \
        rnd.randbytes(rnd.randrange(0, 8))
    body = IFINFOMSG.pack(0, 1, 7, 0, 0) + attr(IFLA_IFNAME, b"eg0\0") + good + bad
    return Forged("bad-attr-len", message(rnd.choice([RTM_NEWLINK, RTM_DELLINK]), body),
                  malformed=True)


def _wrong_type(rnd: random.Random) -> Forged:
    """Well framed, of a type the watcher has no use for; one in six an NLMSG_ERROR (what
    ended pyroute2's watch), one in six an NLMSG_DONE."""
    choice = rnd.randrange(6)
    if choice == 0:
        error = struct.pack("=i", -rnd.randrange(1, 134)) + NLMSGHDR.pack(32, RTM_GETLINK, 0,
                                                                           0, 0)
        return Forged("wrong-type", message(NLMSG_ERROR, error))
    if choice == 1:
        return Forged("wrong-type", message(NLMSG_DONE, struct.pack("=i", 0)))
    other = rnd.choice([NLMSG_NOOP, NLMSG_OVERRUN, RTM_GETLINK, RTM_NEWNEIGH,
                        rnd.randrange(26, 0x10000)])
    while other in KNOWN:
        other = rnd.randrange(26, 0x10000)
    return Forged("wrong-type", message(other, rnd.randbytes(rnd.randrange(0, 64))))


def _bad_ifname(rnd: random.Random) -> Forged:
    """An interface name that is empty, or IFNAMSIZ bytes and more without its NUL."""
    name = rnd.choice([b"", b"\0" * rnd.randrange(1, 8),
                       bytes(rnd.randrange(1, 256) for _ in range(rnd.randrange(16, 300)))])
    body = IFINFOMSG.pack(0, 1, 7, IFF_UP | IFF_LOWER_UP, 0) + attr(IFLA_IFNAME, name)
    return Forged("bad-ifname", message(RTM_NEWLINK, body), malformed=True)


def _short_family_header(rnd: random.Random) -> Forged:
    """ifinfomsg, ifaddrmsg or rtmsg cut short."""
    mtype = rnd.choice(sorted(EVENT_SIZES))
    return Forged("short-family-header",
                  message(mtype, rnd.randbytes(rnd.randrange(EVENT_SIZES[mtype]))),
                  malformed=True)


def _stray_tail(rnd: random.Random) -> Forged:
    """A valid message, then bytes that are no message."""
    return Forged("stray-tail", _valid(rnd) + rnd.randbytes(rnd.randrange(1, NLMSGHDR.size)),
                  malformed=True)


def _garbage_attrs(rnd: random.Random) -> Forged:
    """Valid framing and a real name among nonsense attributes: it decodes."""
    extra = _random_attrs(rnd, rnd.randrange(1, 12))
    return Forged("garbage-attrs", link_message(f"eg{rnd.randrange(1000)}", extra=extra),
                  events=1)


def _forged_state(rnd: random.Random) -> Forged:
    """Believable notifications: the VPN link up or gone, an address, a route."""
    parts = [link_message("wg0", up=True), link_message("wg0", up=False, kind=RTM_DELLINK),
             message(RTM_NEWADDR, struct.pack("=BBBBI", 2, 24, 0, 0, 7)),
             message(RTM_DELROUTE, bytes(12))]
    count = rnd.randrange(1, len(parts) + 1)
    return Forged("forged-state", b"".join(rnd.sample(parts, count)), events=count)


#: class name -> builder, in the order :func:`forged` takes them
CLASSES: dict[str, Callable[[random.Random], Forged]] = {
    "short": _short, "truncated": _truncated, "oversized-len": _oversized_len,
    "undersized-len": _undersized_len, "bad-attr-len": _bad_attr_len,
    "wrong-type": _wrong_type, "bad-ifname": _bad_ifname,
    "short-family-header": _short_family_header, "stray-tail": _stray_tail,
    "garbage-attrs": _garbage_attrs, "forged-state": _forged_state,
}


def forged(seed: int, count: int) -> Iterator[Forged]:
    """``count`` forged datagrams, the classes in turn."""
    rnd = random.Random(seed)
    builders = list(CLASSES.values())
    for i in range(count):
        yield builders[i % len(builders)](rnd)


def send(datagrams: Sequence[bytes], *, port: int = 0, groups: int = 0) -> int:
    """Send each datagram from a NETLINK_ROUTE socket of our own to ``port`` (unicast)
    or ``groups`` (multicast); OSError as the kernel raises it. Returns how many."""
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                       socket.NETLINK_ROUTE) as sock:
        sock.bind((0, 0))
        for data in datagrams:
            sock.sendto(data, (port, groups))
    return len(datagrams)


def netlink_ports(pid: int, protocol: int = socket.NETLINK_ROUTE) -> dict[int, int]:
    """Port id -> multicast groups of ``pid``'s netlink sockets of ``protocol``
    (``/proc/<pid>/net/netlink`` is the table of the process's network namespace)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    ports = {}
    for line in Path(f"/proc/{pid}/net/netlink").read_text().splitlines()[1:]:
        # sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode
        cols = line.split()
        if int(cols[1]) == protocol and int(cols[9]) in inodes:
            ports[int(cols[2])] = int(cols[3], 16)
    return ports


class ScriptedSocket:
    """One socket the watcher opened on a :class:`ScriptedKernel`."""

    def __init__(self, kernel: ScriptedKernel, groups: int) -> None:
        self.kernel = kernel
        self.groups = groups
        self.closed = False
        self.inbox: asyncio.Queue[tuple[bytes, int] | OSError] = asyncio.Queue()

    async def send(self, data: bytes) -> None:
        _length, kind, _flags, seq, _pid = NLMSGHDR.unpack_from(data)
        assert kind == RTM_GETLINK, kind
        self.kernel.dumps += 1
        for name, up in self.kernel.links.items():
            self.inbox.put_nowait((link_message(name, up=up, seq=seq, flags=NLM_F_MULTI), 0))
        for data, sender in self.kernel.dump_extra:
            self.inbox.put_nowait((data, sender))
        self.inbox.put_nowait((done(seq), 0))

    async def receive(self) -> tuple[bytes, int]:
        if self.closed:
            raise OSError(errno.EBADF, "closed")
        item = await self.inbox.get()
        self.kernel.delivered += 1
        if isinstance(item, OSError):
            raise item
        return item

    def close(self) -> None:
        self.closed = True


class ScriptedKernel:
    """The watcher's ``opener``: links to dump, events and socket errors to deliver."""

    def __init__(self, links: dict[str, bool] | None = None) -> None:
        self.links = dict(links or {})
        self.sockets: list[ScriptedSocket] = []
        self.dump_extra: list[tuple[bytes, int]] = []  # delivered inside every dump
        self.fail_opens = 0  # the next opens raise EPERM
        self.dumps = 0
        self.delivered = 0
        self.pushed = 0

    def __call__(self, groups: int) -> ScriptedSocket:
        if self.fail_opens:
            self.fail_opens -= 1
            raise PermissionError(errno.EPERM, "Operation not permitted")
        sock = ScriptedSocket(self, groups)
        self.sockets.append(sock)
        return sock

    @property
    def events(self) -> ScriptedSocket:
        """The open event socket (the one on multicast groups)."""
        return next(s for s in reversed(self.sockets) if s.groups and not s.closed)

    def push(self, item: bytes | OSError, sender: int = 0) -> None:
        self.pushed += 1
        self.events.inbox.put_nowait(item if isinstance(item, OSError) else (item, sender))
