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

    @classmethod
    def load(cls, path: Path, name: str) -> ShipperState:
        try:
            doc = orjson.loads(path.read_bytes())
            return cls(name, doc.get("cause"), str(doc.get("last_error", "")),
                       doc.get("since"), int(doc.get("failures", 0)),
                       int(doc.get("reports", 0)), float(doc.get("updated", 0.0)))
        except (OSError, orjson.JSONDecodeError, TypeError, ValueError, AttributeError):
            return cls(name)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
        atomic_write(path, orjson.dumps(asdict(self)), mode=0o640)


def state_path(cursor_path: Path) -> Path:
    """The state file next to a cursor file (``syslog-tls.cursor`` -> ``syslog-tls.state``)."""
    return cursor_path.with_suffix(".state")
