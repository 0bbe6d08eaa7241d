"""The network component: capture workers per interface, findings into the pipeline.

Each watched interface gets ``capture_workers`` worker processes
(:mod:`edgeguard.net.worker`; with more than one each owns a share of the addresses,
:mod:`edgeguard.net.fanout`, so a scan's probes and answers all reach one of them).
A worker's reports arrive on a socket pair registered with ``loop.add_reader``:
findings go to ``ctx.submit(finding)``, counters (kernel drops included) feed
:meth:`counters` (shown by ``edgeguard status``) and a periodic ``capture-stats`` audit
record. A worker that dies is restarted after a pause and counted. A worker that cannot
start (no such interface, no capability) is audited once per cause
(``capture-worker-failed``, with its error) however often the restart repeats it, and
:meth:`problems` reports it, so ``edgeguard status`` shows the daemon degraded until a
worker of that interface runs.
An enabled network watch that names no interface is a problem too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import socket
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import structlog

from edgeguard.daemon.component import Command, Component, Context, Peer, read_only
from edgeguard.events import AuditRecord, EventKind, Outcome, Scalar
from edgeguard.net.config import NetworkConfig
from edgeguard.net.fanout import Share
from edgeguard.net.worker import MAX_MESSAGE, Forget, Reconfigure, WorkerReport, WorkerSpec
from edgeguard.policy.model import Policy

__all__ = ["NetworkComponent", "components"]

log = structlog.get_logger("edgeguard.net")

RESTART_DELAY = 2.0
STOP_GRACE = 3.0
#: Counters summed over workers for ``edgeguard status``.
SUMMED = ("frames", "decoded", "malformed", "kernel_packets", "kernel_drops", "findings",
          "findings_dropped")


@dataclass(slots=True)
class WorkerHandle:
    spec: WorkerSpec
    proc: subprocess.Popen[bytes]
    sock: socket.socket
    counters: dict[str, int] = field(default_factory=dict)
    error: str | None = None

    @property
    def name(self) -> str:
        return f"{self.spec.interface}#{self.spec.index}"


def spawn_worker(spec: WorkerSpec) -> WorkerHandle:
    """Start ``python -m edgeguard.net.worker`` with one end of a socket pair."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    try:
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "edgeguard.net.worker", str(theirs.fileno())],
            pass_fds=(theirs.fileno(),), env=env, stdin=subprocess.DEVNULL)
    finally:
        theirs.close()
    ours.send(pickle.dumps(spec, protocol=pickle.HIGHEST_PROTOCOL))
    ours.setblocking(False)
    return WorkerHandle(spec, proc, ours)


def stop_worker(handle: WorkerHandle) -> None:
    """EOF on the socket pair asks the worker to stop; then SIGTERM, then SIGKILL."""
    with contextlib.suppress(OSError):
        handle.sock.close()
    for signal_it in (None, handle.proc.terminate, handle.proc.kill):
        if signal_it is not None:
            with contextlib.suppress(ProcessLookupError):
                signal_it()
        try:
            handle.proc.wait(timeout=STOP_GRACE)
            return
        except subprocess.TimeoutExpired:
            continue


