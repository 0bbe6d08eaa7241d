"""Parse the annotated sample files in tests/data/detect/ (fail2ban-style samples).

Each YAML file holds cases; a case has ``expect`` (the findings, written above the
packets) and ``packets``, one per line::

    TS MAC SRC > DST tcp FLAGS [payload=b'...'] [len=N] [win=N] [seq=N]
    TS MAC SRC > DST udp [payload=b'...']
    TS MAC SRC > DST icmp type=3 code=3 [quote=udp:SRC>DST]
    TS MAC arp request|reply SENDER_IP SENDER_MAC TARGET_IP TARGET_MAC [eth=DST_MAC]
    repeat N every SECONDS: <a line above, with {i} or {i+K} placeholders>

SRC/DST are ``ip:port`` (``[v6]:port``) or a bare address for ICMP. Flags are
tcpdump letters (``S``, ``SA``, ``R``, ``RA``, ``F``, ``FA``, ``FPU``, ``A``) or ``none``.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator

from edgeguard.net.packet import ArpInfo, IcmpQuote, Packet

__all__ = ["parse_packets"]

_FLAGS = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, "A": 0x10, "U": 0x20, "E": 0x40, "C": 0x80}
_REPEAT = re.compile(r"^repeat (\d+) every ([0-9.]+):\s*(.*)$")
_PLACEHOLDER = re.compile(r"\{i(?:\+(\d+))?\}")


def _addr(text: str) -> tuple[str, int]:
    if text.startswith("["):
        host, _, port = text[1:].partition("]:")
        return host, int(port or 0)
    if text.count(":") == 1:
        host, port = text.split(":")
        return host, int(port)
    return text, 0


_PAYLOAD = re.compile(r"""payload=(b'(?:[^'\\]|\\.)*')""")


def _options(words: list[str]) -> dict[str, str]:
    out = {}
    for word in words:
        key, _, value = word.partition("=")
        out[key] = value
    return out


def _line(line: str) -> Packet:
    payload = _PAYLOAD.search(line)
    if payload is not None:
        line = line[:payload.start()] + line[payload.end():]
    words = line.split()
    if payload is not None:
        words.append(f"payload={payload.group(1)}")
    ts, mac = float(words[0]), words[1]
    if words[2] == "arp":
        op = 1 if words[3] == "request" else 2
        opts = _options(words[8:])
        default_dst = "ff:ff:ff:ff:ff:ff" if op == 1 else words[7]
        return Packet(ts=ts, wire_len=42, src_mac=mac, dst_mac=opts.get("eth", default_dst),
                      ethertype=0x0806, arp=ArpInfo(op, words[5], words[4], words[7], words[6]))
    (src, sport), (dst, dport) = _addr(words[2]), _addr(words[4])
    proto_name = words[5]
    version = 6 if ":" in src else 4
    pkt = Packet(ts=ts, wire_len=60, src_mac=mac, dst_mac="02:00:00:00:00:fe",
                 ethertype=0x86DD if version == 6 else 0x0800, ip_version=version,
                 src_ip=src, dst_ip=dst, ttl=64, sport=sport, dport=dport)
    rest = words[6:]
    if proto_name == "tcp":
        pkt.proto = 6
        flags = rest.pop(0)
        pkt.tcp_flags = 0 if flags == "none" else sum(_FLAGS[c] for c in flags)
    elif proto_name == "udp":
        pkt.proto = 17
    else:
        pkt.proto = 1 if version == 4 else 58
    opts = _options(rest)
    if "payload" in opts:
        pkt.payload = ast.literal_eval(opts["payload"])
        pkt.payload_len = len(pkt.payload)
    if "len" in opts:
        pkt.payload_len = int(opts["len"])
    if "seq" in opts:
        pkt.tcp_seq = int(opts["seq"])
    if "win" in opts:
        pkt.tcp_window = int(opts["win"])
    if "type" in opts:
        pkt.icmp_type, pkt.icmp_code = int(opts["type"]), int(opts.get("code", "0"))
    if "quote" in opts:
        qproto, _, flow = opts["quote"].partition(":")
        qsrc, _, qdst = flow.partition(">")
        (qs, qsp), (qd, qdp) = _addr(qsrc), _addr(qdst)
        pkt.icmp_quote = IcmpQuote(qs, qd, 17 if qproto == "udp" else 6, qsp, qdp)
    return pkt


def parse_packets(text: str) -> list[Packet]:
    """The case's packets in capture (time) order."""
    return sorted(_packets(text), key=lambda p: p.ts)


def _packets(text: str) -> Iterator[Packet]:
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        match = _REPEAT.match(line)
        if match is None:
            yield _line(line)
            continue
        count, step, template = int(match.group(1)), float(match.group(2)), match.group(3)
        for i in range(count):
            expanded = _PLACEHOLDER.sub(lambda m, i=i: str(i + int(m.group(1) or 0)), template)
            words = expanded.split(" ", 1)
            yield _line(f"{float(words[0]) + i * step:.6f} {words[1]}")
