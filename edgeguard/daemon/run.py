"""The daemon: load the policy, open the audit log, start components, serve, reload, stop.

One asyncio loop runs udev, netlink, the control socket and timers; packet capture
runs in its own worker and hands findings back (so a flood never delays a USB
decision). SIGHUP (or ``reload``) loads the policy in a bounded worker process
(:mod:`edgeguard.policy.worker`) while the loop goes on serving; a bad policy, or one
that runs past the worker's time or memory limit, is refused, audited, and the running
policy stays. SIGTERM stops cleanly: components stop, the last record is
written and synced.
"""

from __future__ import annotations

import asyncio
import dataclasses
import grp
import os
import signal
import socket
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
import structlog

from edgeguard import __version__
from edgeguard.actions.base import ActionProvider
from edgeguard.actions.worker import ActionWorker, InlineRunner
from edgeguard.audit.aggregate import Aggregator
from edgeguard.audit.writer import AuditWriter
from edgeguard.clock import Clock, SystemClock
from edgeguard.daemon.component import (
    Command,
    Component,
    Context,
    Degradable,
    Peer,
    changing,
    read_only,
)
from edgeguard.daemon.control import CommandFailed, ControlServer, disabled_features
from edgeguard.daemon.control_limits import RefusalSummary
from edgeguard.daemon.notify import Notifier, watchdog_interval
from edgeguard.daemon.pipeline import Pipeline
from edgeguard.daemon.privileges import drop_capabilities, set_no_new_privs
from edgeguard.daemon.registry import build_components
from edgeguard.decision import DecisionEngine
from edgeguard.ecs import Observer, iso_timestamp
from edgeguard.events import AuditRecord, Decision, EventKind, Finding, Outcome, Scalar
from edgeguard.policy.load import LoadedPolicy, PolicyError, default_layers, load_policy
from edgeguard.policy.model import Policy
from edgeguard.policy.worker import DEFAULT_WORKER_LIMITS, WorkerLimits, load_policy_bounded

__all__ = ["Daemon", "DaemonOptions", "StartupError"]

log = structlog.get_logger("edgeguard.daemon")

#: How often summaries of suppressed repeats are checked (they are written once their
#: own window, audit.aggregate_window, has passed).
_SUMMARY_INTERVAL = 5.0


class StartupError(Exception):
    """The daemon cannot start for a reason the policy check could not see (exit 2)."""


@dataclasses.dataclass(frozen=True, slots=True)
class DaemonOptions:
    policy_files: tuple[Path, ...] = ()
    profile: str | None = None
    #: The files are /etc/edgeguard's (no --policy): a reload lists policy.d again, so
    #: a drop-in added since the start is read (and refused if broken).
    rescan_etc: bool = False
    audit_dir: Path | None = None
    control_socket: Path | None = None
    state_dir: Path | None = None
    #: False: leave remote audit destinations to ``edgeguard audit ship`` (the unit's
    #: daemon may open no Internet socket).
    ship_remote: bool = True
    #: Time and memory a reload's policy load may take (in its worker process).
    reload_limits: WorkerLimits = DEFAULT_WORKER_LIMITS


