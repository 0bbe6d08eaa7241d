"""Write ``bt_split.pcap``: BitTorrent handshakes split across TCP segments, every way.

One connection per case, each from its own address (a host is reported once per
window), to 10.77.0.1:443, with the SYN/SYN-ACK/ACK, the receiver's ACK after every
piece and Linux-like TCP options (timestamps), so the capture filter sees what it
sees on a real link. ``bt_split.labels`` holds the expected findings, one line per
case: ``ADDRESS handshake INFO_HASH|-  # case`` or ``ADDRESS none  # case``.
The replay test (tests/unit/net/test_replay_bt_split.py) compares ``replay`` against it.
Re-run with ``PYTHONPATH=. python tests/data/pcaps/make_bt_split.py``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw
from scapy.utils import wrpcap

HERE = Path(__file__).resolve().parent
INFO_HASH = bytes.fromhex("5c7a1f0e9b3d2a4866f0d1c2b3a495867788990a")
HANDSHAKE = (b"\x13BitTorrent protocol" + bytes.fromhex("0000000000100005") + INFO_HASH
             + b"-qB4650-" + b"Xk2pQ9vL0aZr")  # 68 bytes
SERVER, SERVER6, SERVER_MAC = "10.77.0.1", "2001:db8:77::1", "02:00:00:77:00:01"
T0 = 1_700_000_000.0
LOREM = bytes(range(32, 127)) * 16


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    src: str
    pieces: list[tuple[int, bytes]]  # (offset from the first payload byte, bytes), in order
    expect: str  # "handshake" or "none"
    info_hash: bool = False
    syn: bool = True
    dport: int = 443


def cuts(points: list[int], data: bytes = HANDSHAKE) -> list[tuple[int, bytes]]:
    edges = [0, *points, len(data)]
    return [(a, data[a:b]) for a, b in pairwise(edges)]


def cases() -> list[Case]:
    out = [Case(f"cut after {at}", f"10.77.1.{at}", cuts([at]), "handshake",
                info_hash=at < 17 or at >= 48) for at in range(1, len(HANDSHAKE))]
    out += [
        Case("first 19 bytes one at a time (red-team split-bytes)", "10.77.2.1",
             cuts(list(range(1, 20))), "handshake"),
        Case("all 68 bytes one at a time", "10.77.2.2", cuts(list(range(1, 68))), "handshake"),
        Case("cut after 10, the continuation first", "10.77.2.3", cuts([10])[::-1],
             "handshake", info_hash=True),
        Case("cut after 6, first piece retransmitted", "10.77.2.4",
             [*cuts([6])[:1], *cuts([6])], "handshake", info_hash=True),
        Case("cut after 8 and 14, no SYN captured", "10.77.2.5", cuts([8, 14]), "handshake",
             info_hash=True, syn=False),
        Case("cut after 5, IPv6", "2001:db8:77::2:6", cuts([5]), "handshake", info_hash=True),
        Case("cut after 3 and 12, to the BitTorrent port", "10.77.2.7", cuts([3, 12]),
             "handshake", info_hash=True, dport=6881),
        Case("keystrokes, one byte each", "10.77.3.1",
             [(i, bytes([c])) for i, c in enumerate(b"ls -l /etc\r")], "none", dport=23),
        Case("a bulk segment starting with 'protocol' mid-flow", "10.77.3.2",
             [(0, LOREM[:1448]), (1448, b"protocol " + LOREM[:1439])], "none", dport=80),
        Case("\\x13 then no BitTorrent", "10.77.3.3",
             [(0, b"\x13"), (1, b"BitTorrenz protocol" + bytes(48))], "none"),
    ]
    return out


def _flow(case: Case, start: float, rng: random.Random) -> list[Packet]:
    v6 = ":" in case.src
    ip_c = IPv6(src=case.src, dst=SERVER6) if v6 else IP(src=case.src, dst=SERVER)
    ip_s = IPv6(src=SERVER6, dst=case.src) if v6 else IP(src=SERVER, dst=case.src)
    mac_c = "02:00:00:77:%02x:%02x" % (rng.randrange(256), rng.randrange(256))  # noqa: UP031
    eth_c, eth_s = Ether(src=mac_c, dst=SERVER_MAC), Ether(src=SERVER_MAC, dst=mac_c)
    sport = rng.randrange(32768, 61000)
    # some ISNs a few bytes below 2**32, so the handshake's bytes wrap the sequence space
    isn_c = rng.choice([rng.randrange(2**32), 2**32 - rng.randrange(1, 40)])
    isn_s = rng.randrange(2**32)
    ts = rng.randrange(10**6, 10**9)
    c1, s1 = (isn_c + 1) & 0xFFFFFFFF, (isn_s + 1) & 0xFFFFFFFF
    t = start
    out: list[Packet] = []

    def add(pkt: Packet) -> None:
        nonlocal t
        pkt.time = t
        out.append(pkt)
        t += 0.01

    def opts(n: int) -> list[tuple[str, object]]:
        return [("NOP", None), ("NOP", None), ("Timestamp", (ts + n, ts + n - 1))]

    if case.syn:
        add(eth_c / ip_c / TCP(sport=sport, dport=case.dport, flags="S", seq=isn_c,
                               options=[("MSS", 1460), ("SAckOK", b""), *opts(0),
                                        ("WScale", 7)]))
        add(eth_s / ip_s / TCP(sport=case.dport, dport=sport, flags="SA", seq=isn_s,
                               ack=c1, options=[("MSS", 1460), *opts(0)]))
        add(eth_c / ip_c / TCP(sport=sport, dport=case.dport, flags="A", seq=c1, ack=s1,
                               options=opts(1)))
    for n, (offset, data) in enumerate(case.pieces, 2):
        seq = (c1 + offset) & 0xFFFFFFFF
        add(eth_c / ip_c / TCP(sport=sport, dport=case.dport, flags="PA", seq=seq, ack=s1,
                               options=opts(n)) / Raw(data))
        add(eth_s / ip_s / TCP(sport=case.dport, dport=sport, flags="A", seq=s1,
                               ack=(seq + len(data)) & 0xFFFFFFFF, options=opts(n)))
    return out


def main() -> None:
    rng = random.Random(1768)
    frames: list[Packet] = []
    labels = []
    for n, case in enumerate(cases()):
        frames += _flow(case, T0 + n, rng)
        result = "none" if case.expect == "none" else (
            f"handshake {INFO_HASH.hex() if case.info_hash else '-'}")
        labels.append(f"{case.src} {result}  # {case.name}\n")
    wrpcap(str(HERE / "bt_split.pcap"), frames)
    (HERE / "bt_split.labels").write_text("".join(labels))


if __name__ == "__main__":
    main()
