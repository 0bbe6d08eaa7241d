"""Build radiotap/802.11 frames and capture files for the ``wifi classify`` tests.

The elements inside come from the lab's real hostapd recordings
(``tests/data/wifi/beacons``); only the headers around them are made here, so the
radiotap variants (FCS, bad FCS, TSFT alignment, extended bitmaps) and bare 802.11 can
be covered. The real capture as tcpdump wrote it is ``tests/data/wifi/beacons/hwsim0.pcap``.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

BEACONS = Path(__file__).resolve().parents[2] / "data" / "wifi" / "beacons"


@dataclass(frozen=True)
class Labelled:
    name: str  # fixture stem, e.g. "wpa2-psk.beacon"
    label: dict  # type: ignore[type-arg]
    ies: bytes


def recorded() -> list[Labelled]:
    out = []
    for path in sorted(BEACONS.glob("*.json")):
        if path.name == "skipped.json":
            continue
        label = json.loads(path.read_text())
        ies = bytes.fromhex((BEACONS / label["ies_file"]).read_text().strip())
        out.append(Labelled(path.stem, label, ies))
    return out


def radiotap(freq: int = 2437, *, fcs: bool = False, bad_fcs: bool = False,
             tsft: bool = False, extended: bool = False) -> bytes:
    """A radiotap header: [TSFT] flags [rate] channel, optionally a second bitmap word."""
    present = (1 << 1) | (1 << 2) | (1 << 3) | (1 if tsft else 0) | ((1 << 31) if extended else 0)
    words = struct.pack("<I", present) + (struct.pack("<I", 1 << 5) if extended else b"")
    body = bytearray(b"\x00\x00" + struct.pack("<H", 0) + words)  # version, pad, len, bitmaps
    if tsft:
        body += b"\x00" * ((-len(body)) % 8) + struct.pack("<Q", 123456789)
    body += bytes([(0x10 if fcs else 0) | (0x40 if bad_fcs else 0)])  # flags
    body += b"\x02"  # rate
    body += b"\x00" * (len(body) % 2) + struct.pack("<HH", freq, 0x00A0)
    if extended:
        body += b"\xd5"  # antenna signal of the second bitmap's namespace (ignored)
    struct.pack_into("<H", body, 2, len(body))
    return bytes(body)


def mgmt(subtype: int, bssid: str, capability: int, ies: bytes) -> bytes:
    mac = bytes.fromhex(bssid.replace(":", ""))
    header = bytes([subtype << 4, 0]) + b"\x00\x00" + b"\xff" * 6 + mac + mac + b"\x10\x00"
    return header + struct.pack("<QHH", 42, 100, capability) + ies


def frame_of(item: Labelled, **radio: bool) -> bytes:
    subtype = 8 if item.label["frame"] == "beacon" else 5
    body = mgmt(subtype, item.label["bssid"], item.label["capability"], item.ies)
    return radiotap(item.label["freq_mhz"] or 2437, **radio) + body + (
        b"\xde\xad\xbe\xef" if radio.get("fcs") else b"")


def pcap(frames: list[bytes], linktype: int = 127, *, t0: int = 1_700_000_000) -> bytes:
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype)
    for i, data in enumerate(frames):
        out += struct.pack("<IIII", t0 + i, 0, len(data), len(data)) + data
    return out


def pcapng(frames: list[bytes], linktype: int = 127) -> bytes:
    def block(kind: int, body: bytes) -> bytes:
        body += b"\x00" * ((-len(body)) % 4)
        size = 12 + len(body)
        return struct.pack("<II", kind, size) + body + struct.pack("<I", size)

    out = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    out += block(1, struct.pack("<HHI", linktype, 0, 65535))
    for i, data in enumerate(frames):
        ticks = (1_700_000_000 + i) * 1_000_000
        out += block(6, struct.pack("<IIIII", 0, ticks >> 32, ticks & 0xFFFFFFFF, len(data),
                                    len(data)) + data)
    return out
