"""What a feature plugs into the daemon: a :class:`Component` started with a :class:`Context`.

A component owns its sources (udev monitor, netlink socket, capture worker), feeds
findings to ``ctx.submit`` (decision -> actions -> audit) or writes audit records
itself through ``ctx.audit``, and may serve control-socket commands. Components are
listed in :mod:`edgeguard.daemon.registry`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from edgeguard.audit.sink import AuditSink
from edgeguard.clock import Clock
from edgeguard.events import Decision, Finding
from edgeguard.policy.model import Policy

__all__ = ["CommandHandler", "Component", "Context", "Degradable", "Peer"]


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


@dataclass(slots=True)
class Context:
    loop: asyncio.AbstractEventLoop
    clock: Clock
    audit: AuditSink
    policy: Policy
    state_dir: Path
    #: Decide about a finding, act on it per policy and audit it. ``section`` is the
    #: policy section whose ``mode`` applies ("network", "media", "wifi").
    submit: Callable[[Finding, str], Decision]
    #: False under the hardened unit: ``edgeguard audit ship`` ships to remote receivers.
    ship_remote: bool = True


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

    def commands(self) -> Mapping[str, CommandHandler]:
        """Control-socket commands this component serves, e.g. ``{"media.list": ...}``."""


@runtime_checkable
class Degradable(Protocol):
    """A component that can run while doing less than the policy asks (a capture
    worker that cannot start): ``edgeguard status`` reports the daemon degraded."""

    def problems(self) -> Mapping[str, str]:
        """What is not working, by what (empty when healthy)."""
