"""The network component's side of the worker protocol, without root: reports become
submitted findings, counters are summed for status, a capture-stats record is audited,
a dead worker is counted and its restart scheduled (and cancelled by stop)."""

from __future__ import annotations

import asyncio
import pickle
import socket
import subprocess
from pathlib import Path

from edgeguard.audit.sink import MemorySink
from edgeguard.clock import FakeClock
from edgeguard.daemon.component import Context, Peer
from edgeguard.events import Endpoint, EventKind, Finding, Severity
from edgeguard.net.config import NetworkConfig
from edgeguard.net.service import NetworkComponent, WorkerHandle, components
from edgeguard.net.worker import WorkerReport, WorkerSpec
from edgeguard.policy.model import Policy
from edgeguard.policy.types import Duration

FINDING = Finding("scan", "syn", "10.0.0.7 syn scan", "scan:10.0.0.7:syn", Severity.MODERATE,
                  source=Endpoint(ip="10.0.0.7"), destinations=(Endpoint(ip="10.0.0.5"),))


def test_factory_needs_enabled_and_interfaces() -> None:
    assert components(Policy()) == []
    on = Policy(network=NetworkConfig(enabled=True, interfaces=("eth1",)))
    assert [c.name for c in components(on)] == ["network"]
    # enabled but naming no interface: a component with no worker that reports itself
    # degraded (issue 20: the gateway profile names none), not a silent nothing
    (bare,) = components(Policy(network=NetworkConfig(enabled=True)))
    assert isinstance(bare, NetworkComponent)
    assert "network" in bare.problems()


def test_reports_become_submissions_counters_and_audit(tmp_path: Path) -> None:
    async def scenario() -> tuple[list[tuple[Finding, str]], NetworkComponent, MemorySink,
                                  list[object]]:
        loop = asyncio.get_running_loop()
        submitted: list[Finding] = []
        sink = MemorySink()

        def submit(finding: Finding) -> object:
            submitted.append(finding)
            return None

        cfg = NetworkConfig(enabled=True, interfaces=("lo",), stats_interval=Duration(3600))
        ctx = Context(loop=loop, clock=FakeClock(), audit=sink, policy=Policy(network=cfg),
                      state_dir=tmp_path, submit=submit)  # type: ignore[arg-type]
        comp = NetworkComponent(cfg)
        comp.ctx = ctx
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ours.setblocking(False)
        proc = subprocess.Popen(["/bin/sleep", "30"])  # stands in for the worker process
        handle = WorkerHandle(WorkerSpec("lo", cfg), proc, ours)
        comp.workers.append(handle)
        loop.add_reader(ours.fileno(), comp._readable, handle)
        theirs.send(pickle.dumps(WorkerReport(findings=(FINDING,))))
        theirs.send(pickle.dumps(WorkerReport(counters={"frames": 10, "decoded": 9,
                                                        "kernel_drops": 3, "findings": 1})))
        await asyncio.sleep(0.2)
        rows = await comp.commands()["network.capture"](Peer(1, 0, 0), {})
        comp._stats()
        theirs.close()  # the worker died
        await asyncio.sleep(0.2)
        comp.stop()
        assert proc.wait(timeout=10) is not None
        return submitted, comp, sink, rows

    submitted, comp, sink, rows = asyncio.run(scenario())
    assert submitted == [FINDING]
    counters = comp.counters()
    assert counters["kernel_drops"] == 0  # the dead worker's handle is gone
    assert counters["worker_restarts"] == 1
    assert counters["findings_submitted"] == 1
    assert rows[0]["kernel_drops"] == 3
    assert rows[0]["worker"] == "lo#0"
    stats = [r for r in sink.records if r.action == "capture-stats"]
    assert len(stats) == 1
    assert stats[0].kind is EventKind.STATE
    assert stats[0].fields["edgeguard.capture.kernel_drops"] == 3
    assert stats[0].fields["edgeguard.capture.frames"] == 10
