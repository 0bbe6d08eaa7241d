"""The kernel and the Python interpreter give the same verdict on every crafted frame.

Frames of tests/data/pcaps/filter_cases.pcap are sent one by one from namespace A
(raw AF_PACKET socket) over the veth; the filtered capture socket in B keeps what the
kernel's cBPF run passes. That set must equal what :func:`edgeguard.net.bpf.run` keeps,
and the bytes must be the frame cut to the snap length. (The kernel removes an 802.1Q
tag before taps see the frame; the filter reads tagged and untagged frames alike.)
"""

from __future__ import annotations

import subprocess
import sys
import time

import orjson
import pytest

from edgeguard.net import bpf
from edgeguard.net.filter import FilterSpec, build_filter
from edgeguard.net.pcapfile import read_capture
from tests.conftest import edgeguard_env
from tests.linux.net.netns import lab
from tests.unit.net.netdata import PCAPS

pytestmark = pytest.mark.linux

SEND = """
import socket, sys, time
from pathlib import Path
from edgeguard.net.pcapfile import read_capture
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[1], 0))
for frame in read_capture(Path(sys.argv[2])):
    s.send(frame.data)
    time.sleep(0.002)
"""


def _untagged(data: bytes) -> bytes:
    return data[:12] + data[16:] if data[12:14] in (b"\x81\x00", b"\x88\xa8") else data


@pytest.mark.parametrize("backend", ["ring", "recv"])
def test_kernel_verdicts_equal_the_interpreter(backend: str) -> None:
    frames = list(read_capture(PCAPS / "filter_cases.pcap"))
    prog = build_filter(FilterSpec(udp_sample=0))
    snap = FilterSpec().snap_length
    want = {n for n, f in enumerate(frames) if bpf.run(prog, f.data, f.wire_len)}
    assert 0 < len(want) < len(frames)
    with lab("k") as net:
        probe = net.popen(net.b, [sys.executable, "-m", "tests.linux.net.capture_probe",
                                  net.veth_b, "4", backend, "raw"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=edgeguard_env())
        try:
            assert probe.stdout is not None
            assert probe.stdout.readline().strip() == "READY"
            time.sleep(0.2)
            net.run(net.a, sys.executable, "-c", SEND, net.veth_a,
                    str(PCAPS / "filter_cases.pcap"), timeout=60)
            out, err = probe.communicate(timeout=60)
        finally:
            if probe.poll() is None:
                probe.kill()
                probe.wait()
    assert probe.returncode == 0, err
    captured = [bytes.fromhex(orjson.loads(line)["raw"]) for line in out.splitlines()
                if line.startswith('{"raw"')]
    got = set()
    own = {bytes.fromhex(net.mac_a.replace(":", "")), bytes.fromhex(net.mac_b.replace(":", ""))}
    for data in captured:
        if data[6:12] in own:
            continue  # the namespaces' own IPv6 neighbour discovery and MLD
        matches = [n for n, f in enumerate(frames)
                   if data in (f.data[:snap], _untagged(f.data)[:snap])]
        assert matches, f"captured a frame we did not send: {data[:40].hex()}"
        got.update(matches)
    labels = (PCAPS / "filter_cases.labels").read_text().splitlines()
    assert got == want, {"kernel only": [labels[n] for n in sorted(got - want)],
                         "interpreter only": [labels[n] for n in sorted(want - got)]}
