"""The real daemon capturing in a namespace: status shows capture counters, the audit
log gets the periodic ``capture-stats`` record, a scan from the other namespace is seen.

The audit log must hold scan findings whose actor is the scanning host and no finding
about anyone else.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgeguard.daemon.control import request
from tests.linux.net.netns import Lab, daemon_in, lab

pytestmark = pytest.mark.linux

NMAP = shutil.which("nmap")


@pytest.fixture
def net() -> Iterator[Lab]:
    with lab("d") as the_lab:
        yield the_lab


def _wait(predicate: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


@pytest.mark.skipif(NMAP is None, reason="nmap not installed")
def test_daemon_captures_scan_and_reports_counters(net: Lab, tmp_path: Path) -> None:
    assert NMAP
    with daemon_in(net, tmp_path, "  stats_interval: 1s\n") as daemon:
        sock = daemon.socket

        def capturing() -> bool:
            rows = request(sock, "network.capture", {})
            return bool(rows) and all("kernel_packets" in r for r in rows)

        _wait(capturing, 15)
        net.run(net.a, NMAP, "-n", "-Pn", "-sS", "-T4", "--max-retries", "0", "-p", "1-200",
                net.ip_b)
        _wait(lambda: request(sock, "status", {})["sources"]["network"]["counters"]
              ["decoded"] >= 400, 10)
        status = request(sock, "status", {})
        counters = status["sources"]["network"]["counters"]
        assert counters["workers"] == 1
        assert counters["kernel_drops"] == 0
        assert counters["malformed"] == 0
        _wait(lambda: any(r["event"]["action"] == "capture-stats" and
                          r["edgeguard"]["capture"]["decoded"] >= 400
                          for r in daemon.records()), 10)
        # scan findings may wait for the detector's window to close
        _wait(lambda: bool(daemon.alerts()), 20)
        worker_pids = [int(r["pid"]) for r in request(sock, "network.capture", {})]
    records = daemon.records()
    stats = [r for r in records if r["event"]["action"] == "capture-stats"]
    assert stats
    assert stats[-1]["event"]["kind"] == "state"
    assert stats[-1]["edgeguard"]["capture"]["kernel_drops"] == 0
    alerts = daemon.alerts()
    assert alerts, "the scan was not reported"
    assert {a["source"]["ip"] for a in alerts} == {net.ip_a}
    assert all(a["edgeguard"]["finding"]["kind"] == "scan" for a in alerts)
    for pid in worker_pids:  # the capture workers went away with the daemon
        assert not Path(f"/proc/{pid}").exists() or b"zombie" in Path(
            f"/proc/{pid}/status").read_bytes().lower()
