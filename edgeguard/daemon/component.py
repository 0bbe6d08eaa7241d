"""What a feature plugs into the daemon: a :class:`Component` started with a :class:`Context`.

A component owns its sources (udev monitor, netlink socket, capture worker), feeds
findings to ``ctx.submit`` (decision -> actions -> audit) or writes audit records
itself through ``ctx.audit``, and may serve control-socket commands. Components are
listed in :mod:`edgeguard.daemon.registry`.
"""

from __future__ import annotations

import asyncio
import enum
import ipaddress
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from edgeguard.actions.worker import ActionWorker
from edgeguard.audit.sink import AuditSink
from edgeguard.clock import Clock
from edgeguard.events import Decider, Decision, Finding
from edgeguard.policy.model import Policy

__all__ = ["Command", "CommandHandler", "Component", "Context", "Degradable", "Forgetting", "Peer",
           "Privilege", "changing", "read_only"]


@dataclass(frozen=True, slots=True)
class Peer:
    """Who is on the other end of the control socket: pid, uid, gid and supplementary
    groups from the kernel (SO_PEERCRED, SO_PEERGROUPS); the command line from
    ``/proc/<pid>/cmdline`` when this process may read it, else as the client sent it
    (``command_line_source`` says which)."""

    pid: int
    uid: int
    gid: int
    groups: frozenset[int] = frozenset()
    command_line: str = ""
    command_line_source: str = ""


#: A control command: takes the peer and the request's arguments, returns a JSON-able
#: mapping (or a list of them for commands that report many rows).
CommandHandler = Callable[[Peer, Mapping[str, Any]], Awaitable[Any]]


class Privilege(enum.Enum):
    """Who may run a control command."""

    #: root and members of ``daemon.admin_group``.
    ADMIN_GROUP = "admin-group"
    #: uid 0 only.
    ROOT = "root"


@dataclass(frozen=True, slots=True)
class Command:
    """A control command as it is registered: its handler, who may run it, and whether
    it changes state (then every run, allowed or refused, is audited as a change)."""

    handler: CommandHandler
    privilege: Privilege
    changes_state: bool

    def __call__(self, peer: Peer, args: Mapping[str, Any]) -> Awaitable[Any]:
        return self.handler(peer, args)


def read_only(handler: CommandHandler) -> Command:
    """A command that only reads: open to the admin group, not audited as a change."""
    return Command(handler, Privilege.ADMIN_GROUP, changes_state=False)


def changing(handler: CommandHandler) -> Command:
    """A command that changes state: root only, audited with the peer's credentials."""
    return Command(handler, Privilege.ROOT, changes_state=True)


class Forgetting:
    """Addresses an operator forgave (``net unblock``), passed from the component that
    unblocks (nftables enforcement) to those keeping per-source history (the capture
    workers' detectors), which subscribe: the host's next offence is then detected
    afresh rather than taken for the one already reported. Neither component imports
    the other."""

    def __init__(self) -> None:
        self._listeners: list[Callable[[tuple[str, ...]], None]] = []

    def subscribe(self, listener: Callable[[tuple[str, ...]], None]) -> None:
        self._listeners.append(listener)

    def forget(self, addresses: Iterable[str]) -> tuple[str, ...]:
        """Tell every subscriber; addresses are passed as packets spell them (an IP's
        compressed text, a lower-case MAC). Returns what was passed on."""
        wanted = tuple(dict.fromkeys(_as_packets_spell(a) for a in addresses if a.strip()))
        if wanted:
            for listener in self._listeners:
                listener(wanted)
        return wanted


def _as_packets_spell(address: str) -> str:
    text = address.strip()
    try:
        return ipaddress.ip_address(text).compressed
    except ValueError:
        return text.lower()


@dataclass(slots=True)
class Context:
    loop: asyncio.AbstractEventLoop
    clock: Clock
    audit: AuditSink
    policy: Policy
    state_dir: Path
    #: Propose a finding: the decision engine matches the policy (the mode is that of
    #: the finding type's area in :mod:`edgeguard.findings`), the actions run (off the
    #: event loop) and everything is audited.
    submit: Callable[[Finding], Decision]
    #: False under the hardened unit: ``edgeguard audit ship`` ships to remote receivers.
    ship_remote: bool = True
    #: The action worker thread: work that waits on the system (nft, sysfs) goes here,
    #: never on ``loop``. None outside the daemon (tests, replay): run it inline.
    worker: ActionWorker | None = None
    #: The decision engine, for areas that propose state changes recorded every time
    #: (media verdicts) rather than findings: it matches ``rules:`` and picks the mode.
    decider: Decider | None = None
    #: ``net unblock`` forgets the address here; the network component subscribes.
    forgetting: Forgetting = field(default_factory=Forgetting)


class Component(Protocol):
    name: str

    def start(self, ctx: Context) -> None:
        """Open sources, register readers/timers on ``ctx.loop``; coldplug here."""

    def reload(self, policy: Policy) -> None:
        """Apply a new (already validated) policy; re-evaluate present state."""

    def stop(self) -> None:
        """Close sources. Called once, before the audit log is closed."""

    def counters(self) -> Mapping[str, int]:
        """Per-source counters for ``edgeguard status`` (events, malformed, dropped)."""

    def commands(self) -> Mapping[str, Command]:
        """Control-socket commands this component serves, each declaring its privilege,
        e.g. ``{"media.list": read_only(self.cmd_list)}``."""


@runtime_checkable
class Degradable(Protocol):
    """A component that can run while doing less than the policy asks (a capture
    worker that cannot start): ``edgeguard status`` reports the daemon degraded."""

    def problems(self) -> Mapping[str, str]:
        """What is not working, by what (empty when healthy)."""
