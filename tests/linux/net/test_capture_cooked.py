"""Live capture on links without an Ethernet header (issue 19): a tun device (raw IP,
as a WireGuard/VPN LAN side) and the ``any`` pseudo-interface. The socket is cooked
(``SOCK_DGRAM``), the kernel filter reads the ethertype from ``SKF_AD_PROTOCOL``; real
nmap probes through the tun link and their answers must reach Python decoded, bulk
must not."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import edgeguard_env
from tests.linux.net.netns import Lab, lab

pytestmark = pytest.mark.linux

NMAP = shutil.which("nmap")
TUN_LINK = Path(__file__).resolve().parents[2] / "data" / "pcaps" / "tun_link.py"
TUN_A, TUN_B = "172.31.77.1", "172.31.77.2"


@pytest.fixture(scope="module")
def tun() -> Iterator[tuple[Lab, str]]:
    """The lab plus a tun link between its namespaces (device egtb in namespace b)."""
    with lab("k") as net:
        link = subprocess.Popen([sys.executable, str(TUN_LINK), net.a, "egta", net.b, "egtb",
                                 "120"])
        try:
            for _ in range(100):
                if net.run(net.b, "ip", "link", "show", "egtb", check=False).returncode == 0:
                    break
                time.sleep(0.1)
            net.run(net.a, "ip", "addr", "add", f"{TUN_A}/30", "dev", "egta")
            net.run(net.b, "ip", "addr", "add", f"{TUN_B}/30", "dev", "egtb")
            net.run(net.a, "ip", "link", "set", "egta", "up")
            net.run(net.b, "ip", "link", "set", "egtb", "up")
            yield net, "egtb"
        finally:
            link.kill()
            link.wait()


def _capture(net: Lab, iface: str, backend: str,
             nmap_args: list[str]) -> tuple[list[dict[str, Any]], dict[str, int]]:
    proc = net.popen(net.b, [sys.executable, "-m", "tests.linux.net.capture_probe", iface, "5",
                             backend], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                     env=edgeguard_env())
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "READY"
        assert NMAP
        net.run(net.a, NMAP, "-n", "-Pn", "-sS", "-T4", "--max-retries", "0", *nmap_args)
        out, err = proc.communicate(timeout=40)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    lines = [orjson.loads(line) for line in out.splitlines() if line.strip()]
    return lines[:-1], lines[-1]["stats"]


@pytest.mark.skipif(NMAP is None, reason="nmap not installed")
@pytest.mark.parametrize("backend", ["ring", "recv"])
def test_tun_link_probes_and_answers_reach_python(tun: tuple[Lab, str], backend: str) -> None:
    net, iface = tun
    rows, stats = _capture(net, iface, backend, ["-p", "1-100", TUN_B])
    syns = {r["dport"] for r in rows if r["src_ip"] == TUN_A and r["tcp_flags"] == 0x02}
    rsts = [r for r in rows if r["src_ip"] == TUN_B and r["tcp_flags"] & 0x04]
    assert syns >= set(range(1, 101))
    assert len(rsts) >= 90
    assert stats["decoded"] == len(rows)
    assert all(r["src_mac"] == "" for r in rows)  # a tun link has no MAC


@pytest.mark.skipif(NMAP is None, reason="nmap not installed")
def test_any_interface_is_captured_cooked(tun: tuple[Lab, str]) -> None:
    net, _ = tun
    rows, _stats = _capture(net, "any", "recv", ["-p", "1-50", net.ip_b])
    syns = {r["dport"] for r in rows if r["src_ip"] == net.ip_a and r["tcp_flags"] == 0x02}
    assert syns >= set(range(1, 51))
    assert any(r["src_mac"] == net.mac_a for r in rows)  # SLL keeps the sender's MAC
