"""Deterministic benchmark captures (seeded), written once and cached in /tmp.

    python bench/replay_mix.py [issue23|school] [--out DIR]   # prints the path

``issue23`` -- the 500k-packet mix of issue 23, 60 s of traffic:
  75 % established TCP bulk over 1,000 flows (handshake, then ACKed data, snaplen 128),
  10 % DNS-like UDP (a query and its answer per flow),
  10 % SYN probes from one scanner over 50 hosts x 1,000 ports, 1 in 4 answered by RST,
   5 % BitTorrent DHT queries from one host to 25k peers (port 6881).
``school`` -- a day at a school gateway, 07:30-15:30 (8 h), 300k packets, 400 pupils:
  HTTPS browsing (short flows: handshake, 4-30 data packets, FIN), DNS, a few video
  streams (long bulk flows), NTP, SSDP/mDNS multicast chatter, one pupil running a
  BitTorrent client (DHT + peer handshakes on high ports) from 11:00, one nmap-like
  SYN scan of 1,000 ports on the printer at 10:00 and a slow scan (one port a
  minute) through the afternoon. Packet times are sparse, so detector timeouts and
  table expiry run as they would on a real day.

Frames are Ethernet/IPv4 with zeroed checksums (nothing on our path or nDPI's checks
them). The files are a function of the seed only: the same bytes on every machine.
"""

from __future__ import annotations

import argparse
import random
import struct
import sys
from collections.abc import Iterator
from pathlib import Path

CACHE = Path("/tmp/edgeguard-bench")
SNAPLEN = 128
_ETH = b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02\x08\x00"
_GW_MAC = b"\x02\x00\x00\x00\x00\xfe"
SYN, ACK, PSH_ACK, SYN_ACK, RST, RST_ACK, FIN_ACK = 0x02, 0x10, 0x18, 0x12, 0x04, 0x14, 0x11
DHT_QUERY = (b"d1:ad2:id20:" + bytes(range(20)) + b"9:info_hash20:" + bytes(range(20, 40))
             + b"e1:q9:get_peers1:t2:aa1:y1:qe")
BT_HANDSHAKE = b"\x13BitTorrent protocol" + bytes(8) + bytes(range(40))
Frame = tuple[float, bytes, int]  # (time, captured bytes, wire length)


def ip(text: str) -> bytes:
    return bytes(int(x) for x in text.split("."))


def _mac(addr: bytes) -> bytes:
    return b"\x02\x00" + addr


def _ipv4(src: bytes, dst: bytes, proto: int, payload_len: int, ident: int) -> bytes:
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + payload_len, ident & 0xFFFF, 0x4000,
                       64, proto, 0, src, dst)


def tcp(ts: float, src: bytes, sport: int, dst: bytes, dport: int, flags: int,
        seq: int = 0, ack: int = 0, payload: bytes | int = b"") -> Frame:
    data = payload if isinstance(payload, bytes) else b""
    size = payload if isinstance(payload, int) else len(payload)
    hdr = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                      5 << 4, flags, 64240, 0, 0)
    frame = (_mac(dst) + _mac(src) + b"\x08\x00" + _ipv4(src, dst, 6, 20 + size, seq)
             + hdr + data)
    wire = 14 + 20 + 20 + size
    return ts, frame[:SNAPLEN], wire


def udp(ts: float, src: bytes, sport: int, dst: bytes, dport: int, payload: bytes) -> Frame:
    hdr = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0)
    frame = (_mac(dst) + _mac(src) + b"\x08\x00"
             + _ipv4(src, dst, 17, 8 + len(payload), sport) + hdr + payload)
    return ts, frame[:SNAPLEN], len(frame)


def dns_query(qid: int, name: bytes) -> bytes:
    labels = b"".join(bytes([len(p)]) + p for p in name.split(b".")) + b"\x00"
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + labels + b"\x00\x01\x00\x01"


