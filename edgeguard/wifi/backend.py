"""Where nl80211 messages come from: the kernel (through pyroute2) or a recording.

Both backends hand raw datagrams to the same decoder (:mod:`edgeguard.wifi.nl80211`)
and serve the same three requests: list the station interfaces, dump an interface's
scan table, disconnect an interface. The replay backend reads a JSON-lines recording::

    {"type": "header", "family_id": 30, "interfaces": {"3": "wlan0"}}
    {"type": "dump", "request": "get_interface", "data": ["<hex datagram>", ...]}
    {"type": "dump", "request": "get_scan", "ifindex": 3, "data": ["<hex>", ...]}
    {"type": "event", "data": "<hex datagram>"}

A dump answers the requests made while the events before it have been delivered (the
order the live watcher made them in); when none is left, the last one stands (the scan
table did not change). Requests the watcher sends (disconnects) are kept in ``sent``.
``LiveBackend(record=path)`` writes the same format from a real radio.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TextIO

from pyroute2.netlink.nl80211 import AsyncNL80211

from edgeguard.wifi import nl80211
from edgeguard.wifi.nl80211 import BssInfo, MalformedNetlink, NetlinkError, Nl80211Message

__all__ = ["BackendError", "LiveBackend", "Nl80211Backend", "ReplayBackend"]

EventHandler = Callable[[Nl80211Message], None]
REQUEST_TIMEOUT = 5.0  # seconds to wait for a dump or an acknowledgement
NETLINK_GENERIC = 16


class BackendError(Exception):
    """A request the kernel refused or did not answer."""


class Nl80211Backend(Protocol):
    name: str
    malformed: int
    foreign: int  # datagrams not sent by the kernel, dropped unread
    #: interface names known to the backend itself (a recording's); empty when the
    #: kernel is asked (``if_indextoname``)
    interface_names: dict[int, str]

    async def open(self, on_event: EventHandler) -> None: ...

    async def interfaces(self) -> list[Nl80211Message]: ...

    async def scan(self, ifindex: int) -> list[BssInfo]: ...

    def disconnect(self, ifindex: int) -> None:
        """Leave the BSS now (synchronous, so the action's audit record tells the truth)."""

    def close(self) -> None: ...


def _interfaces(messages: list[Nl80211Message]) -> list[Nl80211Message]:
    return [m for m in messages if m.cmd == nl80211.CMD_NEW_INTERFACE
            and m.ifindex is not None and m.iftype == nl80211.IFTYPE_STATION]


def _scan_entries(messages: list[Nl80211Message]) -> list[BssInfo]:
    return [m.bss for m in messages if m.bss is not None]


@dataclasses.dataclass(slots=True)
class _Pending:
    """A request waiting for its answer: decoded messages and the raw datagrams."""

    done: asyncio.Future[None]
    messages: list[Nl80211Message] = dataclasses.field(default_factory=list)
    raw: list[bytes] = dataclasses.field(default_factory=list)


class LiveBackend:
    """The kernel's nl80211 through pyroute2: family lookup, groups, raw datagrams."""

    name = "nl80211"

    def __init__(self, record: Path | None = None) -> None:
        self.interface_names: dict[int, str] = {}
        self.malformed = 0
        self.foreign = 0
        self.family_id = 0
        self._sock: Any = None
        self._seq = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        self._on_event: EventHandler | None = None
        self._record: TextIO | None = record.open("a") if record is not None else None

    async def open(self, on_event: EventHandler) -> None:
        backend = self

        class RawNL80211(AsyncNL80211):  # type: ignore[misc]
            """pyroute2's socket, but datagrams come to us undecoded once bound."""

            raw = False

            def enqueue(self, data: bytes, addr: Any) -> Any:
                if not self.raw:
                    return super().enqueue(data, addr)
                backend.datagram(data, sender_of(addr))
                return None

        sock = RawNL80211()
        await sock.bind()
        sock.add_membership("mlme")
        sock.add_membership("scan")
        self.family_id = int(sock.prid)
        self._on_event = on_event
        sock.raw = True
        self._sock = sock
        self._write({"type": "header", "family_id": self.family_id})

    def datagram(self, data: bytes, sender: int = 0) -> None:
        """One datagram as received; ``sender`` is its netlink port id (0: the kernel).
        Another process (root, or CAP_NET_ADMIN in our namespace) can send to the
        multicast groups we joined; what it sends is counted and never decoded."""
        if sender != 0:
            self.foreign += 1
            return
        try:
            items = list(nl80211.decode(data, self.family_id))
        except MalformedNetlink:
            self.malformed += 1
            return
        if items and all(item.seq == 0 for item in items):
            self._write({"type": "event", "data": data.hex()})
        for item in items:
            if isinstance(item, Nl80211Message) and item.seq == 0:
                if self._on_event is not None:
                    self._on_event(item)
                continue
            pending = self._pending.get(item.seq)
            if pending is None:
                continue
            if not pending.raw or pending.raw[-1] is not data:
                pending.raw.append(data)
            if isinstance(item, Nl80211Message):
                pending.messages.append(item)
            elif pending.done.done():
                continue
            elif isinstance(item, NetlinkError) and item.code < 0:
                pending.done.set_exception(BackendError(f"nl80211 error {item.code}"))
            else:
                pending.done.set_result(None)

    async def _request(self, build: Callable[[int], bytes],
                       record: dict[str, Any]) -> list[Nl80211Message]:
        """Send a dump request and collect its answer; record the raw datagrams."""
        if self._sock is None:
            raise BackendError("nl80211 socket is not open")
        seq = next(self._seq)
        pending = _Pending(asyncio.get_running_loop().create_future())
        self._pending[seq] = pending
        try:
            self._sock.sendto(build(seq), (0, 0))
            await asyncio.wait_for(pending.done, REQUEST_TIMEOUT)
        except TimeoutError:
            raise BackendError("nl80211 did not answer") from None
        finally:
            del self._pending[seq]
        self._write({"type": "dump", **record, "data": [d.hex() for d in pending.raw]})
        return pending.messages

    async def interfaces(self) -> list[Nl80211Message]:
        found = await self._request(lambda s: nl80211.get_interface_request(self.family_id, s),
                                    {"request": "get_interface"})
        return _interfaces(found)

    async def scan(self, ifindex: int) -> list[BssInfo]:
        found = await self._request(
            lambda s: nl80211.get_scan_request(self.family_id, ifindex, s),
            {"request": "get_scan", "ifindex": ifindex})
        return _scan_entries(found)

    def disconnect(self, ifindex: int) -> None:
        """NL80211_CMD_DISCONNECT on a plain netlink socket, waiting for the kernel's ack."""
        if not self.family_id:
            raise BackendError("nl80211 family is not resolved")
        request = nl80211.disconnect_request(self.family_id, ifindex, next(self._seq))
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                           NETLINK_GENERIC) as sock:
            sock.settimeout(REQUEST_TIMEOUT)
            sock.bind((0, 0))
            try:
                sock.send(request)
                reply = sock.recv(65536)
            except OSError as exc:
                raise BackendError(f"nl80211 disconnect: {exc}") from None
        for item in nl80211.decode(reply, self.family_id):
            if isinstance(item, NetlinkError) and item.code < 0:
                raise BackendError(f"nl80211 disconnect: {os.strerror(-item.code)}")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._record is not None:
            self._record.close()
            self._record = None

    def _write(self, entry: dict[str, Any]) -> None:
        if self._record is not None:
            self._record.write(json.dumps(entry) + "\n")
            self._record.flush()


