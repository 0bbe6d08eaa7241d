"""Who gets a control connection, and how refusals are counted for the audit trail.

:class:`ConnectionGate` admits a connection or says why not: all peers together are
held to ``max_connections``, one non-root uid to ``max_per_uid``, and the last
``root_reserve`` slots are root's alone, so a member of the admin group holding a
thousand connections open can never lock root out.

:class:`RefusalTally` turns a flood into a few records: refused connections, refused
commands and bad requests are counted per peer uid and window and written as one
``control-refusals`` summary when the window has passed. The first refusal of each
command by a uid in a window is also audited on its own (who tried what), the rest
only counted.
"""

from __future__ import annotations

import enum
from collections import Counter, OrderedDict
from dataclasses import dataclass, field

from edgeguard.clock import Clock
from edgeguard.policy.control import ControlConfig

__all__ = ["ConnectionGate", "Refusal", "RefusalSummary", "RefusalTally"]

#: Distinct command names kept per summary; more are counted under "other".
_MAX_COMMANDS = 32
#: Peer uids with an open window; beyond, the oldest window is written early.
_MAX_UIDS = 1024


class Refusal(enum.Enum):
    """Why a connection or request was not served."""

    CONNECTIONS = "connection-limit"
    PRIVILEGE = "privilege"
    BAD_REQUEST = "bad-request"


class ConnectionGate:
    """Admission of control connections by peer uid (see the module docstring)."""

    def __init__(self, config: ControlConfig) -> None:
        self.config = config
        self.active = 0
        self._per_uid: Counter[int] = Counter()

    def admit(self, uid: int) -> str | None:
        """Take a slot for ``uid``; the reason when there is none (nothing taken)."""
        limit = self.config.max_connections
        if self.active >= limit:
            return f"too many control connections ({limit})"
        if uid == 0:
            pass
        elif self.active - self._per_uid[0] >= limit - self.config.root_reserve:
            return f"too many control connections ({limit - self.config.root_reserve} " \
                   "for non-root peers)"
        elif self._per_uid[uid] >= self.config.max_per_uid:
            return f"too many control connections from uid {uid} " \
                   f"({self.config.max_per_uid})"
        self.active += 1
        self._per_uid[uid] += 1
        return None

    def release(self, uid: int) -> None:
        self.active -= 1
        self._per_uid[uid] -= 1
        if self._per_uid[uid] <= 0:
            del self._per_uid[uid]

    def held_by(self, uid: int) -> int:
        return self._per_uid[uid]


@dataclass(frozen=True, slots=True)
class RefusalSummary:
    """One uid's refusals in one window: what the ``control-refusals`` record says."""

    uid: int
    start: float  # wall clock
    end: float
    counts: dict[Refusal, int]
    commands: dict[str, int]
    #: Of ``total``, refusals that were also audited on their own.
    audited: int

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass(slots=True)
class _Window:
    opened: float  # monotonic
    start: float  # wall clock
    end: float
    counts: Counter[Refusal] = field(default_factory=Counter)
    commands: Counter[str] = field(default_factory=Counter)
    audited: set[str] = field(default_factory=set)


class RefusalTally:
    """Counts refusals per uid and window; ``flush`` returns the summaries due."""

    def __init__(self, clock: Clock, window: float) -> None:
        self.clock = clock
        self.window = window
        self._open: OrderedDict[int, _Window] = OrderedDict()
        self._early: list[RefusalSummary] = []
        self.counted = 0

    def add(self, uid: int, what: Refusal, command: str = "", *,
            individually: bool = False) -> bool:
        """Count one refusal. With ``individually``, True when it is the first refusal
        of ``command`` by this uid in the window: the caller audits it on its own too."""
        now = self.clock.now()
        win = self._open.get(uid)
        if win is None:
            win = _Window(self.clock.monotonic(), now, now)
            self._open[uid] = win
            while len(self._open) > _MAX_UIDS:
                old_uid, oldest = self._open.popitem(last=False)
                self._early.append(_summary(old_uid, oldest))
        win.end = now
        win.counts[what] += 1
        self.counted += 1
        if command:
            if command in win.commands or len(win.commands) < _MAX_COMMANDS:
                win.commands[command] += 1
            else:
                win.commands["other"] += 1
        if not individually or command in win.audited:
            return False
        win.audited.add(command)
        return True

    def flush(self, *, force: bool = False) -> list[RefusalSummary]:
        """The summaries whose window has passed (all with ``force``), oldest first."""
        now = self.clock.monotonic()
        due = [uid for uid, w in self._open.items() if force or now - w.opened >= self.window]
        out, self._early = self._early, []
        out.extend(_summary(uid, self._open.pop(uid)) for uid in due)
        return out


def _summary(uid: int, win: _Window) -> RefusalSummary:
    return RefusalSummary(uid=uid, start=win.start, end=win.end, counts=dict(win.counts),
                          commands=dict(win.commands), audited=len(win.audited))
