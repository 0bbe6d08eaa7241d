"""The daemon watching namespace B while real tools run from namespace A: the audit log
must hold exactly the expected findings (actor = A) and nothing about anyone else.

One daemon for the module; each test drives one tool from its own address in A (the
detectors rightly report a scanning host once, not once per scan type) and waits for its
finding. A benign HTTP exchange between the same hosts runs first and must produce
nothing; the flood runs before the scans (the flood detector keys senders by MAC, and a
MAC that just probed hundreds of ports is a scanner, not a flooder).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from edgeguard.daemon.control import request
from tests.linux.net.netns import Lab, NetDaemon, daemon_in, lab

pytestmark = pytest.mark.linux

NMAP, MASSCAN, HPING3, CURL = (shutil.which(t) for t in ("nmap", "masscan", "hping3", "curl"))
#: one source address per tool run (added to A's veth); -sT uses A's primary address
SOURCES = {"-sS": 31, "-sF": 32, "-sN": 33, "-sX": 34, "-sA": 35, "-sU": 36, "sweep": 37,
           "masscan": 38, "hping3": 39}


def source(net: Lab, key: str) -> str:
    return f"{net.ip_a.rsplit('.', 1)[0]}.{SOURCES[key]}"


@dataclass
class Watched:
    net: Lab
    daemon: NetDaemon

    def alerts(self) -> list[dict[str, Any]]:
        return self.daemon.alerts()

    def wait_for(self, kind: str, subtype: str | None, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for alert in self.alerts():
                finding = alert["edgeguard"]["finding"]
                if finding["kind"] == kind and subtype in (None, finding["subtype"]):
                    return alert
            time.sleep(0.3)
        got = [(a["edgeguard"]["finding"]["kind"], a["edgeguard"]["finding"]["subtype"])
               for a in self.alerts()]
        raise AssertionError(f"no {kind}/{subtype} within {timeout}s; got {got}")


@pytest.fixture(scope="module")
def watched(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Watched]:
    tmp = tmp_path_factory.mktemp("live")
    with lab("f") as net:
        for key in SOURCES:
            net.run(net.a, "/usr/sbin/ip", "addr", "add", f"{source(net, key)}/24", "dev",
                    net.veth_a)
        with daemon_in(net, tmp) as daemon:
            time.sleep(1.0)  # the worker binds its socket after READY
            yield Watched(net, daemon)
        alerts = daemon.alerts()
    # Exactly the expected findings: every alert names one of A's addresses as actor, or
    # A's MAC for the one finding the lab itself causes (A's interface answers for all
    # its addresses: one MAC claiming many IPs is what the ARP detector reports).
    mine = {net.ip_a} | {source(net, key) for key in SOURCES}
    for alert in alerts:
        finding = alert["edgeguard"]["finding"]
        if finding["kind"] == "arp-spoof":
            assert finding["subtype"] == "mac-claims-many-ips"
            assert alert["source"]["mac"] == net.mac_a
        else:
            assert alert["source"].get("ip") in mine, alert


@pytest.mark.skipif(CURL is None, reason="curl not installed")
def test_benign_http_is_not_reported(watched: Watched, tmp_path: Path) -> None:
    assert CURL
    net = watched.net
    (tmp_path / "page.html").write_text("<html>hello</html>" * 500)
    server = net.popen(net.b, [sys.executable, "-m", "http.server", "8000", "--bind", net.ip_b,
                               "--directory", str(tmp_path)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        ok = 0
        deadline = time.monotonic() + 20
        while ok < 10 and time.monotonic() < deadline:
            ok += net.run(net.a, CURL, "-s", "-o", "/dev/null", f"http://{net.ip_b}:8000/page.html",
                          check=False).returncode == 0
            time.sleep(0.2)
        assert ok == 10
    finally:
        server.terminate()
        server.wait(timeout=10)
    time.sleep(3)  # let a tick pass
    assert watched.alerts() == []


@pytest.mark.skipif(HPING3 is None, reason="hping3 not installed")
def test_hping3_syn_flood_is_reported(watched: Watched) -> None:
    assert HPING3
    net = watched.net
    net.run(net.a, HPING3, "-S", "-p", "8080", "-c", "20000", "-i", "u50", "-a",
            source(net, "hping3"), net.ip_b, timeout=60, check=False)
    alert = watched.wait_for("flood", None)
    assert alert["destination"]["ip"] == net.ip_b
    # the worker had the kernel sample the flood while it lasted, and let go after
    rows = request(watched.daemon.socket, "network.capture", {})
    assert rows[0]["shed_swaps"] >= 1, rows
    deadline = time.monotonic() + 30
    while rows[0]["shed_swaps"] < 2 or rows[0]["shed_targets"] != 0:
        assert time.monotonic() < deadline, rows
        time.sleep(0.5)
        rows = request(watched.daemon.socket, "network.capture", {})
    assert rows[0]["flood.shed_weighted"] > 0, rows


@pytest.mark.skipif(NMAP is None, reason="nmap not installed")
@pytest.mark.parametrize(("option", "subtype"), [
    ("-sS", "syn"), ("-sT", "connect"), ("-sF", "fin"), ("-sN", "null"), ("-sX", "xmas"),
    ("-sA", "ack"), ("-sU", "udp"),
])
def test_nmap_scan_is_reported_with_its_type(watched: Watched, option: str,
                                             subtype: str) -> None:
    assert NMAP
    net = watched.net
    spoof = [] if option == "-sT" else ["-S", source(net, option), "-e", net.veth_a]
    net.run(net.a, NMAP, "-n", "-Pn", option, *spoof, "-T4", "--max-retries", "0", "-p",
            "1-200", net.ip_b, timeout=120)
    alert = watched.wait_for("scan", subtype)
    assert alert["source"]["ip"] == (net.ip_a if option == "-sT" else source(net, option))
    assert alert["destination"]["ip"] == net.ip_b


@pytest.mark.skipif(NMAP is None, reason="nmap not installed")
def test_nmap_ping_sweep_is_reported(watched: Watched) -> None:
    assert NMAP
    net = watched.net
    prefix = net.ip_b.rsplit(".", 1)[0]
    net.run(net.a, NMAP, "-n", "-sn", "-T5", "-S", source(net, "sweep"), "-e", net.veth_a,
            f"{prefix}.1-60", timeout=120)
    alert = watched.wait_for("scan", "ping-sweep")
    assert alert["source"]["ip"] == source(net, "sweep")


@pytest.mark.skipif(MASSCAN is None, reason="masscan not installed")
def test_masscan_is_reported(watched: Watched) -> None:
    assert MASSCAN
    net = watched.net
    net.run(net.a, "/usr/bin/timeout", "-s", "INT", "-k", "3", "15", MASSCAN, net.ip_b,
            "-p1-2000", "--rate", "1000", "--wait", "1", "-e", net.veth_a, "--adapter-ip",
            source(net, "masscan"), "--router-mac", net.mac_b, timeout=30, check=False)
    alert = watched.wait_for("scan", None)
    assert any(a["source"]["ip"] == source(net, "masscan") for a in watched.alerts()), alert
