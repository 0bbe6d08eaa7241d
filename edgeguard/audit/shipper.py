"""Ship the audit log off-host from the segment files, with an on-disk cursor.

A shipper reads records by sequence from the files (:class:`SegmentTail`), not from
in-process hooks, so a crash of edgeguard or an outage of the receiver never loses the
position: the cursor (chain id + sequence + segment) is written atomically, and only for
records the transport reports delivered. After a reconnect it re-sends from
``cursor - resend + 1``: those few records may arrive twice, and each carries its chain
id and sequence so the receiver (or ``audit verify --against``) can tell.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson

from edgeguard.audit.chain import get_path
from edgeguard.audit.follow import SegmentTail
from edgeguard.audit.segments import read_head
from edgeguard.fsutil import atomic_write

__all__ = ["Cursor", "Shipper", "Transport"]


class Transport(Protocol):
    name: str

    @property
    def connected(self) -> bool: ...

    def connect(self) -> None: ...

    def send(self, batch: list[tuple[int, bytes, dict[str, Any]]]) -> None: ...

    def delivered(self) -> bool: ...

    def healthy(self) -> bool: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Cursor:
    chain_id: str | None
    sequence: int  # last record delivered (0: none)

    @classmethod
    def load(cls, path: Path) -> Cursor:
        try:
            doc = orjson.loads(path.read_bytes())
            return cls(doc.get("chain_id"), int(doc["sequence"]))
        except (FileNotFoundError, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return cls(None, 0)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
        atomic_write(path, orjson.dumps({"chain_id": self.chain_id, "sequence": self.sequence}),
                     mode=0o640)


class Shipper:
    """One transport, one thread, one cursor file."""

    def __init__(self, directory: Path, transport: Transport, cursor_path: Path, *,
                 resend: int = 100, batch: int = 500, poll: float = 0.1,
                 reconnect_interval: float = 5.0, cursor_interval: float = 0.5) -> None:
        self.directory = directory
        self.transport = transport
        self.cursor_path = cursor_path
        self.resend = resend
        self.batch = batch
        self.poll = poll
        self.reconnect_interval = reconnect_interval
        self.cursor_interval = cursor_interval
        self.cursor = Cursor.load(cursor_path)
        self.sent = self.resent = self.reconnects = self.errors = 0
        self.last_error = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"ship-{transport.name}",
                                        daemon=True)
        self._sent_upto = self.cursor.sequence

    @property
    def name(self) -> str:
        return self.transport.name

    @property
    def shipped_sequence(self) -> int:
        return self.cursor.sequence

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout=timeout)
        self.transport.close()

    def counters(self) -> dict[str, int]:
        return {"sent": self.sent, "resent": self.resent, "reconnects": self.reconnects,
                "errors": self.errors, "cursor": self.cursor.sequence}

    def _chain(self) -> str | None:
        try:
            head = read_head(self.directory)
        except OSError:
            return None
        return head.chain_id if head is not None else None

    def _run(self) -> None:
        tail: SegmentTail | None = None
        last_save = 0.0
        while not self._stop.is_set():
            try:
                if not self.transport.connected:
                    chain = self._chain()
                    if self.cursor.chain_id not in (None, chain):
                        self.cursor = Cursor(chain, 0)  # a new chain: ship it from the start
                    self.transport.connect()
                    start = max(0, self.cursor.sequence - self.resend)
                    if tail is not None:
                        tail.close()
                    tail = SegmentTail(self.directory, start)
                    self.resent += max(0, self._sent_upto - start)
                    self._sent_upto = start
                    self.reconnects += 1
                assert tail is not None
                lines = tail.poll(self.batch)
                if lines:
                    batch = [(seq, line, orjson.loads(line)) for seq, line in lines]
                    self.transport.send(batch)
                    self.sent += len(batch)
                    self._sent_upto = max(self._sent_upto, batch[-1][0])
                    chain = get_path(batch[-1][2], "edgeguard.chain_id")
                    self.cursor = Cursor(chain, self.cursor.sequence)
                elif not self.transport.healthy():
                    raise ConnectionResetError("receiver closed the connection")
                now = time.monotonic()
                if (not lines or now - last_save >= self.cursor_interval) \
                        and self._sent_upto > self.cursor.sequence and self.transport.delivered():
                    self.cursor = Cursor(self.cursor.chain_id, self._sent_upto)
                    self.cursor.save(self.cursor_path)
                    last_save = now
                if not lines:
                    self._stop.wait(self.poll)
            except OSError as exc:
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                self.transport.close()
                self._stop.wait(self.reconnect_interval)
        if tail is not None:
            tail.close()
