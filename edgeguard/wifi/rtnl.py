"""Link and route changes from rtnetlink, for the kill switch and status.

The kill switch itself does not need them (its rules name interfaces, so they hold
whether the tunnel exists or not); the watcher uses them to know when the VPN link comes
and goes (an audit record, ``wifi status``) and to re-check that the table is still in
place after every change to the network.

The socket and the decoder are our own, as for nl80211 (:mod:`edgeguard.wifi.nl80211`,
whose framing checks this module shares). pyroute2's socket closed itself for good on a
datagram shorter than 12 bytes and ended the watch on a forged ``NLMSG_ERROR``, so
anything that could send to the socket blinded the watcher silently. Who can send
(Linux, checked by ``tests/redteam/test_redteam_netlink.py``): only a process with
CAP_NET_ADMIN over our network namespace; anyone else gets EPERM, in a user namespace
too. For such a process:

* the socket is connected to the kernel (port 0), so the kernel refuses unicast to our
  port id from any other socket (ECONNREFUSED);
* multicast to the rtnetlink groups still reaches every listener, and the kernel stamps
  the sender's port id, never 0, on it: every datagram not from port 0 is counted
  (``foreign``) and dropped unread;
* from the kernel itself, a datagram that breaks the framing, a header cut short or an
  attribute the kernel would not send is counted (``errors``) and dropped, never raised;
* a socket error (ENOBUFS: the kernel dropped notifications because we fell behind)
  closes the socket; it is reopened with back-off, each attempt reported through
  ``on_restart``, and the links are dumped again (``on_sync``) rather than left to the
  periodic check.

Layouts (``linux/netlink.h``, ``linux/rtnetlink.h``, ``linux/if_addr.h``)::

    nlmsghdr   u32 len, u16 type, u16 flags, u32 seq, u32 pid                  (16 bytes)
    ifinfomsg  u8 family, u8 pad, u16 type, i32 index, u32 flags, u32 change    (16 bytes)
    ifaddrmsg  u8 family, u8 prefixlen, u8 flags, u8 scope, u32 index           (8 bytes)
    rtmsg      u8 family, dst_len, src_len, tos, table, protocol, scope, type,
               u32 flags                                                        (12 bytes)
    nlattr     u16 len, u16 type, payload, pad to 4
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import os
import socket
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from edgeguard.wifi.nl80211 import (
    NLM_F_DUMP,
    NLM_F_REQUEST,
    NLMSG_DONE,
    NLMSG_ERROR,
    Done,
    MalformedNetlink,
    NetlinkError,
    iter_attrs,
    messages,
)

__all__ = ["Backoff", "KernelSocket", "LinkChange", "MalformedNetlink", "NetlinkSocket",
           "RtnlRestart", "RtnlWatcher", "decode", "link_dump_request"]

RTMGRP_LINK = 0x1
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV4_ROUTE = 0x40
RTMGRP_IPV6_IFADDR = 0x100
RTMGRP_IPV6_ROUTE = 0x400
GROUPS = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR | RTMGRP_IPV4_ROUTE \
    | RTMGRP_IPV6_ROUTE

RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_DELADDR = 20, 21
RTM_NEWROUTE, RTM_DELROUTE = 24, 25
#: message type -> (event name, size of its fixed header)
EVENTS = {RTM_NEWLINK: ("RTM_NEWLINK", 16), RTM_DELLINK: ("RTM_DELLINK", 16),
          RTM_NEWADDR: ("RTM_NEWADDR", 8), RTM_DELADDR: ("RTM_DELADDR", 8),
          RTM_NEWROUTE: ("RTM_NEWROUTE", 12), RTM_DELROUTE: ("RTM_DELROUTE", 12)}
IFLA_IFNAME = 3
IFNAMSIZ = 16  # with the terminating NUL
IFF_UP = 0x1
IFF_LOWER_UP = 0x10000
SO_RCVBUFFORCE = 33  # not in Python's socket module

#: receive buffer asked for (SO_RCVBUFFORCE, we hold CAP_NET_ADMIN): a burst of
#: notifications beyond it is lost (ENOBUFS), which costs a reopen and a dump
RCVBUF = 1 << 20
#: read size: one datagram, dump replies included (the kernel's are at most 32 KiB)
READ_SIZE = 1 << 16
#: seconds to wait for the kernel to finish a link dump
DUMP_TIMEOUT = 5.0

_NLMSGHDR = struct.Struct("=IHHII")
_IFINFOMSG = struct.Struct("=BxHiII")


@dataclass(frozen=True, slots=True)
class LinkChange:
    """One rtnetlink notification, reduced to what the Wi-Fi component uses."""

    event: str  # RTM_NEWLINK, RTM_DELLINK, RTM_NEWROUTE, RTM_NEWADDR, ...
    ifname: str | None = None
    up: bool = False  # administratively up with carrier

    @property
    def removed(self) -> bool:
        return self.event == "RTM_DELLINK"


@dataclass(frozen=True, slots=True)
class Backoff:
    """Seconds before reopening: ``initial``, doubled per failed or early reopen up to
    ``maximum``; back to ``initial`` once a socket has lasted ``healthy`` seconds."""

    initial: float = 0.5
    maximum: float = 60.0
    healthy: float = 60.0


@dataclass(frozen=True, slots=True)
class RtnlRestart:
    """One reopen attempt: why the last socket ended, whether the new one is watching."""

    reason: str
    attempt: int  # the watcher's restart count, this one included
    waited: float  # seconds of back-off before this attempt
    error: str | None = None  # why the reopen failed; None: watching again, links re-read


def _ifname(view: memoryview) -> str:
    raw = bytes(view).split(b"\0", 1)[0]
    if not raw or len(raw) >= IFNAMSIZ:
        raise MalformedNetlink(f"interface name of {len(raw)} bytes")
    return raw.decode("utf-8", "replace")


def _event(kind: int, body: memoryview) -> LinkChange:
    event, size = EVENTS[kind]
    if len(body) < size:
        raise MalformedNetlink(f"{event} of {len(body)} bytes, its header needs {size}")
    attrs = list(iter_attrs(body[size:]))  # the framing is checked for every event
    if kind not in (RTM_NEWLINK, RTM_DELLINK):
        return LinkChange(event)
    _family, _type, _index, flags, _change = _IFINFOMSG.unpack_from(body)
    name = None
    for attr, value in attrs:
        if attr == IFLA_IFNAME:
            name = _ifname(value)
    up = kind == RTM_NEWLINK and bool(flags & IFF_UP) and bool(flags & IFF_LOWER_UP)
    return LinkChange(event, name, up)


def decode(data: bytes) -> Iterator[LinkChange | Done | NetlinkError]:
    """Every message of one datagram; raise :class:`MalformedNetlink` on broken framing.

    Types other than the link, address and route notifications and the dump's DONE and
    ERROR are skipped: the kernel sends nothing else on our groups.
    """
    if len(data) < _NLMSGHDR.size:
        raise MalformedNetlink(f"datagram of {len(data)} bytes")
    for kind, seq, body in messages(data, min_tail=1):
        if kind in EVENTS:
            yield _event(kind, body)
        elif kind == NLMSG_DONE:
            yield Done(seq)
        elif kind == NLMSG_ERROR:
            if len(body) < 4:
                raise MalformedNetlink("NLMSG_ERROR without its error code")
            yield NetlinkError(seq, struct.unpack_from("=i", body)[0])


def link_dump_request(seq: int) -> bytes:
    """RTM_GETLINK with NLM_F_DUMP: every link of the namespace."""
    payload = _IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(payload), RTM_GETLINK,
                          NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + payload


class NetlinkSocket(Protocol):
    """What the watcher needs of a socket; tests give it a scripted one."""

    async def send(self, data: bytes) -> None: ...

    async def receive(self) -> tuple[bytes, int]:
        """One datagram and its sender's port id (0: the kernel)."""
        ...

    def close(self) -> None: ...


