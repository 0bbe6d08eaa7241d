"""Real scanners and real BitTorrent through the gateway, blocked by edgeguard's nft.

These drive the block from a finding built in the test (what the scan and BitTorrent
detectors emit), through the daemon's own pipeline; the end-to-end versions with
capture and detectors running live in the daemon are in test_e2e_detect.py.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from btlab import Swarm
from helpers import Pipeline, network, policy, scan_finding
from nftlab import Lab

from edgeguard.actions.nftables.runner import Nft
from edgeguard.events import ActionKind, Mode

pytestmark = pytest.mark.linux
NMAP = "/usr/bin/nmap"


@pytest.fixture
def listeners(lab: Lab) -> Iterator[list[int]]:
    """Two TCP services on the target, killed by PID after."""
    procs = lab.serve(8080, 8443)
    try:
        yield [8080, 8443]
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(timeout=10)


def nmap_open_ports(lab: Lab) -> set[int]:
    proc = lab.ns(lab.scanner, NMAP, "-sS", "-Pn", "-n", "-p", "8000-8100,8443",
                  "--max-retries", "1", "--initial-rtt-timeout", "200ms",
                  "--max-rtt-timeout", "300ms", "--host-timeout", "30s", "-oG", "-",
                  lab.target_ip, check=False, timeout=90)
    return {int(p) for p in re.findall(r"(\d+)/open/tcp", proc.stdout)}


@pytest.mark.skipif(not os.access(NMAP, os.X_OK), reason="nmap missing (ci/apt.d/nft.txt)")
def test_nmap_finds_no_more_ports_once_the_scanner_is_blocked(
        lab: Lab, listeners: list[int]) -> None:
    lab.count_at_target(lab.scan_ip)
    pipe = Pipeline(Nft(lab.nft_prefix()), policy(network(block=30)))
    pipe.enforcer.start()
    assert nmap_open_ports(lab) == set(listeners)
    seen = lab.received(lab.scan_ip)
    assert seen >= 102  # every probe reached the target

    (result,) = pipe.submit(scan_finding(lab.scan_ip))
    assert result.ok
    assert nmap_open_ports(lab) == set()
    assert lab.received(lab.scan_ip) == seen  # not one more probe arrived


def _wait(predicate, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.25)
    return False


@pytest.mark.usefixtures("swarm_tools")
@pytest.mark.parametrize("action", [ActionKind.BLOCK, ActionKind.DROP_FLOW])
def test_bittorrent_transfer_stops_once_blocked(lab: Lab, tmp_path: Path,
                                                action: ActionKind) -> None:
    """Blocking the host, or cutting its flows with its peer (any ports), stops it."""
    pipe = Pipeline(Nft(lab.nft_prefix()), policy(network(block=60), actions=(action,)))
    pipe.enforcer.start()
    swarm = Swarm(lab, tmp_path, size=16 << 20, rate="1M")
    try:
        leecher = swarm.start()
        assert _wait(lambda: swarm.received() > 1 << 20, 30), swarm.leech_log()
        # As the BitTorrent detector reports it: the actor and its peer, no ports.
        finding = scan_finding(lab.scan_ip, kind="bittorrent", dst=lab.target_ip)
        (result,) = pipe.submit(finding)
        assert result.ok, result.detail
        time.sleep(1)  # segments already in flight past the gateway
        frozen = swarm.received()
        time.sleep(4)
        assert swarm.received() == frozen  # no more progress
        assert frozen < 16 << 20
        assert leecher.poll() is None
        assert not swarm.complete()
    finally:
        swarm.stop()


@pytest.mark.usefixtures("swarm_tools")
def test_bittorrent_completes_in_monitor_mode_with_the_would_be_action_audited(
        lab: Lab, tmp_path: Path) -> None:
    pipe = Pipeline(Nft(lab.nft_prefix()), policy(network(block=60), mode=Mode.MONITOR))
    pipe.enforcer.start()
    swarm = Swarm(lab, tmp_path, size=4 << 20, rate="4M")
    try:
        leecher = swarm.start()
        assert _wait(lambda: swarm.received() > 256 << 10, 30), swarm.leech_log()
        finding = scan_finding(lab.scan_ip, kind="bittorrent", dst=lab.target_ip, dport=6881)
        assert pipe.submit(finding) == []
        leecher.wait(timeout=60)
        assert leecher.returncode == 0, swarm.leech_log()
        assert swarm.complete()
    finally:
        swarm.stop()
    (alert,) = [r for r in pipe.sink.records if r.action == "bittorrent-syn"]
    assert alert.mode is Mode.MONITOR
    assert alert.fields["edgeguard.would_act"] == ("block",)
    assert pipe.enforcer.entries() == []
