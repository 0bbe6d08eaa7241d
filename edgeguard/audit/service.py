"""The audit component of the daemon: periodic writer work and the shippers.

The daemon opens the :class:`~edgeguard.audit.writer.AuditWriter` itself (every other
component writes through it). This component applies the policy's audit settings to
it (key, checkpoints, memory queue, retention), calls its ``tick()`` every second (a due
checkpoint also when idle, retries after disk-full, retention), and runs one shipper
thread per enabled destination (journald, syslog TCP/TLS), each reading the segment
files from its own on-disk cursor. Retention never deletes a segment an enabled shipper
has not delivered.

Shipping to a remote receiver needs Internet sockets, which the hardened unit does not
give the daemon: there (``edgeguard run --no-remote-shipping``) the remote shippers run in
``edgeguard audit ship`` (:mod:`edgeguard.audit.shipd`, its own unit), and this component
reads their cursor files for retention and ``status``. Local destinations (journald)
stay here.

A shipper that cannot deliver reports each cause once per window
(:mod:`edgeguard.audit.shipstate`); every tick this component audits the new reports
(``audit-shipping-failed``, outcome failure): those of its own shippers from memory,
those of ``edgeguard audit ship`` from the state file it keeps next to its cursor file,
which ``status`` shows too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from edgeguard.audit.journald import JournaldTransport
from edgeguard.audit.relp import RelpTransport
from edgeguard.audit.shipper import TCP_ACK_SETTLE, Cursor, Shipper, ShippingFailure, Transport
from edgeguard.audit.shipstate import FailureCause, ShipperState, state_path
from edgeguard.audit.syslog import SyslogTransport
from edgeguard.audit.writer import AuditWriter
from edgeguard.daemon.component import Command, Component, Context, Peer, read_only
from edgeguard.events import AuditRecord, EventKind, Outcome
from edgeguard.policy.model import Policy

if TYPE_CHECKING:  # edgeguard.policy imports audit.config: import it after policy
    from edgeguard.audit.config import AuditConfig, ShippingConfig

__all__ = ["AuditService", "build_shippers", "components", "local_shippers",
           "remote_cursors", "remote_shippers"]

log = structlog.get_logger("edgeguard.audit")

TICK = 1.0


def local_shippers(directory: Path, config: ShippingConfig) -> list[Shipper]:
    """Destinations on this host (journald's socket)."""
    if not config.journald.enabled:
        return []
    return [Shipper(directory, JournaldTransport(config.journald.socket),
                    Path(config.cursor_directory) / "journald.cursor", resend=0)]


def remote_shippers(directory: Path, config: ShippingConfig) -> list[Shipper]:
    """Destinations over the network (syslog over TCP/TLS, or RELP)."""
    sl = config.syslog
    if not sl.enabled:
        return []
    transport: Transport
    if sl.relp:  # acknowledged per message: nothing before the cursor needs sending again
        transport = RelpTransport(sl.host, sl.port, tls=sl.tls, ca_file=sl.ca_file,
                                  server_name=sl.server_name, cert_file=sl.cert_file,
                                  key_file=sl.key_file)
    else:
        transport = SyslogTransport(sl.host, sl.port, tls=sl.tls, ca_file=sl.ca_file,
                                    server_name=sl.server_name, cert_file=sl.cert_file,
                                    key_file=sl.key_file)
    return [Shipper(directory, transport, remote_cursors(config)[transport.name],
                    resend=0 if sl.relp else sl.resend_on_reconnect,
                    reconnect_interval=sl.reconnect_interval,
                    settle=0.0 if sl.relp else TCP_ACK_SETTLE)]


def remote_cursors(config: ShippingConfig) -> dict[str, Path]:
    """Each enabled remote destination's name and cursor file."""
    sl = config.syslog
    if not sl.enabled:
        return {}
    name = (RelpTransport if sl.relp else SyslogTransport).transport_name(tls=sl.tls)
    return {name: Path(config.cursor_directory) / f"{name}.cursor"}


def build_shippers(directory: Path, config: ShippingConfig) -> list[Shipper]:
    return local_shippers(directory, config) + remote_shippers(directory, config)


class AuditService:
    name = "audit"

    def __init__(self, policy: Policy) -> None:
        self.config: AuditConfig = policy.audit
        self.writer: AuditWriter | None = None
        self.shippers: list[Shipper] = []
        #: False: remote destinations are shipped by ``edgeguard audit ship``.
        self.ship_remote = True
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: asyncio.Future[None] | None = None
        self.ticks = 0
        #: Reports of ``edgeguard audit ship`` already audited, by destination.
        self._external_reports: dict[str, int] = {}
        #: What was last repaired in each ``edgeguard audit ship`` state file (logged once).
        self._state_damage: dict[str, str] = {}
        self.failures_audited = 0

    def start(self, ctx: Context) -> None:
        self._loop = ctx.loop
        self.ship_remote = ctx.ship_remote
        if isinstance(ctx.audit, AuditWriter):
            self.writer = ctx.audit
        self._apply(self.config)
        self._schedule()

    def reload(self, policy: Policy) -> None:
        old, self.config = self.config, policy.audit
        if old.shipping != self.config.shipping:
            self._stop_shippers()
        self._apply(self.config)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.writer is not None:
            self.writer.tick()
        self._stop_shippers()

    def shipped_sequence(self) -> int | None:
        """The lowest sequence every shipper has delivered (None: shipping is off)."""
        delivered = [s.shipped_sequence for s in self.shippers]
        delivered += [cursor for _, cursor in self._external()]
        return min(delivered) if delivered else None

    def _external_states(self) -> list[ShipperState]:
        if self.ship_remote:
            return []
        states = [ShipperState.load(state_path(path), name)
                  for name, path in remote_cursors(self.config.shipping).items()]
        for state in states:  # logged once per destination and kind of damage
            if state.damage and self._state_damage.get(state.name) != state.damage:
                log.warning("shipper state file repaired on reading", shipper=state.name,
                            damage=state.damage)
            self._state_damage[state.name] = state.damage
        return states

    def audit_failures(self) -> int:
        """Audit the shipping failures reported since the last call; how many."""
        found: list[ShippingFailure] = []
        for shipper in self.shippers:
            while shipper.reports:
                found.append(shipper.reports.popleft())
        for state in self._external_states():
            seen = self._external_reports.get(state.name)
            self._external_reports[state.name] = state.reports
            if state.cause is not None and state.reports != seen and state.since is not None:
                found.append(ShippingFailure(state.name, FailureCause(state.cause),
                                             state.last_error, state.since, state.failures))
        if self.writer is None:
            return 0
        for f in found:
            self.writer.write(AuditRecord(
                action="audit-shipping-failed",
                message=f"audit records not delivered to {f.destination} ({f.cause.value}): "
                        f"{f.error}; retrying from the cursor",
                kind=EventKind.PIPELINE_ERROR, category=("host",), event_type=("error",),
                outcome=Outcome.FAILURE,
                fields={"edgeguard.shipping.destination": f.destination,
                        "edgeguard.shipping.cause": f.cause.value,
                        "edgeguard.shipping.failing_since": f.since,
                        "edgeguard.shipping.failures": f.failures,
                        "error.message": f.error}))
        self.failures_audited += len(found)
        return len(found)

    def problems(self) -> Mapping[str, str]:
        """Destinations that cannot be delivered to: ``edgeguard status`` shows the daemon
        degraded (exit 1) until the shipper delivers again."""
        failing: list[tuple[str, str, float | None, str, int]] = [
                   (s.name, s.cause.value, s.failing_since, s.last_error, s.shipped_sequence)
                   for s in self.shippers if s.cause is not None]
        cursors = dict(self._external())
        failing += [(st.name, st.cause, st.since, st.last_error, cursors.get(st.name, 0))
                    for st in self._external_states() if st.cause is not None]
        return {f"audit.shipping.{name}":
                f"{cause} since {_utc(since)}: {error}; retrying from cursor {cursor}"
                for name, cause, since, error, cursor in failing}

    def _external(self) -> list[tuple[str, int]]:
        """Remote destinations shipped by ``edgeguard audit ship``: name and the sequence
        its cursor file says is delivered (0 for another chain or none yet)."""
        if self.ship_remote:
            return []
        chain = self.writer.chain_id if self.writer is not None else None
        out = []
        for name, path in remote_cursors(self.config.shipping).items():
            cursor = Cursor.load(path)
            out.append((name, cursor.sequence if cursor.chain_id == chain else 0))
        return out

    def _apply(self, config: AuditConfig) -> None:
        if self.writer is None:
            return
        try:
            group: int | None = config.file_group.gid
        except KeyError:  # deleted since the policy was loaded: keep the group in use
            log.error("audit.file_group does not exist; files keep their group",
                      group=str(config.file_group))
            group = None
        self.writer.configure(
            key_file=Path(config.key_file), file_group=group,
            checkpoint_interval=config.checkpoint_interval,
            checkpoint_records=config.checkpoint_records, queue_limit=config.queue_limit,
            retention=config.retention, shipped=self.shipped_sequence)
        if not self.shippers:
            self.shippers = local_shippers(self.writer.directory, config.shipping)
            if self.ship_remote:
                self.shippers += remote_shippers(self.writer.directory, config.shipping)
            for shipper in self.shippers:
                shipper.start()
                log.info("audit shipper started", shipper=shipper.name)

    def _stop_shippers(self) -> None:
        for shipper in self.shippers:
            shipper.stop()
        self.shippers = []

    def _schedule(self) -> None:
        if self._loop is not None:
            self._timer = self._loop.call_later(TICK, self._tick)

    def _tick(self) -> None:
        """Writer housekeeping off the event loop (a checkpoint or a prune fsyncs)."""
        self.ticks += 1
        if self.writer is not None and self._loop is not None and \
                (self._pending is None or self._pending.done()):
            self._pending = self._loop.run_in_executor(None, self._housekeeping)
            self._pending.add_done_callback(_log_failure)
        self._schedule()

    def _housekeeping(self) -> None:
        """The writer's tick runs whatever auditing the shipping failures raised."""
        assert self.writer is not None
        try:
            self.audit_failures()
        finally:
            self.writer.tick()

    def counters(self) -> Mapping[str, int]:
        out: dict[str, int] = {"ticks": self.ticks,
                               "shipping_failures_audited": self.failures_audited}
        if self.writer is not None:
            w = self.writer
            out.update(records_written=w.records_written, write_errors=w.write_errors,
                       queued=w.queued, lost=w.lost_total, checkpoints=w.checkpoints,
                       pruned=w.pruned, refused=w.refused, unrenderable=w.unrenderable)
        for shipper in self.shippers:
            out.update({f"{shipper.name}.{k}": v for k, v in shipper.counters().items()})
        for name, cursor in self._external():  # shipped by `edgeguard audit ship`
            out[f"{name}.cursor"] = cursor
        return out

    def commands(self) -> Mapping[str, Command]:
        return {"audit.status": read_only(self.cmd_status)}

    async def cmd_status(self, peer: Peer, args: Mapping[str, Any]) -> dict[str, Any]:
        status: dict[str, Any] = dict(self.counters())
        if self.writer is not None:
            seq, digest = self.writer.head
            status.update({"event.sequence": seq, "event.hash": digest,
                           "edgeguard.chain_id": self.writer.chain_id,
                           "edgeguard.checkpoint.sealed": self.writer.keys is not None})
        status["shippers"] = [{"name": s.name, "cursor": s.shipped_sequence,
                               "last_error": s.last_error, "failing_since": s.failing_since,
                               "cause": s.cause.value if s.cause else None,
                               "failures": s.errors}
                              for s in self.shippers]
        states = {st.name: st for st in self._external_states()}
        for name, cursor in self._external():
            st = states[name]
            status["shippers"].append({
                "name": name, "cursor": cursor, "last_error": st.last_error,
                "failing_since": st.since, "cause": st.cause, "failures": st.failures,
                "process": "edgeguard audit ship"})
        return status


def _log_failure(done: asyncio.Future[None]) -> None:
    """An executor job's exception, which nothing else awaits."""
    if not done.cancelled() and (exc := done.exception()) is not None:
        log.error("audit housekeeping failed", error=f"{type(exc).__name__}: {exc}",
                  exc_info=exc)


def _utc(stamp: float | None) -> str:
    if stamp is None:
        return "?"
    return datetime.fromtimestamp(stamp, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def components(policy: Policy) -> list[Component]:
    return [AuditService(policy)]