def dns_answer(qid: int, name: bytes) -> bytes:
    q = dns_query(qid, name)
    return (struct.pack("!HHHHHH", qid, 0x8180, 1, 1, 0, 0) + q[12:]
            + b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x01\x2c\x00\x04\xc6\x33\x64\x07")


def write_pcap(path: Path, frames: Iterator[Frame]) -> int:
    tmp = path.with_suffix(".part")
    n = 0
    with tmp.open("wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, SNAPLEN, 1))
        for ts, data, wire in frames:
            sec = int(ts)
            fh.write(struct.pack("<IIII", sec, int((ts - sec) * 1e6), len(data), wire))
            fh.write(data)
            n += 1
    tmp.rename(path)
    return n


# -- the issue-23 mix --------------------------------------------------------------------
def issue23(seed: int = 23, total: int = 500_000) -> Iterator[Frame]:
    rng = random.Random(seed)
    start, span = 1_790_000_000.0, 60.0
    servers = [ip(f"198.51.100.{i}") for i in range(1, 41)]
    bulk = [(ip(f"10.1.{i // 250}.{i % 250 + 1}"), 40000 + i, rng.choice(servers), 443)
            for i in range(1000)]
    opened = [0] * len(bulk)  # handshake step reached per flow
    seqs = [rng.randrange(1 << 32) for _ in bulk]
    resolver, scanner, dht_host = ip("10.0.0.53"), ip("10.9.9.9"), ip("10.1.0.66")
    scan_targets = [(ip(f"10.2.{h // 250}.{h % 250 + 1}"), port)
                    for h in range(50) for port in range(1, 1001)]
    rng.shuffle(scan_targets)
    kinds = rng.choices(("bulk", "dns", "scan", "dht"), (75, 10, 10, 5), k=total)
    n_scan = n_dht = n_dns = 0
    pending_dns: list[tuple[bytes, int, int]] = []
    pending_rst: list[tuple[bytes, int]] = []
    for i, kind in enumerate(kinds):
        ts = start + span * i / total
        if kind == "bulk":
            f = rng.randrange(len(bulk))
            cli, sport, srv, dport = bulk[f]
            step = opened[f]
            seq = seqs[f]
            if step == 0:
                opened[f] = 1
                yield tcp(ts, cli, sport, srv, dport, SYN, seq)
            elif step == 1:
                opened[f] = 2
                yield tcp(ts, srv, dport, cli, sport, SYN_ACK, 7, seq + 1)
            elif step == 2:
                opened[f] = 3
                yield tcp(ts, cli, sport, srv, dport, ACK, seq + 1, 8)
            elif rng.random() < 0.8:
                yield tcp(ts, srv, dport, cli, sport, PSH_ACK, 8 + i * 1400, seq + 1, 1400)
            else:
                yield tcp(ts, cli, sport, srv, dport, ACK, seq + 1, 8 + i * 1400)
        elif kind == "dns":
            if pending_dns and (n_dns % 2):
                cli, sport, qid = pending_dns.pop()
                yield udp(ts, resolver, 53, cli, sport, dns_answer(qid, b"www.example.org"))
            else:
                cli = ip(f"10.1.{rng.randrange(4)}.{rng.randrange(1, 251)}")
                sport, qid = rng.randrange(1024, 65536), rng.randrange(65536)
                pending_dns.append((cli, sport, qid))
                yield udp(ts, cli, sport, resolver, 53, dns_query(qid, b"www.example.org"))
            n_dns += 1
        elif kind == "scan":
            if pending_rst and n_scan % 5 == 4:
                host, port = pending_rst.pop()
                yield tcp(ts, host, port, scanner, 61000, RST_ACK, 0, 1)
            else:
                host, port = scan_targets[n_scan % len(scan_targets)]
                if rng.random() < 0.3:
                    pending_rst.append((host, port))
                yield tcp(ts, scanner, 61000, host, port, SYN, n_scan)
            n_scan += 1
        else:
            peer = ip(f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}."
                      f"{rng.randrange(1, 255)}")
            yield udp(ts, dht_host, 6881, peer, rng.randrange(1024, 65536), DHT_QUERY)
            n_dht += 1


# -- a school day ------------------------------------------------------------------------
def school(seed: int = 7, total: int = 300_000) -> Iterator[Frame]:
    """Events are generated per second of the day and sorted; see the module docstring."""
    rng = random.Random(seed)
    day0 = 1_790_000_000.0 + 7.5 * 3600
    span = 8 * 3600
    pupils = [ip(f"10.10.{i // 200}.{i % 200 + 10}") for i in range(400)]
    servers = [ip(f"203.0.113.{i}") for i in range(1, 200)]
    resolver, printer, torrent = ip("10.10.0.1"), ip("10.10.9.9"), pupils[17]
    frames: list[Frame] = []

    def browse(t: float) -> None:
        cli, srv = rng.choice(pupils), rng.choice(servers)
        sport = rng.randrange(32768, 61000)
        qid = rng.randrange(65536)
        frames.append(udp(t, cli, rng.randrange(1024, 65536), resolver, 53,
                          dns_query(qid, b"edu.example.net")))
        frames.append(udp(t + 0.01, resolver, 53, cli, sport, dns_answer(qid, b"edu.example.net")))
        seq = rng.randrange(1 << 32)
        frames.append(tcp(t + 0.02, cli, sport, srv, 443, SYN, seq))
        frames.append(tcp(t + 0.04, srv, 443, cli, sport, SYN_ACK, 1, seq + 1))
        frames.append(tcp(t + 0.05, cli, sport, srv, 443, ACK, seq + 1, 2))
        for k in range(rng.randrange(4, 31)):
            frames.append(tcp(t + 0.06 + k * 0.01, srv, 443, cli, sport, PSH_ACK, 2 + k * 1400,
                              seq + 1, 1400))
        frames.append(tcp(t + 0.5, cli, sport, srv, 443, FIN_ACK, seq + 1, 2))

    def video(t: float) -> None:
        cli, srv = rng.choice(pupils), rng.choice(servers)
        sport = rng.randrange(32768, 61000)
        frames.append(tcp(t, cli, sport, srv, 443, SYN, 1))
        frames.append(tcp(t + 0.02, srv, 443, cli, sport, SYN_ACK, 1, 2))
        frames.append(tcp(t + 0.03, cli, sport, srv, 443, ACK, 2, 2))
        for k in range(2000):
            frames.append(tcp(t + 0.04 + k * 0.05, srv, 443, cli, sport, PSH_ACK, k * 1400, 2,
                              1400))

    def chatter(t: float) -> None:
        cli = rng.choice(pupils)
        if rng.random() < 0.5:
            frames.append(udp(t, cli, 1900, ip("239.255.255.250"), 1900,
                              b"M-SEARCH * HTTP/1.1\r\nST: ssdp:all\r\n\r\n"))
        else:
            frames.append(udp(t, cli, 123, ip("10.10.0.1"), 123, b"\x23" + bytes(47)))

    def torrenting(t: float) -> None:
        peer = ip(f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}."
                  f"{rng.randrange(1, 255)}")
        port = rng.randrange(10000, 65000)
        if rng.random() < 0.7:
            frames.append(udp(t, torrent, 6881, peer, port, DHT_QUERY))
        else:
            sport = rng.randrange(32768, 61000)
            frames.append(tcp(t, torrent, sport, peer, port, SYN, 5))
            frames.append(tcp(t + 0.05, peer, port, torrent, sport, SYN_ACK, 9, 6))
            frames.append(tcp(t + 0.06, torrent, sport, peer, port, ACK, 6, 10))
            frames.append(tcp(t + 0.07, torrent, sport, peer, port, PSH_ACK, 6, 10, BT_HANDSHAKE))

    scanner = pupils[250]
    for k, port in enumerate(rng.sample(range(1, 10000), 1000)):  # 10:00, ~1 s
        t = day0 + 2.5 * 3600 + k * 0.001
        frames.append(tcp(t, scanner, 53211, printer, port, SYN, k))
        frames.append(tcp(t + 0.0005, printer, port, scanner, 53211, RST_ACK, 0, k + 1))
    slow = pupils[300]
    for k in range(240):  # one port a minute, 12:00-16:00
        t = day0 + 4.5 * 3600 + k * 60.0
        frames.append(tcp(t, slow, 40000 + k, printer, 20 + k, SYN, k))
        frames.append(tcp(t + 0.001, printer, 20 + k, slow, 40000 + k, RST_ACK, 0, k + 1))
    for _ in range(6):
        video(day0 + rng.uniform(0, span - 120))
    while len(frames) < total:
        t = day0 + rng.uniform(0, span)
        r = rng.random()
        if r < 0.6:
            browse(t)
        elif r < 0.85:
            chatter(t)
        elif t > day0 + 3.5 * 3600:
            torrenting(t)
    frames.sort(key=lambda f: f[0])
    yield from frames[:total]


MIXES = {"issue23": issue23, "school": school}


def ensure(name: str, out: Path = CACHE) -> Path:
    """The cached capture for mix ``name`` (written on first use)."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.pcap"
    if not path.exists():
        write_pcap(path, MIXES[name]())
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mix", nargs="?", default="issue23", choices=sorted(MIXES))
    parser.add_argument("--out", type=Path, default=CACHE)
    args = parser.parse_args()
    print(ensure(args.mix, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
