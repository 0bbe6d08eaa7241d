"""Ship the audit log off-host from the segment files, with an on-disk cursor.

A shipper reads records by sequence from the files (:class:`SegmentTail`), not from
in-process hooks, so a crash of edgeguard or an outage of the receiver never loses the
position: the cursor (chain id + sequence + segment) is written atomically, and only for
records the transport reports delivered. After a reconnect it re-sends from
``cursor - resend + 1``: those few records may arrive twice, and each carries its chain
id and sequence so the receiver (or ``audit verify --against``) can tell.

A failed attempt is classified and reported once per cause and window
(:mod:`edgeguard.audit.shipstate`): logged at warning, kept in :attr:`Shipper.reports`
for the daemon to audit, and written to ``<name>.state`` next to the cursor file for
``status``. The first delivery after a failure logs the recovery and clears the state.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson
import structlog

from edgeguard.audit.chain import get_path
from edgeguard.audit.follow import SegmentTail
from edgeguard.audit.segments import read_head
from edgeguard.audit.shipstate import (
    FAILURE_REPORT_WINDOW,
    FailureCause,
    FailureWindow,
    ShipperState,
    classify,
    state_path,
)
from edgeguard.fsutil import atomic_write

__all__ = ["TCP_ACK_SETTLE", "Cursor", "Shipper", "ShippingFailure", "Transport"]

log = structlog.get_logger("edgeguard.ship")

#: Seconds a TCP delivery (every byte acknowledged by the receiver's kernel) must stand
#: on a healthy connection before the cursor moves past it. A receiver that exits with
#: records unread in its socket buffer resets the connection instead of reading them:
#: within this time the reset arrives first and those records are sent again.
TCP_ACK_SETTLE = 1.0

#: Reported failures kept for the daemon to audit (older ones are only counted).
_REPORTS_KEPT = 64


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


@dataclass(frozen=True, slots=True)
class ShippingFailure:
    """One reported failure: which destination, why, and since when (wall clock)."""

    destination: str
    cause: FailureCause
    error: str
    since: float
    failures: int  # failed attempts in this outage so far


class Shipper:
    """One transport, one thread, one cursor file (and its state file)."""

    def __init__(self, directory: Path, transport: Transport, cursor_path: Path, *,
                 resend: int = 100, batch: int = 500, poll: float = 0.1,
                 reconnect_interval: float = 5.0, cursor_interval: float = 0.5,
                 report_window: float = FAILURE_REPORT_WINDOW, settle: float = 0.0) -> None:
        self.directory = directory
        self.transport = transport
        self.cursor_path = cursor_path
        self.resend = resend
        self.batch = batch
        self.poll = poll
        self.reconnect_interval = reconnect_interval
        self.cursor_interval = cursor_interval
        #: Seconds a delivery must stand, on a healthy connection, before the cursor moves
        #: past it (TCP_ACK_SETTLE for plain syslog; 0 where the receiver answers).
        self.settle = settle
        self._acked: deque[tuple[int, float]] = deque()  # (sequence, when delivered)
        self.cursor = Cursor.load(cursor_path)
        self.sent = self.resent = self.reconnects = self.errors = 0
        self.last_error = ""
        #: Wall-clock time the current outage began (None: delivering).
        self.failing_since: float | None = None
        self.cause: FailureCause | None = None
        self._outage_failures = 0
        self.state_path = state_path(cursor_path)
        self.state = ShipperState(transport.name)
        #: Reported failures not yet audited (the daemon drains them).
        self.reports: deque[ShippingFailure] = deque(maxlen=_REPORTS_KEPT)
        self._window = FailureWindow(report_window)
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

    def wait_delivered(self, sequence: int, timeout: float) -> ShippingFailure | None:
        """Block until the cursor reaches ``sequence`` (None) or the first failure is
        reported (that failure). TimeoutError if neither happens in ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.reports:
                return self.reports[-1]
            if self.cursor.sequence >= sequence:
                return None
            self._stop.wait(0.05)
        raise TimeoutError(f"{self.name}: cursor at {self.cursor.sequence} after {timeout:g} s, "
                           f"not at {sequence}")

    def _settled(self, now: float) -> int:
        """The newest sequence delivered at least ``settle`` seconds ago (0: none)."""
        settled = 0
        while self._acked and now - self._acked[0][1] >= self.settle:
            settled = self._acked.popleft()[0]
        return settled

    def counters(self) -> dict[str, int]:
        return {"sent": self.sent, "resent": self.resent, "reconnects": self.reconnects,
                "errors": self.errors, "reported": self.state.reports,
                "cursor": self.cursor.sequence}

    def _failed(self, exc: OSError) -> None:
        cause = classify(exc)
        self.errors += 1
        self._outage_failures += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        changed = cause is not self.cause
        self.cause = cause
        if self.failing_since is None:
            self.failing_since = time.time()
        report = self._window.due(cause, time.monotonic())
        if not (report or changed):
            return
        self.state = ShipperState(self.name, cause.value, self.last_error, self.failing_since,
                                  self.errors, self.state.reports + report, time.time())
        self._save_state()  # status shows every outage and change of cause
        if not report:  # the same cause within the window: shown, not logged or audited again
            return
        self.reports.append(ShippingFailure(self.name, cause, self.last_error,
                                            self.failing_since, self._outage_failures))
        log.warning("audit shipping failed; retrying from the cursor", shipper=self.name,
                    cause=cause.value, error=self.last_error, cursor=self.cursor.sequence,
                    failures=self._outage_failures, retry_in=self.reconnect_interval)

    def _recovered(self) -> None:
        if self.failing_since is None:
            return
        log.info("audit shipping recovered", shipper=self.name, cursor=self.cursor.sequence,
                 outage=round(time.time() - self.failing_since, 1),
                 failures=self._outage_failures)
        self.failing_since = None
        self.cause = None
        self._outage_failures = 0
        self.last_error = ""
        self.state = ShipperState(self.name, None, "", None, self.errors, self.state.reports,
                                  time.time())
        self._save_state()

    def _save_state(self) -> None:
        try:
            self.state.save(self.state_path)
        except OSError as exc:  # status loses detail; shipping goes on
            log.error("shipper state not saved", shipper=self.name, error=str(exc))

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
                    self._acked.clear()  # not settled: sent again
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
                        and self._sent_upto > self.cursor.sequence and self.transport.delivered() \
                        and (not self._acked or self._acked[-1][0] < self._sent_upto):
                    self._acked.append((self._sent_upto, now))
                settled = self._settled(now)
                if settled > self.cursor.sequence and self.transport.healthy():
                    self.cursor = Cursor(self.cursor.chain_id, settled)
                    self.cursor.save(self.cursor_path)
                    last_save = now
                    self._recovered()
                elif not lines and self._sent_upto <= self.cursor.sequence \
                        and self.failing_since is not None and self.transport.healthy():
                    self._recovered()  # back, with nothing new to deliver
                if not lines:
                    self._stop.wait(self.poll)
            except OSError as exc:
                self._failed(exc)
                self.transport.close()
                self._stop.wait(self.reconnect_interval)
        self._final_commit()
        if tail is not None:
            tail.close()

    def _final_commit(self) -> None:
        """At a stop of ours, with the receiver alive: what it acknowledged counts now (the
        settle time guards against the receiver dying, which is not what is happening)."""
        try:
            if self._sent_upto > self.cursor.sequence and self.transport.connected \
                    and self.transport.delivered() and self.transport.healthy():
                self.cursor = Cursor(self.cursor.chain_id, self._sent_upto)
                self.cursor.save(self.cursor_path)
        except OSError as exc:
            log.info("cursor not advanced at stop", shipper=self.name, error=str(exc))
