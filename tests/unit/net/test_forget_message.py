"""Issue 21: ``net unblock`` reaches the capture workers' detectors (no root).

* the enforcement component's ``net.unblock`` passes the address (as packets spell it)
  through ``Context.forgetting`` to the network component, which sends a
  :class:`~edgeguard.net.worker.Forget` message to every worker;
* a worker handling that message makes its detector chain forget the address;
* end to end without the kernel: a scan is blocked, closed (past ``scan.idle``),
  unblocked, and the same host's fresh scan is detected and blocked again (on the old
  main the detector stayed silent for ``network.scan.window``).
"""

from __future__ import annotations

import asyncio
import pickle
import socket
import subprocess
from pathlib import Path

import yaml

from edgeguard.audit.sink import MemorySink
from edgeguard.clock import FakeClock
from edgeguard.daemon.component import Context, Forgetting
from edgeguard.events import Finding
from edgeguard.net.config import NetworkConfig
from edgeguard.net.detect import DetectorChain
from edgeguard.net.detect.scan import ScanDetector
from edgeguard.net.inspect import Inspector
from edgeguard.net.packet import Packet
from edgeguard.net.service import NetworkComponent, WorkerHandle
from edgeguard.net.worker import MAX_MESSAGE, Forget, Worker, WorkerSpec
from edgeguard.policy.load import load_policy
from edgeguard.policy.model import Policy
from edgeguard.policy.types import Duration
from tests.unit.actions.test_nft_repeat_and_manual import Daemonish
from tests.unit.net.detect._samples import parse_packets

DATA = Path(__file__).resolve().parents[2] / "data" / "detect"
SCANNER = "10.0.0.7"


def syn_scan(shift: float) -> list[Packet]:
    cases = yaml.safe_load((DATA / "scan.yaml").read_text())["cases"]
    packets = parse_packets(cases[0]["packets"])  # SYN scan from 10.0.0.7
    for pkt in packets:
        pkt.ts += shift
    return packets


def test_forgetting_spells_addresses_as_packets_do() -> None:
    bus = Forgetting()
    heard: list[tuple[str, ...]] = []
    bus.subscribe(heard.append)
    assert bus.forget(["FD00:0:0::0007", " 02:00:00:00:00:2D", "10.0.0.7", "10.0.0.7", ""]) \
        == ("fd00::7", "02:00:00:00:00:2d", "10.0.0.7")
    assert heard == [("fd00::7", "02:00:00:00:00:2d", "10.0.0.7")]
    assert bus.forget([]) == ()
    assert len(heard) == 1  # nothing to forget: nobody is bothered


def test_the_network_component_sends_forget_to_every_worker(tmp_path: Path) -> None:
    async def scenario() -> list[object]:
        cfg = NetworkConfig(enabled=True, interfaces=(), stats_interval=Duration(3600))
        ctx = Context(loop=asyncio.get_running_loop(), clock=FakeClock(), audit=MemorySink(),
                      policy=Policy(network=cfg), state_dir=tmp_path,
                      submit=lambda f: None)  # type: ignore[arg-type,return-value]
        comp = NetworkComponent(cfg)
        comp.start(ctx)  # no interface: no worker spawned, but subscribed
        theirs: list[socket.socket] = []
        for index in range(2):  # two stand-in workers
            ours, their_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            theirs.append(their_end)
            comp.workers.append(WorkerHandle(WorkerSpec("lo", cfg, index=index),
                                             subprocess.Popen(["/bin/sleep", "30"]), ours))
        procs = [h.proc for h in comp.workers]
        ctx.forgetting.forget(["10.0.0.7"])
        got: list[object] = []
        for sock in theirs:
            sock.setblocking(False)
            try:
                while True:
                    got.append(pickle.loads(sock.recv(MAX_MESSAGE)))
            except BlockingIOError:
                pass
        assert comp.counters()["addresses_forgotten"] == 1
        for proc in procs:  # (a stand-in does not stop on EOF)
            proc.kill()
            proc.wait(timeout=10)
        comp.stop()
        for sock in theirs:
            sock.close()
        return got

    assert asyncio.run(scenario()) == [Forget(("10.0.0.7",)), Forget(("10.0.0.7",))]


def test_a_worker_handling_forget_drops_the_address_from_its_detectors() -> None:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    chain = DetectorChain(NetworkConfig(enabled=True), FakeClock())
    worker = Worker.__new__(Worker)  # no capture socket: only the control path is tested
    worker.ctl, worker.inspector, worker.forgotten = theirs, Inspector(chain), 0
    for pkt in syn_scan(0.0):
        chain.feed(pkt)
    assert chain.counters()["scan.sources"] == 1
    ours.send(pickle.dumps(Forget(("10.0.0.99",))))
    assert worker.control()
    assert chain.counters()["scan.sources"] == 1  # another address: kept
    ours.send(pickle.dumps(Forget((SCANNER,))))
    assert worker.control()
    assert chain.counters()["scan.sources"] == 0
    assert worker.forgotten == 2
    ours.close()
    assert not worker.control()  # EOF: stop
    theirs.close()


def _scan_blocked_closed_unblocked_and_again(tmp_path: Path, wired: bool) -> tuple[
        list[Finding], dict[str, float]]:
    daemon = Daemonish(tmp_path)
    try:
        chain = DetectorChain(load_policy((), "gateway").policy.network, FakeClock())
        ctx = daemon.comp._ctx
        assert ctx is not None
        if wired:  # what the network component does, minus the worker process
            ctx.forgetting.subscribe(chain.forget)
        first = [f for pkt in syn_scan(0.0) for f in chain.feed(pkt)]
        first += [f for t in range(1, 10) for f in chain.tick(float(t))]
        assert [f.subtype for f in first] == ["syn"]
        for finding in first:
            daemon.pipe.submit(finding)
        assert SCANNER in daemon.blocked()
        (scan,) = [d for d in chain.detectors if isinstance(d, ScanDetector)]
        assert SCANNER in scan.active  # the scan is open
        chain.tick(60.0)  # past scan.idle: the detector closes it
        assert SCANNER not in scan.active
        daemon.call("net.unblock", {"address": SCANNER})
        assert daemon.blocked() == {}
        fresh = [f for pkt in syn_scan(90.0) for f in chain.feed(pkt)]
        fresh += [f for t in range(91, 100) for f in chain.tick(float(t))]
        for finding in fresh:
            daemon.pipe.submit(finding)
        return fresh, daemon.blocked()
    finally:
        daemon.close()


def test_a_fresh_scan_after_the_first_was_closed_is_blocked_again(tmp_path: Path) -> None:
    fresh, blocked = _scan_blocked_closed_unblocked_and_again(tmp_path, wired=True)
    assert [f.subtype for f in fresh] == ["syn"]
    assert SCANNER in blocked


def test_unwired_the_fresh_scan_goes_unseen(tmp_path: Path) -> None:
    """The old main's behaviour, kept as the premise of the test above."""
    fresh, blocked = _scan_blocked_closed_unblocked_and_again(tmp_path, wired=False)
    assert fresh == []
    assert blocked == {}
