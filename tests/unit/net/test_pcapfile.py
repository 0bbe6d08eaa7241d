"""pcap and pcapng readers: both byte orders, us/ns resolution, link types, damage."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
import yaml
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.utils import PcapNgWriter, wrpcap

from edgeguard.net.pcapfile import CaptureFormatError, ReaderCounters, read_capture
from tests.unit.net.netdata import CORPUS

FRAME = bytes(Ether() / IP(dst="10.0.0.5") / TCP(flags="S"))


def _pcap(order: str, nano: bool, linktype: int = 1, frames: int = 2) -> bytes:
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 65535, linktype)
    for i in range(frames):
        frac = 500_000_000 if nano else 500_000
        out += struct.pack(order + "IIII", 1_700_000_000 + i, frac, len(FRAME), len(FRAME) + 10)
        out += FRAME
    return out


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("nano", [False, True])
def test_pcap_byte_orders_and_resolutions(tmp_path: Path, order: str, nano: bool) -> None:
    path = tmp_path / "x.pcap"
    path.write_bytes(_pcap(order, nano))
    frames = list(read_capture(path))
    assert [f.ts for f in frames] == [1_700_000_000.5, 1_700_000_001.5]
    assert frames[0].data == FRAME
    assert frames[0].wire_len == len(FRAME) + 10


def test_other_link_types_are_counted(tmp_path: Path) -> None:
    path = tmp_path / "sll.pcap"
    path.write_bytes(_pcap("<", False, linktype=113))
    c = ReaderCounters()
    assert list(read_capture(path, c)) == []
    assert c.unsupported_linktype == 2
    assert c.linktypes == {113: 2}


def test_truncated_pcap_stops_and_counts(tmp_path: Path) -> None:
    path = tmp_path / "cut.pcap"
    path.write_bytes(_pcap("<", False)[:-5])
    c = ReaderCounters()
    assert len(list(read_capture(path, c))) == 1
    assert c.truncated == 1


def test_not_a_capture(tmp_path: Path) -> None:
    path = tmp_path / "x.txt"
    path.write_text("hello world")
    with pytest.raises(CaptureFormatError):
        list(read_capture(path))


def test_pcapng_from_scapy(tmp_path: Path) -> None:
    path = tmp_path / "x.pcapng"
    pkt = Ether(FRAME)
    pkt.time = 1_700_000_000.25
    with PcapNgWriter(str(path)) as writer:
        writer.write(pkt)
        writer.write(pkt)
    frames = list(read_capture(path))
    assert len(frames) == 2
    assert frames[0].data == FRAME
    assert frames[0].ts == pytest.approx(1_700_000_000.25, abs=1e-6)


def _block(order: str, btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    size = len(body) + 12
    return struct.pack(order + "II", btype, size) + body + struct.pack(order + "I", size)


@pytest.mark.parametrize("order", ["<", ">"])
def test_pcapng_big_endian_tsresol_and_simple_blocks(tmp_path: Path, order: str) -> None:
    shb = _block(order, 0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1))
    tsresol = struct.pack(order + "HH", 9, 1) + b"\x09\0\0\0" + struct.pack(order + "HH", 0, 0)
    idb = _block(order, 1, struct.pack(order + "HHI", 1, 0, 0) + tsresol)
    idb_other = _block(order, 1, struct.pack(order + "HHI", 127, 0, 0))
    ticks = 1_700_000_000_123_456_789
    epb = _block(order, 6, struct.pack(order + "IIIII", 0, ticks >> 32, ticks & 0xFFFFFFFF,
                                       len(FRAME), len(FRAME)) + FRAME)
    epb_other = _block(order, 6, struct.pack(order + "IIIII", 1, 0, 0, 4, 4) + b"abcd")
    spb = _block(order, 3, struct.pack(order + "I", len(FRAME)) + FRAME)
    path = tmp_path / "x.pcapng"
    path.write_bytes(shb + idb + idb_other + epb + epb_other + spb)
    c = ReaderCounters()
    frames = list(read_capture(path, c))
    assert [f.data for f in frames] == [FRAME, FRAME]
    assert frames[0].ts == pytest.approx(1_700_000_000.123456789)
    assert c.unsupported_linktype == 1
    assert c.truncated == 0


def test_scapy_pcap_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "s.pcap"
    wrpcap(str(path), [Ether(FRAME)] * 3)
    assert [f.data for f in read_capture(path)] == [FRAME] * 3


@pytest.mark.skipif(not (CORPUS / "labels.yaml").exists(), reason="no corpus")
def test_corpus_packet_counts_match_labels() -> None:
    labels = yaml.safe_load((CORPUS / "labels.yaml").read_text())["files"]
    for name, entry in labels.items():
        c = ReaderCounters()
        assert sum(1 for _ in read_capture(CORPUS / name, c)) == entry["packets"], name
        assert c.truncated == 0
