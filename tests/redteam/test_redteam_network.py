"""Someone on the LAN against the live daemon: evasions and garbage.

Two throwaway namespaces joined by a veth pair (``tests/linux/net/netns.py``); the
daemon captures in B, everything is sent from A, nmap only toward the lab's addresses.
Each case uses its own source address in A, because the detectors rightly report an
actor once per window.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from edgeguard.daemon.control import request
from edgeguard.net import bpf
from edgeguard.net.decode import DecodeCounters, decode
from edgeguard.net.filter import build_filter
from tests.conftest import edgeguard_env
from tests.linux.net.netns import Lab, NetDaemon, daemon_in, lab, stop
from tests.redteam.redteam_support import malformed_frames

pytestmark = [pytest.mark.linux, pytest.mark.redteam]

NMAP = shutil.which("nmap")
#: last octet of each case's source address in A
SOURCES = {"split-1": 41, "split-2": 42, "split-3": 43, "split-20": 44, "split-1-20": 45,
           "split-4": 46, "split-10": 47, "split-bytes": 48, "decoy": 50, "after-fuzz": 51}
DECOYS = (101, 102, 103)
FUZZ_MAC = "02:ec:00:00:00:fe"
FUZZ_COUNT = 4500  # bounded: 500 of each of the corpus's nine kinds

SINK = """
import socket, sys, time
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((sys.argv[1], 443))
srv.listen(64)
srv.settimeout(1.0)
print("LISTENING", flush=True)
deadline = time.monotonic() + 600
while time.monotonic() < deadline:
    try:
        conn, _ = srv.accept()
    except TimeoutError:
        continue
    conn.settimeout(5)
    try:
        while conn.recv(4096):
            pass
    except OSError:
        pass
    conn.close()
"""

#: Sends a full BitTorrent handshake in pieces: each send() its own TCP segment
#: (TCP_NODELAY, and the lab has TSO/GSO off), waiting for the ACK in between.
SPLIT_CLIENT = """
import socket, sys, time
src, dst, cuts = sys.argv[1], sys.argv[2], [int(c) for c in sys.argv[3].split(",")]
handshake = b"\\x13BitTorrent protocol" + bytes(8) + bytes(range(20)) + b"-RT0001-" + bytes(12)
s = socket.socket()
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
s.bind((src, 0))
s.connect((dst, 443))
pos = 0
for cut in cuts + [len(handshake)]:
    s.send(handshake[pos:cut])
    pos = cut
    time.sleep(0.2)
time.sleep(0.3)
s.close()
"""

INJECT = """
import sys
from tests.redteam.redteam_support import inject_frames, malformed_frames
frames = list(malformed_frames(11, int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5],
                               sys.argv[6]))