class Daemon:
    def __init__(self, options: DaemonOptions, loaded: LoadedPolicy,
                 clock: Clock | None = None) -> None:
        self.options = options
        self.loaded = loaded
        self.clock = clock or SystemClock()
        policy = loaded.policy
        self.audit_dir = options.audit_dir or Path(policy.audit.directory)
        self.socket_path = options.control_socket or Path(policy.daemon.control_socket)
        self.state_dir = options.state_dir or Path(policy.daemon.state_directory)
        self.host = policy.daemon.host_name or socket.gethostname()
        self.notifier = Notifier()
        self.started = self.clock.monotonic()
        self.reloads = 0
        self.reload_failures = 0
        #: Why the last reload was refused (file:line: field: message), () if it was not.
        self.reload_errors: tuple[str, ...] = ()
        self.components: list[Component] = []
        self.component_errors: dict[str, str] = {}
        self._stop = asyncio.Event()
        self.control: ControlServer | None = None
        self._reload_lock = asyncio.Lock()
        self._reloads_pending: set[asyncio.Task[bool]] = set()
        self.writer = AuditWriter(
            self.audit_dir, clock=self.clock, host=self.host,
            segment_size=policy.audit.segment_size, fsync_interval=policy.audit.fsync_interval,
            file_mode=policy.audit.file_mode, file_group=_audit_group(policy),
            observer=Observer.local(self.host, "kiosk" if policy.kiosk.enabled else "gateway"),
        )
        # Records the policy's exceptions coming into force and expiring.
        self.engine = DecisionEngine(policy, self.clock, audit=self.writer)
        # Suppressed repeats (a flood of one finding) become periodic summary records, so
        # every attempt is accounted for without a line per packet.
        self.aggregator = Aggregator(self.writer, self.clock,
                                     window=policy.audit.aggregate_window,
                                     max_keys=policy.audit.aggregate_max_keys)
        self.pipeline = Pipeline(self.engine, self.writer, summariser=self.aggregator)
        self.worker: ActionWorker | None = None

    # -- records ------------------------------------------------------------------
    def record(self, action: str, message: str, *, outcome: Outcome = Outcome.SUCCESS,
               kind: EventKind = EventKind.EVENT, fields: Mapping[str, Scalar] | None = None,
               ) -> None:
        try:
            self.writer.write(AuditRecord(
                action=action, message=message, kind=kind, category=("configuration",),
                event_type=("change",), outcome=outcome, fields=dict(fields or {}),
            ))
        except OSError as exc:
            log.error("audit write failed", action=action, error=str(exc))

    # -- lifecycle ----------------------------------------------------------------
    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        mode = self.loaded.policy.mode.value
        self.record("edgeguard-started", f"edgeguard {__version__} started in {mode} mode"
                    + (" (decisions are audited, nothing is enforced)"
                       if mode == "monitor" else ""), fields={
            "edgeguard.mode": mode,
            "edgeguard.policy.digest": self.loaded.digest,
            "edgeguard.policy.sources": self.loaded.sources,
            "process.pid": os.getpid(),
        })
        # Actions that wait on the system (nft, sysfs) run on the worker thread.
        self.worker = worker = ActionWorker(loop)
        self.pipeline.runner = worker
        worker.start()
        ctx = Context(loop=loop, clock=self.clock, audit=self.writer, policy=self.loaded.policy,
                      state_dir=self.state_dir, submit=self._submit,
                      ship_remote=self.options.ship_remote, worker=worker,
                      decider=self.engine)
        self.components = build_components(self.loaded.policy)
        for comp in self.components:
            self._start_component(comp, ctx)
        control = ControlServer(self.socket_path, self._handlers(),
                                admin_gid=_group_id(self.loaded.policy.daemon.admin_group),
                                on_change=self._audit_command,
                                config=self.loaded.policy.daemon.control,
                                on_refusals=self._audit_refusals, clock=self.clock,
                                disabled=disabled_features(_sections_enabled(self.loaded.policy)))
        self.control = control
        await control.start()
        if control.problem:
            self.record("control-socket-restricted", control.problem, outcome=Outcome.FAILURE,
                        kind=EventKind.PIPELINE_ERROR, fields={"error.message": control.problem})
        if self.loaded.policy.daemon.drop_capabilities and os.geteuid() == 0:
            self._drop_privileges()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, self._reload_soon)
        loop.call_later(_SUMMARY_INTERVAL, self._flush_summaries, loop)
        watchdog = watchdog_interval()
        if watchdog is not None:
            loop.call_later(watchdog, self._watchdog, loop, watchdog)
        self.notifier.ready(f"enforcing policy {self.loaded.digest[:12]}")
        log.info("ready", socket=str(self.socket_path), audit=str(self.audit_dir))
        await self._stop.wait()
        self.notifier.stopping()
        await control.close()
        # Finish (or record as not done) the queued actions before the components that
        # carry them out stop; anything submitted from here on runs inline.
        for job, _done in worker.stop():
            self.pipeline.abandon(job, "the daemon stopped before it ran")
        self.pipeline.runner = InlineRunner()
        for comp in reversed(self.components):
            try:
                comp.stop()
            except Exception as exc:  # noqa: BLE001 - stopping must go on
                log.error("component stop failed", component=comp.name, error=str(exc))
        self.aggregator.flush(force=True)
        self.record("edgeguard-stopped", "edgeguard stopped", fields={
            "edgeguard.records_written": self.writer.records_written,
        })
        self.writer.close()
        return 0

    def stop(self) -> None:
        self._stop.set()

    def _start_component(self, comp: Component, ctx: Context) -> None:
        try:
            comp.start(ctx)
        except Exception as exc:  # noqa: BLE001 - one broken source must not stop the rest
            self.component_errors[comp.name] = f"{type(exc).__name__}: {exc}"
            self.record("component-start-failed", f"{comp.name} could not start: {exc}",
                        outcome=Outcome.FAILURE, kind=EventKind.PIPELINE_ERROR,
                        fields={"edgeguard.component": comp.name, "error.message": str(exc)})
            return
        if isinstance(comp, ActionProvider):
            self.pipeline.add_actions(comp.actions(), comp.area)

    def _drop_privileges(self) -> None:
        try:
            set_no_new_privs()
            drop_capabilities()
        except OSError as exc:
            self.record("privileges-drop-failed", f"could not drop capabilities: {exc}",
                        outcome=Outcome.FAILURE, kind=EventKind.PIPELINE_ERROR,
                        fields={"error.message": str(exc)})

    def _audit_command(self, peer: Peer, command: str, args: Mapping[str, Any], ok: bool,
                       error: str) -> None:
        fields: dict[str, Scalar] = {
            "user.id": str(peer.uid),
            "group.id": str(peer.gid),
            "process.pid": peer.pid,
            "process.command_line": peer.command_line,
            "edgeguard.control.command_line_source": peer.command_line_source,
            "edgeguard.control.command": command,
            "edgeguard.control.args": orjson.dumps(dict(args)).decode()[:1000],
        }
        if error:
            fields["error.message"] = error
        self.record("control-command", f"control command {command} from uid {peer.uid}"
                    + ("" if ok else f" refused or failed: {error}"),
                    outcome=Outcome.SUCCESS if ok else Outcome.FAILURE, fields=fields)

    def _audit_refusals(self, summary: RefusalSummary) -> None:
        """One record per peer uid and window for a flood of refusals (issue 16 §2)."""
        fields: dict[str, Scalar] = {
            "user.id": str(summary.uid),
            "event.start": iso_timestamp(summary.start),
            "event.end": iso_timestamp(summary.end),
            "edgeguard.control.refused": summary.total,
            "edgeguard.control.audited_individually": summary.audited,
            "edgeguard.control.commands": tuple(
                f"{name}={count}" for name, count in sorted(summary.commands.items())),
        }
        for what, count in summary.counts.items():
            fields[f"edgeguard.control.{what.value.replace('-', '_')}"] = count
        self.record("control-refusals", f"{summary.total} control requests from uid "
                    f"{summary.uid} refused", outcome=Outcome.FAILURE, fields=fields)

    def _submit(self, finding: Finding) -> Decision:
        return self.pipeline.submit(finding)

    def _flush_summaries(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            self.aggregator.flush()
            self.engine.tick()
        finally:
            if not self._stop.is_set():
                loop.call_later(_SUMMARY_INTERVAL, self._flush_summaries, loop)

    def _watchdog(self, loop: asyncio.AbstractEventLoop, interval: float) -> None:
        self.notifier.watchdog()
        loop.call_later(interval, self._watchdog, loop, interval)

    def _reload_soon(self) -> None:
        """SIGHUP: start a reload; the handler returns at once."""
        task = asyncio.get_running_loop().create_task(self.reload())
        self._reloads_pending.add(task)
        task.add_done_callback(self._reloads_pending.discard)

    async def reload(self) -> bool:
        """Load the policy again in a bounded worker; keep the running one if the new
        one has any error. Reloads run one at a time; the loop serves meanwhile."""
        async with self._reload_lock:
            return await self._reload()

    async def _reload(self) -> bool:
        self.notifier.reloading()
        old = self.loaded.digest
        try:
            files = tuple(default_layers()) if self.options.rescan_etc \
                else self.options.policy_files
            loaded = await load_policy_bounded(files, self.options.profile,
                                               self.options.reload_limits)
        except PolicyError as exc:
            self.reload_failures += 1
            errors = tuple(str(i) for i in exc.issues)
            self.reload_errors = errors
            self.record("policy-reload-failed",
                        f"policy reload refused ({len(errors)} errors); running policy kept",
                        outcome=Outcome.FAILURE, kind=EventKind.PIPELINE_ERROR, fields={
                            "edgeguard.policy.digest": old,
                            "edgeguard.policy.errors": errors[:50],
                            "error.message": errors[0] if errors else "",
                        })
            log.error("policy reload refused", errors=errors)
            self.notifier.ready("policy reload refused; running policy kept")
            return False
        self.loaded = loaded
        self.reload_errors = ()
        self.engine.reload(loaded.policy)
        for comp in self.components:
            if comp.name in self.component_errors:
                continue
            try:
                comp.reload(loaded.policy)
            except Exception as exc:  # noqa: BLE001
                log.error("component reload failed", component=comp.name, error=str(exc))
        self.reloads += 1
        self.record("policy-reloaded", "policy reloaded", fields={
            "edgeguard.policy.digest": loaded.digest,
            "edgeguard.policy.previous_digest": old,
            "edgeguard.policy.sources": loaded.sources,
        })
        self.notifier.ready(f"enforcing policy {loaded.digest[:12]}")
        return True

    # -- control ------------------------------------------------------------------
    def _handlers(self) -> dict[str, Command]:
        handlers = {"status": read_only(self._status), "reload": changing(self._reload_cmd)}
        for comp in self.components:
            if comp.name not in self.component_errors:
                handlers.update(comp.commands())
        return handlers

    async def _status(self, peer: Peer, args: Mapping[str, Any]) -> dict[str, Any]:
        return self.status()

    async def _reload_cmd(self, peer: Peer, args: Mapping[str, Any]) -> dict[str, Any]:
        if not await self.reload():
            # The command's audit record then has outcome failure; the peer gets the errors.
            raise CommandFailed(f"policy reload refused ({len(self.reload_errors)} errors); "
                                f"running policy {self.loaded.digest[:12]} kept",
                                self.reload_errors[:50])
        return {"reloaded": True, "policy_digest": self.loaded.digest}

    def status(self) -> dict[str, Any]:
        seq, head = self.writer.head
        sources: dict[str, Any] = {}
        for comp in self.components:
            entry: dict[str, Any] = {"running": comp.name not in self.component_errors}
            if comp.name in self.component_errors:
                entry["error"] = self.component_errors[comp.name]
            else:
                entry["counters"] = dict(comp.counters())
            sources[comp.name] = entry
        degraded = dict(self.component_errors)
        for comp in self.components:
            if isinstance(comp, Degradable) and comp.name not in self.component_errors:
                degraded.update(comp.problems())
        return {
            "version": __version__,
            "pid": os.getpid(),
            "uptime_s": round(self.clock.monotonic() - self.started, 3),
            "mode": self.loaded.policy.mode.value,
            "policy_digest": self.loaded.digest,
            "policy_sources": list(self.loaded.sources),
            "reloads": self.reloads,
            "reload_failures": self.reload_failures,
            "audit": {
                "directory": str(self.audit_dir),
                "chain_id": self.writer.chain_id,
                "sequence": seq,
                "head_hash": head,
                "records_written": self.writer.records_written,
                "write_errors": self.writer.write_errors,
            },
            "pipeline": {**self.pipeline.counters(),
                         **(self.worker.counters() if self.worker is not None else {}),
                         "repeats_summarised": self.aggregator.summarised,
                         "repeats_pending": self.aggregator.pending},
            "sources": sources,
            "control": self.control.counters() if self.control is not None else {},
            "degraded": degraded,
        }


def _audit_group(policy: Policy) -> int:
    """``audit.file_group`` resolved once at start. The loader already refused an
    unknown group in a policy file; this catches the built-in default on a host without
    it, or a group deleted since the policy was checked."""
    name = policy.audit.file_group
    try:
        return name.gid
    except KeyError:
        raise StartupError(f"audit.file_group: no group {str(name)!r} on this host; create "
                           "it or set audit.file_group to an existing group") from None


def _sections_enabled(policy: Policy) -> dict[str, bool]:
    """Which feature sections the policy turns on (the control socket says so when a
    command is aimed at one that is off)."""
    return {"media": policy.media.enabled, "network": policy.network.enabled,
            "wifi": policy.wifi.enabled, "kiosk": policy.kiosk.enabled}


def _group_id(name: str | None) -> int | None:
    if name is None:
        return None
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        log.warning("admin group does not exist; control socket is root-only", group=name)
        return None


def start(options: DaemonOptions, files: Sequence[Path]) -> int:
    """Load the policy and run the daemon until SIGTERM. Exit 2 on a bad policy."""
    loaded = load_policy(files, options.profile)
    daemon = Daemon(options, loaded)
    return asyncio.run(daemon.run())