class KernelSocket:
    """A non-blocking NETLINK_ROUTE socket on ``groups``, connected to the kernel."""

    def __init__(self, groups: int) -> None:
        sock = socket.socket(socket.AF_NETLINK,
                             socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC,
                             socket.NETLINK_ROUTE)
        try:
            try:
                sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF)
            except PermissionError:  # without CAP_NET_ADMIN: as far as rmem_max allows
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
            sock.bind((0, groups))
            sock.connect((0, 0))  # from now on the kernel refuses unicast from anyone else
        except BaseException:
            sock.close()
            raise
        self.sock = sock

    @property
    def port_id(self) -> int:
        port: int = self.sock.getsockname()[0]
        return port

    async def send(self, data: bytes) -> None:
        await asyncio.get_running_loop().sock_sendall(self.sock, data)

    async def receive(self) -> tuple[bytes, int]:
        data, (sender, _groups) = await asyncio.get_running_loop().sock_recvfrom(
            self.sock, READ_SIZE)
        return data, sender

    def close(self) -> None:
        self.sock.close()


class RtnlWatcher:
    """Link changes to ``on_change``; the full link table to ``on_sync`` at the start and
    after every reopen; each reopen attempt to ``on_restart``.

    Counters: ``events`` (notifications handled), ``errors`` (datagrams from the kernel
    that did not decode, and handler failures), ``foreign`` (datagrams not from the
    kernel, dropped unread), ``restarts`` (reopen attempts).
    """

    def __init__(self, on_change: Callable[[LinkChange], None],
                 on_sync: Callable[[dict[str, bool]], None] | None = None,
                 on_restart: Callable[[RtnlRestart], None] | None = None,
                 backoff: Backoff = Backoff(),
                 opener: Callable[[int], NetlinkSocket] = KernelSocket) -> None:
        self.on_change = on_change
        self.on_sync = on_sync
        self.on_restart = on_restart
        self.backoff = backoff
        self.opener = opener
        self.events = 0
        self.errors = 0
        self.foreign = 0
        self.restarts = 0
        self._sock: NetlinkSocket | None = None
        self._seq = itertools.count(1)

    # -- datagrams ----------------------------------------------------------------------
    def datagram(self, data: bytes, sender: int) -> None:
        """One datagram as received, with the sender's port id (0: the kernel)."""
        if sender != 0:
            self.foreign += 1
            return
        try:
            items = list(decode(data))
        except Exception:  # noqa: BLE001 - MalformedNetlink, or a decoder bug: same outcome
            self.errors += 1
            return
        for item in items:
            if not isinstance(item, LinkChange):
                continue  # DONE or ERROR on the event socket: nothing asked for them
            self.events += 1
            try:
                self.on_change(item)
            except Exception:  # noqa: BLE001 - a failing handler must not end the watch
                self.errors += 1

    async def links(self) -> dict[str, bool]:
        """Every link now: name -> up (with carrier), from a dump on a socket of its own."""
        seq = next(self._seq)
        found: dict[str, bool] = {}
        sock = self.opener(0)
        try:
            await sock.send(link_dump_request(seq))
            async with asyncio.timeout(DUMP_TIMEOUT):
                while True:
                    data, sender = await sock.receive()
                    if sender != 0:
                        self.foreign += 1
                        continue
                    try:
                        items = list(decode(data))
                    except MalformedNetlink:
                        self.errors += 1  # one part of the table lost, not the watch
                        continue
                    for item in items:
                        if isinstance(item, LinkChange) and item.ifname:
                            found[item.ifname] = item.up
                        elif isinstance(item, Done) and item.seq == seq:
                            return found
                        elif isinstance(item, NetlinkError) and item.code < 0:
                            raise OSError(-item.code, f"link dump: {os.strerror(-item.code)}")
        finally:
            sock.close()

    # -- the watch ----------------------------------------------------------------------
    async def _start(self) -> None:
        """Open the event socket first, then dump: no change falls between the two."""
        self.close()
        self._sock = self.opener(GROUPS)
        links = await self.links()
        if self.on_sync is not None:
            try:
                self.on_sync(links)
            except Exception:  # noqa: BLE001 - a failing handler must not end the watch
                self.errors += 1

    async def _read(self) -> OSError:
        """Read until the socket fails; return why."""
        sock = self._sock
        assert sock is not None
        while True:
            try:
                data, sender = await sock.receive()
            except OSError as exc:
                return exc
            self.datagram(data, sender)

    async def run(self) -> None:
        """Watch until cancelled. Failing to start raises (no rtnetlink here); after
        that a socket error reopens the socket with back-off, for as long as it takes."""
        loop = asyncio.get_running_loop()
        try:
            await self._start()
            delay = self.backoff.initial
            while True:
                started = loop.time()
                reason = _why(await self._read())
                self.close()
                if loop.time() - started >= self.backoff.healthy:
                    delay = self.backoff.initial
                while True:
                    await asyncio.sleep(delay)
                    self.restarts += 1
                    waited, delay = delay, min(delay * 2, self.backoff.maximum)
                    try:
                        await self._start()
                    except OSError as failed:  # TimeoutError included
                        self.close()
                        self._restarted(RtnlRestart(reason, self.restarts, waited,
                                                    _why(failed)))
                        continue
                    self._restarted(RtnlRestart(reason, self.restarts, waited))
                    break
        finally:
            self.close()

    def _restarted(self, restart: RtnlRestart) -> None:
        if self.on_restart is not None:
            with contextlib.suppress(Exception):
                self.on_restart(restart)

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno is not None:
        name = errno.errorcode.get(exc.errno, str(exc.errno))
        return f"{name}: {exc.strerror or exc}"
    return f"{type(exc).__name__}: {exc}"