print(inject_frames(sys.argv[1], frames))
"""


@dataclass
class Watched:
    net: Lab
    daemon: NetDaemon

    def source(self, case: str) -> str:
        return f"{self.net.ip_a.rsplit('.', 1)[0]}.{SOURCES[case]}"

    def alerts(self) -> list[dict[str, Any]]:
        return self.daemon.alerts()

    def counters(self) -> dict[str, Any]:
        status = request(self.daemon.socket, "status")
        counters: dict[str, Any] = status["sources"]["network"]["counters"]
        return counters

    def wait_alert(self, kind: str, actor: str, timeout: float = 30) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for alert in self.alerts():
                if alert["edgeguard"]["finding"]["kind"] == kind and \
                        alert["source"].get("ip") == actor:
                    return alert
            time.sleep(0.3)
        return None


@pytest.fixture(scope="module")
def watched(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Watched]:
    if NMAP is None:
        pytest.skip("nmap not installed")
    tmp = tmp_path_factory.mktemp("redteam-net")
    with lab("r") as net:
        prefix = net.ip_a.rsplit(".", 1)[0]
        for octet in SOURCES.values():
            net.run(net.a, "/usr/sbin/ip", "addr", "add", f"{prefix}.{octet}/24", "dev",
                    net.veth_a)
        with daemon_in(net, tmp) as daemon:
            sink = net.popen(net.b, [sys.executable, "-c", SINK, net.ip_b],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            try:
                assert sink.stdout is not None
                assert sink.stdout.readline().strip() == "LISTENING"
                deadline = time.monotonic() + 15
                while not any("kernel_packets" in r
                              for r in request(daemon.socket, "network.capture")):
                    assert time.monotonic() < deadline, "capture did not start"
                    time.sleep(0.2)
                yield Watched(net, daemon)
            finally:
                stop(sink)


def _split(watched: Watched, case: str, cuts: list[int]) -> dict[str, Any] | None:
    net = watched.net
    src = watched.source(case)
    sent = net.run(net.a, sys.executable, "-c", SPLIT_CLIENT, src, net.ip_b,
                   ",".join(map(str, cuts)), timeout=60, check=False)
    assert sent.returncode == 0, sent.stderr
    return watched.wait_alert("bittorrent", src, timeout=15)


@pytest.mark.parametrize(("case", "cuts"), [
    ("split-1", [1]), ("split-2", [2]), ("split-3", [3]), ("split-20", [20]),
    ("split-1-20", [1, 20]), ("split-4", [4]), ("split-10", [10]),
    ("split-bytes", list(range(1, 20))),
])
def test_bittorrent_handshake_on_443_split_across_segments_is_seen(
        watched: Watched, case: str, cuts: list[int]) -> None:
    alert = _split(watched, case, cuts)
    assert alert is not None, f"{case} passed unseen"
    assert alert["edgeguard"]["finding"]["subtype"] == "handshake"
    assert alert["edgeguard"]["bittorrent"]["port"] == 443
    assert alert["destination"]["ip"] == watched.net.ip_b
    if cuts[0] in (4, 10):  # the continuation carries the rest: joined whole
        assert alert["edgeguard"]["bittorrent"]["info_hash"] == bytes(range(20)).hex()


def test_scan_with_decoys_and_random_port_order_is_seen(watched: Watched) -> None:
    """nmap -D: probes from three made-up lab addresses interleaved with the real one;
    nmap randomises the port order by default (-r would make it sequential)."""
    assert NMAP
    net = watched.net
    real = watched.source("decoy")
    prefix = net.ip_a.rsplit(".", 1)[0]
    decoys = [f"{prefix}.{d}" for d in DECOYS]
    net.run(net.a, NMAP, "-n", "-Pn", "-sS", "-S", real, "-e", net.veth_a,
            "-D", ",".join([decoys[0], decoys[1], "ME", decoys[2]]), "-T4",
            "--max-retries", "0", "-p", "1-300", net.ip_b, timeout=180)
    alert = watched.wait_alert("scan", real)
    assert alert is not None, "the real scanner behind the decoys was not reported"
    assert alert["source"]["mac"] == net.mac_a
    # the decoys are named as such, not reported as scanners of their own
    assert all(d in str(alert) for d in decoys), alert
    for alert in watched.alerts():
        if alert["edgeguard"]["finding"]["kind"] == "scan":
            assert alert["source"].get("ip") not in decoys, alert


def _expected_malformed(fuzz_ip: str, net: Lab) -> int:
    prog, counters = build_filter(), DecodeCounters()
    for frame in malformed_frames(11, FUZZ_COUNT, FUZZ_MAC, net.mac_b, fuzz_ip, net.ip_b):
        if bpf.run(prog, frame):
            decode(frame, 0.0, len(frame), counters)
    return counters.malformed


def test_garbage_on_the_wire_does_not_blind_the_daemon(watched: Watched) -> None:
    """A seeded corpus of malformed frames, injected where the daemon captures: it
    counts them, stays up, and still reports a scan that follows."""
    assert NMAP
    net = watched.net
    before = watched.counters()
    fuzz_ip = f"{net.ip_a.rsplit('.', 1)[0]}.250"
    injected = subprocess.run(
        net.argv(net.a, sys.executable, "-c", INJECT, net.veth_a, str(FUZZ_COUNT), FUZZ_MAC,
                 net.mac_b, fuzz_ip, net.ip_b),
        capture_output=True, text=True, timeout=120, check=False, env=edgeguard_env())
    assert injected.returncode == 0, injected.stderr
    assert int(injected.stdout) == FUZZ_COUNT
    # what the capture filter passes and the decoder refuses, worked out offline with
    # the same filter (interpreted) and decoder; the live daemon must count as many
    expected = _expected_malformed(fuzz_ip, net)
    assert expected > FUZZ_COUNT // 3
    deadline = time.monotonic() + 20
    while watched.counters()["malformed"] - before["malformed"] < expected:
        assert time.monotonic() < deadline, (expected, before, watched.counters())
        time.sleep(0.3)
    assert watched.daemon.proc.poll() is None
    after = watched.counters()
    assert after["malformed"] > before["malformed"]
    assert after["workers"] >= 1
    assert all(not row.get("error") for row in request(watched.daemon.socket,
                                                       "network.capture"))
    # still detecting
    src = watched.source("after-fuzz")
    net.run(net.a, NMAP, "-n", "-Pn", "-sS", "-S", src, "-e", net.veth_a, "-T4",
            "--max-retries", "0", "-p", "1-200", net.ip_b, timeout=120)
    assert watched.wait_alert("scan", src) is not None, "no scan reported after the garbage"

