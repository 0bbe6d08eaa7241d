"""replay's frame loop (filter and decoder on the frames in place in the read buffer)
gives exactly the packets and counts of the frame-by-frame path, on every capture and
across read-buffer boundaries, damaged records and both byte orders."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether

from edgeguard.net.bpf import reseed
from edgeguard.net.frameloop import FrameLoop
from edgeguard.net.inspect import Inspector, build_chain
from edgeguard.net.packet import Packet
from edgeguard.net.pcapfile import (
    PCAP_HEADER_SIZE,
    Frame,
    ReaderCounters,
    pcap_header,
    read_capture,
)
from edgeguard.net.replay import PacketClock, ReplayResult, iter_findings
from edgeguard.policy.load import load_policy
from tests.unit.net.golden_findings import captures

NETWORK = load_policy().policy.network
SYN = bytes(Ether() / IP(src="10.0.0.7", dst="10.0.0.5") / TCP(dport=22, flags="S"))
ACK = bytes(Ether() / IP(src="10.0.0.7", dst="10.0.0.5") / TCP(flags="A") / (b"x" * 1400))
SHORT_ARP = bytes(Ether(type=0x0806)) + bytes(4)  # the filter keeps it, the decoder cannot
DNS = bytes(Ether() / IP(src="10.0.0.7", dst="10.0.0.53") / UDP(dport=53) / (b"q" * 30))


def _run(path: Path, *, fast: bool, chunk: int = 1 << 20,
         ) -> tuple[list[Packet], dict[str, object]]:
    reseed()
    insp = Inspector.for_replay(NETWORK, build_chain(NETWORK, PacketClock()))
    reader = ReaderCounters()
    loop = FrameLoop(insp, reader, batch=7, chunk=chunk)
    packets: list[Packet] = []
    if fast:
        with path.open("rb") as fh:
            head = pcap_header(fh.read(PCAP_HEADER_SIZE))
            assert head is not None
            for batch in loop.pcap(fh, head):
                packets += batch
    else:
        for batch in loop.frames(read_capture(path, reader)):
            packets += batch
    d = insp.decode_counters
    return packets, {"frames": insp.frames, "filtered_out": insp.filtered_out,
                     "decoded": d.decoded, "malformed": d.malformed, "not_ip": d.not_ip,
                     "fragments": d.fragments, "file_frames": reader.frames,
                     "truncated": reader.truncated, "linktypes": reader.linktypes,
                     "last_ts": loop.last_ts}


def _pcaps() -> list[Path]:
    out = []
    for path in captures():
        with path.open("rb") as fh:
            head = pcap_header(fh.read(PCAP_HEADER_SIZE))
        if head is not None and head.linktype == 1:
            out.append(path)
    return out


@pytest.mark.parametrize("path", _pcaps(), ids=lambda p: p.name)
def test_in_place_loop_matches_the_frame_path_on_every_capture(path: Path) -> None:
    want = _run(path, fast=False)
    assert want[1]["frames"]
    assert _run(path, fast=True) == want
    assert _run(path, fast=True, chunk=97) == want  # records split across reads


def _write(path: Path, frames: list[bytes], order: str = "<", nano: bool = False) -> None:
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 65535, 1)
    for i, frame in enumerate(frames):
        out += struct.pack(order + "IIII", 1_700_000_000 + i, 250 + i, len(frame),
                           len(frame) + 4) + frame
    path.write_bytes(out)


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("nano", [False, True])
@pytest.mark.parametrize("cut", [0, 5, 16 + 20])  # whole; header cut; frame cut
def test_byte_orders_resolutions_and_a_damaged_end(tmp_path: Path, order: str, nano: bool,
                                                   cut: int) -> None:
    path = tmp_path / "x.pcap"
    _write(path, [SYN, ACK, DNS, ACK, SYN, SHORT_ARP, DNS], order, nano)
    record = struct.pack(order + "IIII", 1, 2, 60, 60) + SYN  # claims 60 bytes
    path.write_bytes(path.read_bytes() + record[:cut])
    for chunk in (1 << 20, 13, 64):
        packets, counts = _run(path, fast=True, chunk=chunk)
        assert (packets, counts) == _run(path, fast=False)
        assert counts["truncated"] == (1 if cut else 0)
        assert counts["file_frames"] == 7
        assert counts["filtered_out"] == 2  # the bulk ACKs
        assert counts["malformed"] == 1
        assert [p.dport for p in packets] == [22, 53, 22, 53]
        unit = 1e-9 if nano else 1e-6
        assert counts["last_ts"] == 1_700_000_006 + 256 * unit


def test_a_watched_replay_reads_frame_by_frame_with_the_same_findings() -> None:
    """``replay --progress`` on a terminal watches every frame (edgeguard.progress):
    that replay takes the frame path; one whose watcher returns the frames unchanged
    (not a terminal) takes the in-place loop. Findings and counters are the same."""
    path = max(_pcaps(), key=lambda p: p.stat().st_size)
    seen: list[int] = []

    def counted(frames: Iterator[Frame]) -> Iterator[Frame]:
        for frame in frames:
            seen.append(frame.wire_len)
            yield frame

    out = []
    for watch in (None, counted, lambda frames: frames):
        result = ReplayResult()
        found = list(iter_findings(path, NETWORK, PacketClock(), result, watch=watch))
        out.append(([repr(f) for f in found], result.counters))
    assert out[0][0], "a capture with findings"
    assert out[0] == out[1] == out[2]
    assert len(seen) == out[0][1]["file_frames"]
