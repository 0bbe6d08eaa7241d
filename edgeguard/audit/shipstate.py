"""Why a shipper cannot deliver, said once per cause and window, and kept on disk.

A shipper that cannot reach its receiver retries forever (nothing is lost: it resumes
from its cursor), but it must not do so silently. Each failure is classified
(:class:`FailureCause`: connection refused, TLS, name lookup...) and *reported* — logged
at warning, counted, and handed to whoever audits it — the first time a cause is seen
and again only after :data:`FAILURE_REPORT_WINDOW` of the same cause, so a receiver down
for a day gives a handful of reports, not one per reconnect attempt.

The shipper's state (current cause, its first occurrence, reports so far) is written
next to its cursor file as ``<name>.state`` whenever it reports or recovers, so the
daemon's ``status`` can show the failure of the separate ``edgeguard audit ship``
process and audit it.
"""

from __future__ import annotations

import enum
import errno
import math
import socket
import ssl
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson

from edgeguard.fsutil import atomic_write

__all__ = ["FAILURE_REPORT_WINDOW", "FailureCause", "FailureWindow", "ProtocolError",
           "ShipperState", "classify", "state_path"]

#: Seconds before the same cause of failure is reported (logged, audited) again.
FAILURE_REPORT_WINDOW = 600.0


class FailureCause(enum.Enum):
    REFUSED = "refused"  # nothing listens on the port (ECONNREFUSED)
    TLS = "tls"  # handshake or certificate verification failed, or TLS broke
    NAME_LOOKUP = "name-lookup"  # the receiver's name does not resolve
    TIMEOUT = "timeout"  # no answer in time (filtered port, dead host)
    UNREACHABLE = "unreachable"  # no route to the network or host
    RESET = "reset"  # the receiver closed or reset an established connection
    PROTOCOL = "protocol"  # the receiver answered something it must not (RELP errors)
    OTHER = "other"


class ProtocolError(OSError):
    """The receiver spoke, but not as the protocol says (a RELP error reply, say)."""


_UNREACHABLE = {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN, errno.EHOSTDOWN,
                errno.EADDRNOTAVAIL}


#: Exception classes to causes, most specific first (SSLError and gaierror are OSErrors).
_BY_TYPE: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], FailureCause], ...] = (
    (socket.gaierror, FailureCause.NAME_LOOKUP),
    (ssl.SSLError, FailureCause.TLS),  # verification errors and TLS alerts alike
    (ProtocolError, FailureCause.PROTOCOL),
    (ConnectionRefusedError, FailureCause.REFUSED),
    (TimeoutError, FailureCause.TIMEOUT),
    ((ConnectionResetError, ConnectionAbortedError, BrokenPipeError), FailureCause.RESET),
)


def classify(exc: BaseException) -> FailureCause:
    """The cause of one failed attempt."""
    for kind, cause in _BY_TYPE:
        if isinstance(exc, kind):
            return cause
    if isinstance(exc, OSError) and exc.errno in _UNREACHABLE:
        return FailureCause.UNREACHABLE
    return FailureCause.OTHER


class FailureWindow:
    """Whether a failure of a cause is due to be reported (first, or after the window)."""

    def __init__(self, window: float = FAILURE_REPORT_WINDOW) -> None:
        self.window = window
        self._last: dict[FailureCause, float] = {}

    def due(self, cause: FailureCause, now: float) -> bool:
        last = self._last.get(cause)
        if last is not None and now - last < self.window:
            return False
        self._last[cause] = now
        return True


@dataclass(frozen=True, slots=True)
class ShipperState:
    """What ``status`` shows of a shipper: ``cause`` is None while it delivers."""

    name: str
    cause: str | None = None
    last_error: str = ""
    since: float | None = None  # wall-clock time of the first failure of this outage
    failures: int = 0  # failed attempts since the shipper started
    reports: int = 0  # failures reported (logged and handed to the auditor)
    updated: float = 0.0

    #: What :meth:`load` had to repair in the file (empty: nothing); not saved.
    damage: str = ""

    @classmethod
    def load(cls, path: Path, name: str) -> ShipperState:
        """The state another process wrote, each field checked on its own: a cause this
        version does not know is ``other``, a ``since`` that is not a number is the file's
        modification time, bad counters are 0, and a file that exists but is not a JSON
        object is a failure of cause ``other`` (a shipper whose state cannot be read must
        not look healthy). What was repaired is in :attr:`damage` for the caller to log."""
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return cls(name)
        except OSError as exc:
            return cls._unreadable(path, name, f"cannot read {path}: {exc}")
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return cls._unreadable(path, name, f"{path} is not JSON: {exc}")
        if not isinstance(doc, dict):
            return cls._unreadable(path, name, f"{path} is not a JSON object")
        damage: list[str] = []
        cause = doc.get("cause")
        if cause is not None and (not isinstance(cause, str) or cause not in _CAUSES):
            damage.append(f"unknown cause {str(cause)[:40]!r} read as {FailureCause.OTHER.value}")
            cause = FailureCause.OTHER.value
        since = _number(doc.get("since"))
        if since is None and doc.get("since") is not None:
            damage.append("since is not a number: the file's time is used")
            since = _mtime(path)
        if cause is not None and since is None:
            since = _mtime(path)
        counts = [_number(doc.get(k, 0)) for k in ("failures", "reports", "updated")]
        if any(c is None for c in counts):
            damage.append("failures/reports/updated not numbers: read as 0")
        failures, reports, updated = (c or 0.0 for c in counts)
        return cls(name, cause, str(doc.get("last_error", ""))[:_ERROR_MAX], since,
                   int(failures), int(reports), updated, "; ".join(damage))

    @classmethod
    def _unreadable(cls, path: Path, name: str, why: str) -> ShipperState:
        return cls(name, FailureCause.OTHER.value, f"shipper state unreadable: {why}",
                   _mtime(path), damage=why)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
        doc = asdict(self)
        del doc["damage"]
        atomic_write(path, orjson.dumps(doc), mode=0o640)


_CAUSES = frozenset(c.value for c in FailureCause)
_ERROR_MAX = 500  # characters of another process's error message kept


def _number(value: object) -> float | None:
    """A finite int or float (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def state_path(cursor_path: Path) -> Path:
    """The state file next to a cursor file (``syslog-tls.cursor`` -> ``syslog-tls.state``)."""
    return cursor_path.with_suffix(".state")
