"""Write ``filter_cases.pcap``: crafted frames, each labelled keep/drop for the filter.

The label of frame N is line N of ``filter_cases.labels`` (``keep <why>`` or
``drop <why>``). Re-run with ``PYTHONPATH=. python tests/data/pcaps/make_filter_cases.py``.
Crafted with scapy because these shapes (VLAN, IPv6 extension chains, large uTP/BEP 15
datagrams, odd TCP flags) are missing from the corpus or too rare in it.
"""

from __future__ import annotations

from pathlib import Path

from scapy.layers.inet import ICMP, IP, TCP, UDP, IPerror, UDPerror
from scapy.layers.inet6 import (
    ICMPv6EchoRequest,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
)
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Packet, Raw
from scapy.utils import wrpcap

HERE = Path(__file__).resolve().parent
E = Ether(src="02:00:00:00:00:07", dst="02:00:00:00:00:05")
V4 = IP(src="192.0.2.7", dst="192.0.2.5")
V6 = IPv6(src="2001:db8::7", dst="2001:db8::5")
TS = [("NOP", None), ("NOP", None), ("Timestamp", (100, 200))]
BULK = bytes(range(256)) * 6  # 1536 bytes, cut to 1448 below
HANDSHAKE = (b"\x13BitTorrent protocol" + bytes.fromhex("0000000000100005") + bytes(range(20))
             + b"-qB4650-" + bytes(12))  # 68 bytes


