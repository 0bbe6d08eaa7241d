"""The lab harness's host-side pieces, without a VM: stick images, the pcap reader that
extracts beacon IEs, and the uevent burst grouping."""

from __future__ import annotations

import json
import struct
import subprocess
from pathlib import Path

import pytest
from edgelab import record, sticks

MIB = 1 << 20


def test_make_stick_writes_a_real_partitioned_image(tmp_path: Path) -> None:
    img = sticks.make_stick(tmp_path / "s.img", [sticks.Part("luks", 20), sticks.Part("ext4", 8),
                                                 sticks.Part("exfat", 8)])
    table = json.loads(subprocess.run(["/usr/sbin/sfdisk", "--json", str(img)], check=True,
                                      capture_output=True, text=True).stdout)["partitiontable"]
    parts = table["partitions"]
    assert [p["type"] for p in parts] == ["83", "83", "7"]
    assert [p["start"] for p in parts] == [2048, 2048 + 20 * 2048, 2048 + 28 * 2048]
    data = img.read_bytes()
    luks, ext4, exfat = (p["start"] * 512 for p in parts)
    assert data[luks:luks + 6] == b"LUKS\xba\xbe"
    assert struct.unpack_from("<H", data, ext4 + 1024 + 56)[0] == 0xEF53  # ext4 magic
    assert data[exfat + 3:exfat + 11] == b"EXFAT   "
    assert data[510:512] == b"\x55\xaa"


def test_superfloppy_and_hash(tmp_path: Path) -> None:
    img = sticks.make_stick(tmp_path / "w.img", whole="vfat", size_mib=40)
    assert img.read_bytes()[82:87] == b"FAT32"
    before = sticks.sha256(img)
    with img.open("r+b") as f:
        f.seek(20 * MIB)
        f.write(b"x")
    assert sticks.sha256(img) != before


def _pcap(frames: list[bytes], linktype: int = 127) -> bytes:
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype)
    for i, frame in enumerate(frames):
        out += struct.pack("<IIII", i, 0, len(frame), len(frame)) + frame
    return out


def _radiotap(freq: int, fcs: bool) -> bytes:
    # present: flags (bit 1) + channel (bit 3); flags 1 byte, pad to 2, channel 2+2
    body = bytes([0x10 if fcs else 0]) + b"\x00" + struct.pack("<HH", freq, 0x00A0)
    return struct.pack("<BBHI", 0, 0, 8 + len(body), (1 << 1) | (1 << 3)) + body


def _mgmt(subtype: int, bssid: bytes, cap: int, ies: bytes) -> bytes:
    hdr = bytes([subtype << 4, 0]) + b"\x00\x00" + b"\xff" * 6 + bssid + bssid + b"\x00\x00"
    return hdr + b"\x00" * 8 + struct.pack("<HH", 100, cap) + ies


def test_parse_pcap_extracts_beacon_and_probe_response_ies() -> None:
    bssid = bytes.fromhex("020000000a00")
    ies = b"\x00\x05eglab" + b"\x30\x02\x01\x00"
    frames = [
        _radiotap(2437, fcs=True) + _mgmt(8, bssid, 0x0411, ies) + b"FCS!",
        _radiotap(2412, fcs=False) + _mgmt(5, bssid, 0x0401, ies),
        _radiotap(2412, fcs=False) + _mgmt(4, bssid, 0, b""),  # probe request: skipped
        _radiotap(2412, fcs=False) + b"\x08\x00",  # a data frame stub: skipped
    ]
    got = list(record.parse_pcap(_pcap(frames)))
    assert [(f.subtype, f.bssid, f.capability, f.ies, f.channel_mhz) for f in got] == [
        (8, "02:00:00:00:0a:00", 0x0411, ies, 2437),
        (5, "02:00:00:00:0a:00", 0x0401, ies, 2412),
    ]


def test_parse_pcap_refuses_other_link_types() -> None:
    with pytest.raises(ValueError, match="radiotap"):
        list(record.parse_pcap(_pcap([], linktype=1)))


def test_bursts_group_block_events_that_arrive_together() -> None:
    def ev(t: float, subsystem: str, name: str) -> dict:
        return {"t": t, "properties": {"SUBSYSTEM": subsystem, "DEVNAME": name}}

    events = [ev(0.0, "usb", "u"), ev(1.0, "block", "sda"), ev(1.5, "block", "sda1"),
              ev(3.0, "block", "sda1"), ev(3.01, "scsi", "x"), ev(3.015, "block", "sda")]
    got = record.bursts(events)
    assert [[p["DEVNAME"] for p in b] for b in got] == [["sda"], ["sda1"], ["sda1", "sda"]]
