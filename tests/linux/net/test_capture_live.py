"""Live capture between two namespaces: real nmap, masscan, hping3 and curl on one side,
the filtered AF_PACKET socket on the other; we assert what reaches Python.

Each test starts ``capture_probe`` in namespace B (the watched side), drives real tools
from namespace A, and checks the decoded packets and the kernel's counters: probes of
every scan type arrive, answers arrive, bulk HTTP transfer does not.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import edgeguard_env
from tests.linux.net.netns import Lab, lab

pytestmark = pytest.mark.linux

NMAP, MASSCAN, HPING3, CURL = (shutil.which(t) for t in ("nmap", "masscan", "hping3", "curl"))
PORTS = "1-100"


@pytest.fixture(scope="module")
def net() -> Iterator[Lab]:
    with lab("c") as the_lab:
        yield the_lab


def capture(net: Lab, seconds: float, action: Callable[[], None],
            backend: str = "ring") -> tuple[list[dict[str, Any]], dict[str, int]]:
    proc = net.popen(net.b, [sys.executable, "-m", "tests.linux.net.capture_probe", net.veth_b,
                             str(seconds), backend],
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=edgeguard_env())
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "READY"
        action()
        out, err = proc.communicate(timeout=seconds + 30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    lines = [orjson.loads(line) for line in out.splitlines() if line.strip()]
    stats = lines[-1]["stats"]
    return lines[:-1], stats


def from_a(net: Lab, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if r["src_ip"] == net.ip_a and r["dst_ip"] == net.ip_b]


def from_b(net: Lab, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if r["src_ip"] == net.ip_b and r["dst_ip"] == net.ip_a]


SCANS = {
    # nmap option: flags of the probe (None: several kinds)
    "-sS": 0x02, "-sT": 0x02, "-sF": 0x01, "-sN": 0x00, "-sX": 0x29, "-sA": 0x10,
}


@pytest.mark.skipif(NMAP is None, reason="nmap not installed")
@pytest.mark.parametrize("option", list(SCANS))
def test_nmap_tcp_scan_probes_and_answers_reach_python(net: Lab, option: str) -> None:
    assert NMAP
    rows, stats = capture(net, 6, lambda: net.run(net.a, NMAP, "-n", "-Pn", option, "-T4",
                                                  "--max-retries", "0", "-p", PORTS, net.ip_b))
    probes = [r for r in from_a(net, rows) if r["proto"] == 6 and r["tcp_flags"] & 0x3F ==
              SCANS[option]]
    assert {r["dport"] for r in probes} >= set(range(1, 101)), option
    answers = [r for r in from_b(net, rows) if r["proto"] == 6 and r["tcp_flags"] & 0x04]
    if option in ("-sS", "-sT", "-sA"):
        assert len({r["sport"] for r in answers}) >= 90  # RSTs from closed ports
    assert stats["kernel_drops"] == 0
    assert stats["malformed"] == 0


@pytest.mark.skipif(NMAP is None, reason="nmap not installed")
def test_nmap_udp_scan_and_unreachables(net: Lab) -> None:
    assert NMAP
    rows, _ = capture(net, 8, lambda: net.run(net.a, NMAP, "-n", "-Pn", "-sU", "-T5",
                                              "--max-retries", "0", "-p", "1-30", net.ip_b))
    probes = {r["dport"] for r in from_a(net, rows) if r["proto"] == 17}
    assert probes >= set(range(1, 31))
    unreach = [r for r in from_b(net, rows) if r["proto"] == 1 and r["icmp_type"] == 3]
    assert unreach  # the kernel rate-limits them, so not one per port
    assert all(r["icmp_quote"]["src_ip"] == net.ip_a and r["icmp_quote"]["proto"] == 17
               for r in unreach)


@pytest.mark.skipif(NMAP is None, reason="nmap not installed")
def test_nmap_ping_sweep_arp_and_echo(net: Lab) -> None:
    assert NMAP
    prefix = net.ip_b.rsplit(".", 1)[0]
    rows, _ = capture(net, 6, lambda: net.run(net.a, NMAP, "-n", "-sn", "-T5",
                                              f"{prefix}.16-24"))
    arp = [r for r in rows if r["arp"] is not None and r["arp"]["sender_ip"] == net.ip_a]
    assert {r["arp"]["target_ip"] for r in arp} >= {f"{prefix}.{n}" for n in range(16, 25)}
    echo, _ = capture(net, 4, lambda: net.run(net.a, NMAP, "-n", "-sn", "-PE",
                                              "--send-ip", net.ip_b))
    assert any(r["proto"] == 1 and r["icmp_type"] == 8 for r in from_a(net, echo))


@pytest.mark.skipif(MASSCAN is None, reason="masscan not installed")
def test_masscan_probes(net: Lab) -> None:
    assert MASSCAN

    def scan() -> None:
        net.run(net.a, "/usr/bin/timeout", "-s", "INT", "-k", "3", "12", MASSCAN, net.ip_b,
                "-p1-300", "--rate", "500", "--wait", "1", "-e", net.veth_a, "--adapter-ip",
                net.ip_a, "--router-mac", net.mac_b, timeout=30, check=False)

    rows, stats = capture(net, 14, scan)
    syns = {r["dport"] for r in from_a(net, rows) if r["proto"] == 6 and r["tcp_flags"] == 0x02}
    assert len(syns) >= 250  # masscan may not finish its last few at this rate
    assert stats["kernel_drops"] == 0


@pytest.mark.skipif(HPING3 is None, reason="hping3 not installed")
def test_hping3_syn_burst(net: Lab) -> None:
    assert HPING3
    rows, stats = capture(net, 5, lambda: net.run(net.a, HPING3, "-S", "-p", "8080", "-c", "200",
                                                  "-i", "u2000", net.ip_b, check=False))
    syns = [r for r in from_a(net, rows) if r["dport"] == 8080 and r["tcp_flags"] == 0x02]
    assert len(syns) == 200
    assert stats["kernel_drops"] == 0


@pytest.mark.skipif(CURL is None, reason="curl not installed")
@pytest.mark.parametrize("backend", ["ring", "recv"])
def test_bulk_http_transfer_stays_in_the_kernel(net: Lab, tmp_path: Path, backend: str) -> None:
    assert CURL
    (tmp_path / "big.bin").write_bytes(bytes(range(256)) * 16384)  # 4 MiB
    server = net.popen(net.b, [sys.executable, "-m", "http.server", "8000", "--bind", net.ip_b,
                               "--directory", str(tmp_path)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while net.run(net.a, CURL, "-s", "-o", "/dev/null", f"http://{net.ip_b}:8000/",
                      check=False).returncode != 0:
            assert time.monotonic() < deadline, "http.server did not come up"
            time.sleep(0.2)
        before = _rx_packets(net)

        def fetch() -> None:
            for _ in range(3):
                net.run(net.a, CURL, "-s", "-o", "/dev/null", f"http://{net.ip_b}:8000/big.bin")

        rows, stats = capture(net, 4, fetch, backend)
        wire = _rx_packets(net) - before
    finally:
        server.terminate()
        server.wait(timeout=10)
    gets = [r for r in from_a(net, rows) if bytes.fromhex(r["payload"]).startswith(b"GET /big")]
    assert len(gets) == 3
    responses = [r for r in from_b(net, rows) if bytes.fromhex(r["payload"]).startswith(b"HTTP/")]
    assert len(responses) == 3
    # ~9000 frames each way cross the veth; a few dozen reach Python
    assert wire > 3000
    assert stats["frames"] < 0.03 * wire, (stats, wire)
    assert stats["kernel_drops"] == 0


def _rx_packets(net: Lab) -> int:
    out = net.run(net.b, "/usr/sbin/ip", "-s", "-j", "link", "show", net.veth_b).stdout
    link = orjson.loads(out)[0]
    return int(link["stats64"]["rx"]["packets"]) + int(link["stats64"]["tx"]["packets"])