class NetworkComponent(Component):
    name = "network"

    def __init__(self, cfg: NetworkConfig, *, ring: bool = True) -> None:
        self.cfg = cfg
        self.ring = ring
        self.ctx: Context | None = None
        self.workers: list[WorkerHandle] = []
        self.worker_restarts = 0
        self.worker_errors = 0
        self.findings_submitted = 0
        self.addresses_forgotten = 0
        #: worker name -> its last error, while it has one (cleared by a clean report)
        self.failing: dict[str, str] = {}
        self._audited_causes: set[str] = set()
        self._stats_timer: asyncio.TimerHandle | None = None
        self._stopping = False

    # -- lifecycle ---------------------------------------------------------------------
    def start(self, ctx: Context) -> None:
        self.ctx = ctx
        ctx.forgetting.subscribe(self.forget)
        for spec in self._specs(self.cfg):
            self._launch(spec)
        self._stats_timer = ctx.loop.call_later(float(self.cfg.stats_interval), self._stats)

    def _specs(self, cfg: NetworkConfig) -> list[WorkerSpec]:
        out: list[WorkerSpec] = []
        count = cfg.capture_workers
        for interface in cfg.interfaces:
            out.extend(WorkerSpec(interface, cfg, ring=self.ring, index=i,
                                  share=Share(i, count) if count > 1 else None)
                       for i in range(count))
        return out

    def _launch(self, spec: WorkerSpec) -> None:
        assert self.ctx is not None
        handle = spawn_worker(spec)
        self.workers.append(handle)
        self.ctx.loop.add_reader(handle.sock.fileno(), self._readable, handle)

    def reload(self, policy: Policy) -> None:
        new = policy.network
        old = self.cfg
        self.cfg = new
        if self.ctx is None:
            return
        if (new.interfaces, new.capture_workers, new.ring_size, new.promiscuous) != (
                old.interfaces, old.capture_workers, old.ring_size, old.promiscuous):
            for handle in list(self.workers):
                self._retire(handle)
            self.failing.clear()
            for spec in self._specs(new):
                self._launch(spec)
            return
        for handle in self.workers:
            with contextlib.suppress(OSError):
                handle.sock.send(pickle.dumps(Reconfigure(new)))

    def forget(self, addresses: tuple[str, ...]) -> None:
        """An operator unblocked ``addresses``: every worker's detectors drop what they
        keep about them (a worker restarted later starts afresh anyway)."""
        message = pickle.dumps(Forget(addresses), protocol=pickle.HIGHEST_PROTOCOL)
        for handle in self.workers:
            with contextlib.suppress(OSError):
                handle.sock.send(message)
        self.addresses_forgotten += len(addresses)

    def stop(self) -> None:
        self._stopping = True
        if self._stats_timer is not None:
            self._stats_timer.cancel()
        for handle in list(self.workers):
            self._retire(handle)

    def _retire(self, handle: WorkerHandle) -> None:
        if self.ctx is not None:
            with contextlib.suppress(ValueError, OSError):
                self.ctx.loop.remove_reader(handle.sock.fileno())
        stop_worker(handle)
        if handle in self.workers:
            self.workers.remove(handle)

    # -- reports -----------------------------------------------------------------------
    def _readable(self, handle: WorkerHandle) -> None:
        while True:
            try:
                raw = handle.sock.recv(MAX_MESSAGE)
            except BlockingIOError:
                return
            except OSError:
                raw = b""
            if not raw:
                self._died(handle)
                return
            report = pickle.loads(raw)  # noqa: S301 - our own worker over a socket pair
            if isinstance(report, WorkerReport):
                self._report(handle, report)

    def _report(self, handle: WorkerHandle, report: WorkerReport) -> None:
        assert self.ctx is not None
        if report.counters:
            handle.counters = dict(report.counters)
        if report.error:
            handle.error = report.error
            self.worker_errors += 1
            self.failing[handle.name] = report.error
            log.error("capture worker failed", worker=handle.name, error=report.error)
            self._audit_failure(handle, report.error)
        elif report.counters:
            self.failing.pop(handle.name, None)
        for finding in report.findings:
            self.findings_submitted += 1
            self.ctx.submit(finding)

    def _audit_failure(self, handle: WorkerHandle, error: str) -> None:
        """Once per cause (the error text names the interface): a restart loop on a
        missing interface is one record, not one every RESTART_DELAY."""
        assert self.ctx is not None
        if error in self._audited_causes:
            return
        self._audited_causes.add(error)
        with contextlib.suppress(OSError):
            self.ctx.audit.write(AuditRecord(
                action="capture-worker-failed", kind=EventKind.PIPELINE_ERROR,
                category=("network",), outcome=Outcome.FAILURE,
                fields={"error.message": error, "edgeguard.capture.interface":
                        handle.spec.interface},
                message=f"capture worker {handle.name} cannot run: {error} (restarted "
                        f"every {RESTART_DELAY:g} s; audited once per cause)"))

    def problems(self) -> Mapping[str, str]:
        """Why this component does less than the policy asks (empty: healthy)."""
        if not self.cfg.interfaces:
            return {"network": "network.enabled but network.interfaces names none: "
                               "nothing is watched"}
        return {f"network {name}": error for name, error in sorted(self.failing.items())}

    def _died(self, handle: WorkerHandle) -> None:
        if self._stopping or self.ctx is None:
            return
        log.warning("capture worker exited", worker=handle.name, error=handle.error)
        self._retire(handle)
        self.worker_restarts += 1
        self.ctx.loop.call_later(RESTART_DELAY, self._relaunch, handle.spec)

    def _relaunch(self, spec: WorkerSpec) -> None:
        if self._stopping:
            return
        self._launch(replace(spec, config=self.cfg))

    def _stats(self) -> None:
        assert self.ctx is not None
        fields: dict[str, Scalar] = {f"edgeguard.capture.{k}": v
                                     for k, v in self.counters().items()}
        fields["edgeguard.capture.interfaces"] = tuple(self.cfg.interfaces)
        with contextlib.suppress(OSError):
            self.ctx.audit.write(AuditRecord(
                action="capture-stats", kind=EventKind.STATE, category=("network",),
                outcome=Outcome.SUCCESS, fields=fields,
                message=f"capture: {fields.get('edgeguard.capture.frames', 0)} frames, "
                        f"{fields.get('edgeguard.capture.kernel_drops', 0)} kernel drops"))
        self._stats_timer = self.ctx.loop.call_later(float(self.cfg.stats_interval), self._stats)

    # -- status --------------------------------------------------------------------------
    def counters(self) -> Mapping[str, int]:
        out: dict[str, int] = dict.fromkeys(SUMMED, 0)
        for handle in self.workers:
            for key in SUMMED:
                out[key] += handle.counters.get(key, 0)
        out["workers"] = len(self.workers)
        out["worker_restarts"] = self.worker_restarts
        out["worker_errors"] = self.worker_errors
        out["findings_submitted"] = self.findings_submitted
        out["addresses_forgotten"] = self.addresses_forgotten
        return out

    def commands(self) -> Mapping[str, Command]:
        return {"network.capture": read_only(self._cmd_capture)}

    async def _cmd_capture(self, peer: Peer, args: Mapping[str, Any]) -> list[dict[str, Any]]:
        del peer, args
        return [{"worker": h.name, "pid": h.proc.pid, "error": h.error, **h.counters}
                for h in self.workers]


def components(policy: Policy) -> list[Component]:
    """The network component when the policy enables it (with no interfaces it runs no
    worker and reports the daemon degraded)."""
    cfg = policy.network
    if not cfg.enabled:
        return []
    return [NetworkComponent(cfg)]