def sender_of(addr: object) -> int:
    """The port id in a netlink source address ``(nl_pid, nl_groups)``; 0 (the kernel)
    when the address is not one."""
    if isinstance(addr, tuple) and addr and isinstance(addr[0], int):
        return addr[0]
    return 0


class ReplayBackend:
    """Recorded nl80211 traffic, fed through the same decoder as the kernel's."""

    name = "replay"

    def __init__(self, path: Path, echo_disconnect: bool = True) -> None:
        self.path = path
        self.malformed = 0
        self.foreign = 0  # a recording holds only what the kernel sent
        self.sent: list[Nl80211Message] = []
        self.echo_disconnect = echo_disconnect
        self.family_id = 0
        self.interface_names: dict[int, str] = {}
        self._entries: list[dict[str, Any]] = []
        self._position = 0  # index of the next entry to deliver
        self._used: set[int] = set()
        self._last: dict[tuple[str, int], int] = {}
        self._on_event: EventHandler | None = None
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            entry = json.loads(line)
            if entry.get("type") == "header":
                self.family_id = int(entry["family_id"])
                self.interface_names = {int(k): v for k, v in entry.get("interfaces", {}).items()}
            elif entry.get("type") in ("event", "dump"):
                self._entries.append(entry)
            else:
                raise ValueError(f"{path}:{number}: unknown entry type {entry.get('type')!r}")

    async def open(self, on_event: EventHandler) -> None:
        self._on_event = on_event

    def _decode(self, hexdata: str) -> list[Nl80211Message]:
        try:
            return [m for m in nl80211.decode(bytes.fromhex(hexdata), self.family_id)
                    if isinstance(m, Nl80211Message)]
        except (MalformedNetlink, ValueError):
            self.malformed += 1
            return []

    def _dump(self, request: str, ifindex: int = 0) -> list[Nl80211Message]:
        key = (request, ifindex)
        for index in range(self._position, len(self._entries)):
            entry = self._entries[index]
            if entry["type"] == "event":
                break
            if index not in self._used and entry.get("request") == request \
                    and int(entry.get("ifindex", 0)) == ifindex:
                self._used.add(index)
                self._last[key] = index
                break
        last = self._last.get(key)
        if last is None:
            return []
        out: list[Nl80211Message] = []
        for datagram in self._entries[last]["data"]:
            out.extend(self._decode(datagram))
        return out

    async def interfaces(self) -> list[Nl80211Message]:
        return _interfaces(self._dump("get_interface"))

    async def scan(self, ifindex: int) -> list[BssInfo]:
        return _scan_entries(self._dump("get_scan", ifindex))

    def disconnect(self, ifindex: int) -> None:
        msg = Nl80211Message(nl80211.CMD_DISCONNECT, ifindex=ifindex,
                             reason_code=nl80211.REASON_DEAUTH_LEAVING)
        self.sent.append(msg)
        if self.echo_disconnect and self._on_event is not None:
            self._on_event(msg)

    async def play(self, settle: Callable[[], Any]) -> int:
        """Deliver every recorded event in order; ``await settle()`` after each one."""
        delivered = 0
        while self._position < len(self._entries):
            entry = self._entries[self._position]
            self._position += 1
            if entry["type"] != "event":
                continue
            for message in self._decode(entry["data"]):
                if self._on_event is not None:
                    self._on_event(message)
                    delivered += 1
            await settle()
        return delivered

    def close(self) -> None:
        self._on_event = None