def cases() -> list[tuple[str, Packet]]:
    c: list[tuple[str, Packet]] = [
        ("keep syn", E / V4 / TCP(dport=22, flags="S")),
        ("keep syn-ack", E / V4 / TCP(sport=22, flags="SA")),
        ("keep rst", E / V4 / TCP(flags="R")),
        ("keep rst-ack", E / V4 / TCP(flags="RA", options=TS)),
        ("keep fin probe", E / V4 / TCP(flags="F")),
        ("keep null probe", E / V4 / TCP(flags="")),
        ("keep xmas probe", E / V4 / TCP(flags="FPU")),
        ("keep maimon probe", E / V4 / TCP(flags="FA")),
        ("keep ack probe (no options)", E / V4 / TCP(flags="A", window=1024)),
        ("drop pure ack with timestamps", E / V4 / TCP(flags="A", options=TS)),
        ("drop bulk data segment", E / V4 / TCP(flags="A", options=TS) / Raw(BULK[:1448])),
        ("drop bulk pushed segment", E / V4 / TCP(flags="PA", options=TS) / Raw(BULK[:1448])),
        ("keep bt handshake", E / V4 / TCP(flags="PA", options=TS)
         / Raw(b"\x13BitTorrent protocol" + bytes(48))),
        ("keep bt handshake on 443", E / V4 / TCP(dport=443, flags="PA")
         / Raw(b"\x13BitTorrent protocol" + bytes(48))),
        ("keep split handshake, first byte", E / V4 / TCP(flags="PA") / Raw(b"\x13")),
        ("keep split handshake, rest", E / V4 / TCP(flags="PA") / Raw(b"BitTorrent protocol")),
        ("keep split handshake, after 2", E / V4 / TCP(flags="PA") / Raw(b"itTorrent protocol")),
        ("keep split handshake, after 4", E / V4 / TCP(dport=443, flags="PA", options=TS)
         / Raw(HANDSHAKE[4:])),
        ("keep split handshake, after 10", E / V4 / TCP(dport=443, flags="PA", options=TS)
         / Raw(HANDSHAKE[10:])),
        ("keep split handshake, after 16", E / V4 / TCP(dport=443, flags="PA", options=TS)
         / Raw(HANDSHAKE[16:])),
        ("keep split handshake, unpushed middle piece", E / V4 / TCP(flags="A", options=TS)
         / Raw(HANDSHAKE[7:15])),
        ("keep split handshake, one byte not the first", E / V4 / TCP(flags="PA", options=TS)
         / Raw(b"B")),
        ("keep tiny payload, 2 bytes", E / V4 / TCP(flags="PA", options=TS) / Raw(b"ab")),
        ("keep tiny payload, 3 bytes unpushed", E / V4 / TCP(flags="A", options=TS)
         / Raw(b"col")),
        ("drop split handshake, after 17 (no whole window left)", E / V4
         / TCP(dport=443, flags="PA", options=TS) / Raw(HANDSHAKE[17:])),
        ("drop 4 bytes, not a window", E / V4 / TCP(flags="PA", options=TS) / Raw(b"abcd")),
        ("drop bulk segment starting with a near window", E / V4 / TCP(flags="A", options=TS)
         / Raw(b"torrent protocol" + BULK[:1432])),
        ("drop bulk segment with a window past offset 0", E / V4 / TCP(flags="A", options=TS)
         / Raw(b"x" + HANDSHAKE + BULK[:1379])),
        ("keep http get", E / V4 / TCP(dport=80, flags="PA") / Raw(b"GET /announce?info_hash=x")),
        ("keep http post", E / V4 / TCP(dport=80, flags="PA") / Raw(b"POST / HTTP/1.1\r\n")),
        ("keep http head", E / V4 / TCP(dport=80, flags="PA") / Raw(b"HEAD / HTTP/1.1\r\n")),
        ("keep http response", E / V4 / TCP(sport=80, flags="A") / Raw(b"HTTP/1.1 200 OK" +
                                                                       BULK[:1400])),
        ("keep torrent file body", E / V4 / TCP(flags="A") / Raw(b"d8:announce" + BULK[:1000])),
        ("keep bencode over tcp", E / V4 / TCP(flags="A") / Raw(b"d1:ad2:id20:" + bytes(900))),
        ("keep mse opening 96", E / V4 / TCP(flags="PA", options=TS) / Raw(BULK[7:103])),
        ("keep mse opening 608", E / V4 / TCP(flags="PA", options=TS) / Raw(BULK[7:615])),
        ("drop pushed 95", E / V4 / TCP(flags="PA", options=TS) / Raw(BULK[7:102])),
        ("drop pushed 609", E / V4 / TCP(flags="PA", options=TS) / Raw(BULK[7:616])),
        ("drop unpushed 300", E / V4 / TCP(flags="A", options=TS) / Raw(BULK[7:307])),
        ("keep udp probe empty", E / V4 / UDP(dport=161)),
        ("keep dns query", E / V4 / UDP(dport=53) / Raw(bytes(40))),
        ("keep udp 512", E / V4 / UDP(dport=9999) / Raw(bytes(512))),
        ("drop udp 513 no shape", E / V4 / UDP(dport=9999) / Raw(b"\xff" * 513)),
        ("drop quic-like 1200", E / V4 / UDP(dport=443) / Raw(b"\xc3" + bytes(1199))),
        ("keep bep15 connect large", E / V4 / UDP(dport=6969)
         / Raw(bytes.fromhex("0000041727101980") + bytes(600))),
        ("keep dht large", E / V4 / UDP(dport=6881) / Raw(b"d1:rd2:id20:" + bytes(700))),
        ("keep utp state large", E / V4 / UDP(dport=6881) / Raw(b"\x21\x00" + bytes(700))),
        ("keep utp syn", E / V4 / UDP(dport=6881) / Raw(b"\x41\x00" + bytes(18))),
        ("drop utp data large", E / V4 / UDP(dport=6881) / Raw(b"\x01\x00" + bytes(1200))),
        ("keep lsd", E / IP(src="192.0.2.7", dst="239.192.152.143") / UDP(dport=6771)
         / Raw(b"BT-SEARCH * HTTP/1.1\r\nHost: 239.192.152.143:6771\r\n" + bytes(600))),
        ("keep icmp echo", E / V4 / ICMP(type=8)),
        ("keep icmp unreachable", E / V4 / ICMP(type=3, code=3) / IPerror() / UDPerror()),
        ("keep arp", E / ARP(op=1)),
        ("drop lldp", Ether(dst="01:80:c2:00:00:0e", type=0x88CC) / Raw(bytes(40))),
        ("drop later ipv4 fragment", E / IP(src="192.0.2.7", dst="192.0.2.5", frag=185,
                                          proto=6) / Raw(bytes(100))),
        ("keep vlan syn", E / Dot1Q(vlan=7) / V4 / TCP(flags="S")),
        ("drop vlan bulk", E / Dot1Q(vlan=7) / V4 / TCP(flags="A", options=TS) / Raw(BULK[:1448])),
        ("keep vlan ipv6 syn", E / Dot1Q(vlan=7) / V6 / TCP(flags="S")),
        ("keep ipv6 syn", E / V6 / TCP(flags="S")),
        ("drop ipv6 bulk", E / V6 / TCP(flags="A", options=TS) / Raw(BULK[:1428])),
        ("keep ipv6 hbh+dst syn", E / V6 / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt()
         / TCP(flags="S")),
        ("keep ipv6 routing+frag0 syn", E / V6 / IPv6ExtHdrRouting() / IPv6ExtHdrFragment(offset=0)
         / TCP(flags="S")),
        ("drop ipv6 hbh bulk", E / V6 / IPv6ExtHdrHopByHop() / TCP(flags="A", options=TS)
         / Raw(BULK[:1400])),
        ("drop ipv6 later fragment", E / V6 / IPv6ExtHdrFragment(offset=100, nh=6)
         / Raw(bytes(200))),
        ("keep ipv6 utp syn", E / V6 / UDP(dport=6881) / Raw(b"\x41\x00" + bytes(18))),
        ("keep icmpv6 echo", E / V6 / ICMPv6EchoRequest()),
    ]
    return c


def main() -> None:
    labelled = cases()
    wrpcap(str(HERE / "filter_cases.pcap"), [p for _, p in labelled])
    (HERE / "filter_cases.labels").write_text("".join(f"{label}\n" for label, _ in labelled))


if __name__ == "__main__":
    main()
