#!/usr/bin/env python3
"""Rewrite a raw-IP pcap (link type 101) into the other link types `replay` reads, frame by
frame (same IP packets, new link header), and one it does not (USER0, 147):
  relink.py rawip.pcap OUTDIR
null (0, host-order AF), loop (108, network-order AF), ppp (9, HDLC-framed PPP), hdlc (104,
Cisco HDLC), raw12 (DLT_RAW as BSD numbers it), raw14 (OpenBSD's DLT_RAW), ipv4 (228),
user0 (147: unsupported)."""
from __future__ import annotations

import struct
import sys
from pathlib import Path


def frames(path: Path) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    data = path.read_bytes()
    assert data[:4] == b"\xd4\xc3\xb2\xa1", "little-endian microsecond pcap expected"
    assert struct.unpack_from("<I", data, 20)[0] == 101, "raw IP (101) expected"
    out, off = [], 24
    while off + 16 <= len(data):
        _sec, _usec, caplen, _wire = struct.unpack_from("<IIII", data, off)
        out.append((data[off:off + 8], data[off + 16:off + 16 + caplen]))
        off += 16 + caplen
    return data[:20], out


def header(kind: str, pkt: bytes) -> bytes:
    v6 = pkt[0] >> 4 == 6
    if kind == "null":
        return struct.pack("<I", 24 if v6 else 2)  # AF_INET6 is 24 on NetBSD/OpenBSD
    if kind == "loop":
        return struct.pack(">I", 24 if v6 else 2)
    if kind == "ppp":
        return b"\xff\x03" + (b"\x00\x57" if v6 else b"\x00\x21")
    if kind == "hdlc":
        return b"\x0f\x00" + (b"\x86\xdd" if v6 else b"\x08\x00")
    return b""


LINKS = {"null": 0, "loop": 108, "ppp": 9, "hdlc": 104, "raw12": 12, "raw14": 14,
         "ipv4": 228, "user0": 147}


def main() -> None:
    src, outdir = Path(sys.argv[1]), Path(sys.argv[2])
    head, recs = frames(src)
    for kind, linktype in LINKS.items():
        body = bytearray(head[:16] + struct.pack("<I", 65535) + struct.pack("<I", linktype))
        for ts, pkt in recs:
            h = header(kind, pkt)
            body += ts + struct.pack("<II", len(h) + len(pkt), len(h) + len(pkt)) + h + pkt
        (outdir / f"link_{kind}.pcap").write_bytes(bytes(body))


if __name__ == "__main__":
    main()
