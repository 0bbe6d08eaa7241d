"""Two capture workers on one interface (issue 23): a scan whose flows would have been
spread over both is reported once, by one worker, with all its contacts.

Under PACKET_FANOUT_HASH each worker got a share of the scan's flows, so each reported
(or missed) its own part of the scan. Now each worker owns a share of the addresses
(edgeguard.net.fanout): the scanner's owner reads every probe and every answer, the
other worker reads only the frames of the hosts it owns and keeps quiet about the
scanner. Real nmap from namespace A against nine addresses of namespace B (spread over
both owners), the real daemon with ``capture_workers: 2`` capturing in B.
"""

from __future__ import annotations

import ipaddress
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgeguard.daemon.control import request
from edgeguard.net.fanout import owner_of
from tests.linux.net.netns import IP, Lab, daemon_in, lab

pytestmark = pytest.mark.linux

NMAP = shutil.which("nmap")
PORTS = 40
EXTRA = [f"10.231.7.{n}" for n in range(21, 29)]


@pytest.fixture
def net() -> Iterator[Lab]:
    with lab("w") as the_lab:
        for address in EXTRA:
            the_lab.run(the_lab.b, IP, "addr", "add", f"{address}/24", "dev", the_lab.veth_b)
        yield the_lab


def _owner(ip: str) -> int:
    return owner_of(int(ipaddress.IPv4Address(ip)), 2)


def _wait(predicate: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


@pytest.mark.skipif(NMAP is None, reason="nmap not installed")
def test_a_scan_over_two_workers_is_reported_once_with_all_its_contacts(
        net: Lab, tmp_path: Path) -> None:
    assert NMAP
    targets = [net.ip_b, *EXTRA]
    scanner_owner = _owner(net.ip_a)
    # the scanned hosts belong to both workers: under a flow hash, or an ownership by
    # destination, the scan would be split
    assert {_owner(t) for t in targets} == {0, 1}
    policy = "  capture_workers: 2\n  scan:\n    idle: 1s\n"  # summaries come soon
    with daemon_in(net, tmp_path, policy) as daemon:
        sock = daemon.socket
        _wait(lambda: len([r for r in request(sock, "network.capture", {})
                           if "kernel_packets" in r]) == 2, 15)
        net.run(net.a, NMAP, "-n", "-Pn", "-sS", "-T4", "--max-retries", "0", "-p",
                f"1-{PORTS}", *targets)
        probes = len(targets) * PORTS

        def complete() -> bool:  # a report (or its summary) that counts every contact
            return any(a["edgeguard"].get("scan", {}).get("distinct_hosts") == len(targets)
                       and a["edgeguard"]["scan"].get("distinct_ports") == PORTS
                       for a in daemon.alerts())

        _wait(complete, 25)
        time.sleep(2)  # a second (wrong) report from the other worker would come by now
        rows = {r["worker"]: r for r in request(sock, "network.capture", {})}
    alerts = [a for a in daemon.alerts() if a["edgeguard"]["finding"]["kind"] == "scan"]
    assert {a["source"]["ip"] for a in alerts} == {net.ip_a}
    reports = [a for a in alerts if not a["edgeguard"]["scan"].get("summary")]
    summaries = [a for a in alerts if a["edgeguard"]["scan"].get("summary")]
    # once: one report per subtype (and one closing summary), not one per worker
    assert len(reports) == len({a["edgeguard"]["finding"]["subtype"] for a in reports}) == 1
    assert len(summaries) <= 1  # (none when the report already counted every probe)
    summary = alerts[-1]["edgeguard"]["scan"]
    assert summary["distinct_hosts"] == len(targets)
    assert summary["distinct_ports"] == PORTS
    assert summary["probes"] >= probes
    # who read what: the scanner's owner everything, the other worker its hosts' share
    owner = rows[f"{net.veth_b}#{scanner_owner}"]
    other = rows[f"{net.veth_b}#{1 - scanner_owner}"]
    assert owner["findings"] >= 1
    assert owner["findings_not_owned"] == 0
    # the other worker saw its hosts' part of the scan, found it, and left it to the owner
    assert other["findings"] == 0
    assert other["findings_not_owned"] >= 1
    theirs = sum(_owner(t) != scanner_owner for t in targets)
    assert owner["decoded"] >= 2 * probes  # every probe and its RST/SYN-ACK
    assert 2 * theirs * PORTS <= other["decoded"] < owner["decoded"]
    assert owner["kernel_drops"] == other["kernel_drops"] == 0
