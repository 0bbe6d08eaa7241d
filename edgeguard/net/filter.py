"""The capture filter: what the detectors need, and nothing of the bulk.

One cBPF program, attached to the AF_PACKET socket in the kernel and run by ``replay``
over capture files. It passes:

* ARP; all ICMP and ICMPv6 (echo, unreachable with the quoted datagram, NDP);
* TCP with SYN, FIN or RST set (SYN/connect scans and their answers, FIN/XMAS/Maimon
  probes, resets), TCP without ACK (NULL and other odd probes), TCP with URG;
* ACK-only TCP without payload and without options (``-sA`` probes carry no options;
  established stacks that use timestamps always carry them);
* the first payload bytes of TCP flows, statelessly: a segment whose payload starts with
  any 4-byte window of the BitTorrent handshake's protocol string ``\\x13BitTorrent
  protocol`` (``\\x13Bit`` at offset 0 through ``ocol`` at 16: the handshake, or its
  continuation when it is split across segments at any of those offsets), any segment
  of 1-``TINY_TCP`` (3) payload bytes (a handshake sent a few bytes at a time; such
  segments are rare and never bulk), an HTTP request (``GET ``/``POST``/``HEAD``) or
  response (``HTTP``), bencode (``d8:a``, ``d1:``); and PSH segments whose payload is
  ``mse_min``..``mse_max`` bytes, the size of an MSE/PE key exchange (96-608 bytes).
  A filter without state cannot know that a
  segment is a flow's first: an MSE opening looks like any mid-sized pushed segment, so
  mid-sized pushed segments of established flows (interactive SSH, the last segment
  of an HTTP response) pass too. Full-sized data segments and pure ACKs, the bulk,
  never do;
* UDP whose payload is at most ``small_udp`` bytes (UDP scan probes, DNS, NTP, DHT,
  uTP control packets, BEP 15 tracker traffic), UDP to port 6771 (BitTorrent local
  service discovery, 239.192.152.143 / ff15::efc0:988f), and larger UDP only with a P2P
  shape at payload offset 0 (BEP 15 connect magic ``0x41727101980``, bencode ``d1:``,
  a uTP header of version 1 and type 1-4) or, 1 in ``udp_sample``, at random
  (``SKF_AD_RANDOM``) so large-payload floods stay visible;
* IPv4 (no later fragments) and IPv6 with up to three extension headers (hop-by-hop,
  routing, destination options, fragment); one 802.1Q / 802.1ad tag in the frame.

Link header: Ethernet (``SOCK_RAW`` on an Ethernet interface, and every ``replay``:
other capture link types are rewritten to Ethernet first, :mod:`edgeguard.net.linktype`),
or none at all when ``cooked`` (a ``SOCK_DGRAM`` socket on a tun/WireGuard/PPP
interface or on ``any``): the packet then starts at the IP header and the ethertype is
the kernel's ``skb->protocol`` (``SKF_AD_PROTOCOL``), so every offset below stays right.

Load shedding (:mod:`edgeguard.net.shed`): while a flood toward an IPv4 address is in
progress, the live worker rebuilds the program with that address in ``shed_syn`` (a SYN
flood: TCP segments with SYN or RST set to or from the address, i.e. the flood, its
SYN-ACKs and its resets) or ``shed_udp`` (UDP to or from it); those packets then pass
1 in ``shed_sample`` at random, so a line-rate flood costs the kernel, not the worker.
Every other packet (payload, pure ACKs, ICMP, ARP, other addresses) is judged as before.

Everything returns ``snap_length`` bytes (headers plus the first payload bytes).
"""

from __future__ import annotations

from dataclasses import dataclass

from edgeguard.net.bpf import (
    SKF_AD_PROTOCOL,
    SKF_AD_RANDOM,
    Insn,
    Program,
    assemble,
    ja,
    jeq,
    jge,
    jgt,
    jset,
    label,
    ld,
    ldx,
    op,
    ret,
    st,
    stx,
    tax,
    txa,
)

__all__ = ["FilterSpec", "build_filter", "filter_source", "power_of_two_floor"]

# scratch memory words
M_L4LEN, M_TMP, M_NH, M_THL, M_XSAVE, M_PLEN, M_FLAGS, M_LINK = 0, 1, 2, 3, 4, 5, 6, 15
M_DST, M_SRC = 7, 8  # IPv4 addresses, stored only when shedding

#: The BitTorrent peer-wire handshake's protocol string (BEP 3). A TCP segment whose
#: payload starts with any 4-byte window of it is a piece of a handshake split at that
#: offset (offsets 0-16; the windows are all distinct).
BT_PROTOCOL = b"\x13BitTorrent protocol"
BT_WINDOWS = tuple(int.from_bytes(BT_PROTOCOL[i:i + 4], "big")
                   for i in range(len(BT_PROTOCOL) - 3))
#: Payloads of at most this many bytes pass whatever they hold: a handshake sent a few
#: bytes at a time (too short to compare a 4-byte window).
TINY_TCP = 3
TCP_WORDS = (
    *BT_WINDOWS,
    0x47455420,  # "GET "
    0x504F5354,  # "POST"
    0x48454144,  # "HEAD"
    0x48545450,  # "HTTP"
    0x64383A61,  # "d8:a"
)
BENCODE_D1 = 0x64313A00  # "d1:" in the top three bytes
BEP15_MAGIC_HI, BEP15_MAGIC_LO = 0x00000417, 0x27101980
UTP_CONTROL = (0x11, 0x21, 0x31, 0x41)  # uTP v1 types FIN, STATE, RESET, SYN
LSD_PORT = 6771
IPV6_EXT = (0, 43, 60)  # hop-by-hop, routing, destination options
IPV6_FRAG = 44
IPV6_EXT_DEPTH = 3


@dataclass(frozen=True, slots=True)
class FilterSpec:
    """The filter's knobs (from the policy's capture keys)."""

    snap_length: int = 256
    small_udp: int = 512
    mse_min: int = 96
    mse_max: int = 608
    udp_sample: int = 64  # pass 1 in N large UDP datagrams without a P2P shape; 0: none
    shed_sample: int = 16  # pass 1 in N of the packets of a shed flood
    shed_syn: tuple[int, ...] = ()  # IPv4 addresses (as integers): SYN/RST to or from them
    shed_udp: tuple[int, ...] = ()  # IPv4 addresses: UDP to or from them
    cooked: bool = False  # no link header (SOCK_DGRAM): ethertype from SKF_AD_PROTOCOL

    def __post_init__(self) -> None:
        for name in ("udp_sample", "shed_sample"):
            n = getattr(self, name)
            if n < 0 or n & (n - 1):
                raise ValueError(f"{name} must be 0 or a power of two")

    @property
    def shedding(self) -> bool:
        return bool(self.shed_sample > 1 and (self.shed_syn or self.shed_udp))


def power_of_two_floor(n: int) -> int:
    """The largest power of two not above ``n`` (0 for 0): sampling masks need one."""
    return 1 << (n.bit_length() - 1) if n > 0 else 0


def _shed(spec: FilterSpec, dsts: tuple[int, ...], name: str, keep: str) -> list[Insn]:
    """Packets to or from one of ``dsts`` pass 1 in ``spec.shed_sample`` (then
    ``accept``); the others go on at ``keep``. Leaves X alone."""
    if not spec.shedding or not dsts:
        return []
    out: list[Insn] = []
    for end in (M_DST, M_SRC):
        out.append(ld(mem=end))
        for n, dst in enumerate(dsts):
            out += [jeq(dst, f"{name}_sample", f"{name}_{end}_{n}"), label(f"{name}_{end}_{n}")]
    return [*out, ja(keep),
            label(f"{name}_sample"), ld(ancillary=SKF_AD_RANDOM),
            op("and", spec.shed_sample - 1), jeq(0, "accept", "drop")]


def _link(spec: FilterSpec) -> list[Insn]:
    if spec.cooked:
        return [ldx(imm=0), stx(M_LINK), ld(ancillary=SKF_AD_PROTOCOL), *_by_ethertype()]
    return [
        ld("h", abs_=12),
        jeq(0x8100, "vlan", "vlan_ad"),
        label("vlan_ad"),
        jeq(0x88A8, "vlan", "novlan"),
        label("vlan"),
        ld("h", abs_=16),
        ldx(imm=18),
        ja("link_done"),
        label("novlan"),
        ldx(imm=14),
        label("link_done"),
        stx(M_LINK),
        *_by_ethertype(),
    ]


def _by_ethertype() -> list[Insn]:
    """A = the ethertype, X = the network header's offset."""
    return [
        jeq(0x0806, "accept", "not_arp"),
        label("not_arp"),
        jeq(0x0800, "ipv4", "not_v4"),
        label("not_v4"),
        jeq(0x86DD, "ipv6", "drop"),
    ]


def _ipv4(spec: FilterSpec) -> list[Insn]:
    # X = link header length. Leaves A = protocol, X = transport offset, M[L4LEN]
    # (and M[DST], the destination address, when shedding).
    dst = [ld("w", ind=16), st(M_DST), ld("w", ind=12), st(M_SRC)] if spec.shedding else []
    return [
        label("ipv4"),
        ld("h", ind=6), jset(0x1FFF, "drop", "v4_first"),  # later fragments: no header
        label("v4_first"),
        *dst,
        ld("b", ind=0), op("and", 0x0F), op("lsh", 2), st(M_TMP),  # IHL in bytes
        ld("b", ind=9), st(M_NH),
        ld("h", ind=2), st(M_L4LEN),
        ldx(mem=M_TMP), ld(mem=M_L4LEN), op("sub"), st(M_L4LEN),
        ld(mem=M_LINK), op("add"), tax(),
        ld(mem=M_NH), ja("transport"),
    ]


def _ipv6(spec: FilterSpec) -> list[Insn]:
    out = [
        label("ipv6"),
        # IPv6 floods are not shed; the kernel wants every scratch word stored before
        # it is read, whichever path a packet took
        *([ld(imm=0), st(M_DST), st(M_SRC)] if spec.shedding else []),
        ld("h", ind=4), st(M_L4LEN),
        ld("b", ind=6), st(M_NH),
        txa(), op("add", 40), tax(), ld(mem=M_NH),
    ]
    for depth in range(IPV6_EXT_DEPTH):
        nxt = f"v6_ext{depth + 1}" if depth + 1 < IPV6_EXT_DEPTH else "v6_deep"
        ext, frag = f"v6_opt{depth}", f"v6_frag{depth}"
        out += [
            jeq(IPV6_EXT[0], ext, f"v6_{depth}_a"), label(f"v6_{depth}_a"),
            jeq(IPV6_EXT[1], ext, f"v6_{depth}_b"), label(f"v6_{depth}_b"),
            jeq(IPV6_EXT[2], ext, f"v6_{depth}_c"), label(f"v6_{depth}_c"),
            jeq(IPV6_FRAG, frag, "transport"),
            label(ext),
            ld("b", ind=0), st(M_NH),
            ld("b", ind=1), op("add", 1), op("lsh", 3), st(M_TMP),
            stx(M_XSAVE), ldx(mem=M_TMP), ld(mem=M_L4LEN), op("sub"), st(M_L4LEN),
            ld(mem=M_XSAVE), op("add"), tax(), ld(mem=M_NH), ja(nxt),
            label(frag),
            ld("h", ind=2), jset(0xFFF8, "drop", f"{frag}_first"), label(f"{frag}_first"),
            ld("b", ind=0), st(M_NH),
            ld(mem=M_L4LEN), op("sub", 8), st(M_L4LEN),
            txa(), op("add", 8), tax(), ld(mem=M_NH), ja(nxt),
        ]
        out.append(label(nxt))
    # deeper chains than we unroll: whatever header comes next is judged as transport
    out.append(ja("transport"))
    return out


def _transport() -> list[Insn]:
    return [
        label("transport"),
        jeq(6, "tcp", "t_not_tcp"), label("t_not_tcp"),
        jeq(17, "udp", "t_not_udp"), label("t_not_udp"),
        jeq(1, "accept", "t_not_icmp"), label("t_not_icmp"),
        jeq(58, "accept", "drop"),
    ]


def _tcp(spec: FilterSpec) -> list[Insn]:
    words: list[Insn] = []
    for n, word in enumerate(TCP_WORDS):
        words += [jeq(word, "accept", f"tcpw_{n}"), label(f"tcpw_{n}")]
    return [
        label("tcp"),
        ld("b", ind=13), st(M_FLAGS),
        *_tcp_shed(spec),
        jset(0x07, "accept", "tcp_nsfr"), label("tcp_nsfr"),  # FIN, SYN, RST
        jset(0x10, "tcp_ack", "accept"),  # no ACK: NULL and other odd probes
        label("tcp_ack"),
        jset(0x20, "accept", "tcp_nurg"), label("tcp_nurg"),  # URG (odd outside telnet)
        ld("b", ind=12), op("rsh", 4), op("lsh", 2), st(M_THL),
        stx(M_XSAVE), ldx(mem=M_THL), ld(mem=M_L4LEN), op("sub"), st(M_PLEN),
        jgt(0x7FFFFFFF, "drop", "tcp_plen_ok"), label("tcp_plen_ok"),  # length underflow
        jeq(0, "tcp_ackonly", "tcp_payload"),
        label("tcp_ackonly"),
        ld(mem=M_THL), jeq(20, "accept", "drop"),  # ACK probe: no options
        label("tcp_payload"),
        ld(mem=M_XSAVE), op("add"), tax(),  # X = payload offset
        ld(mem=M_PLEN), jgt(TINY_TCP, "tcp_word", "accept"),  # a handshake's few bytes
        label("tcp_word"),
        ld("w", ind=0),
        *words,
        op("and", 0xFFFFFF00), jeq(BENCODE_D1, "accept", "tcp_mse"),
        label("tcp_mse"),
        ld(mem=M_FLAGS), jset(0x08, "tcp_mse_size", "drop"),  # PSH
        label("tcp_mse_size"),
        ld(mem=M_PLEN), jge(spec.mse_min, "tcp_mse_max", "drop"),
        label("tcp_mse_max"),
        jgt(spec.mse_max, "drop", "accept"),
    ]


def _tcp_shed(spec: FilterSpec) -> list[Insn]:
    """A SYN or RST to or from a shed address is sampled; A = flags afterwards."""
    shed = _shed(spec, spec.shed_syn, "tcp_shed", "tcp_keep")
    if not shed:
        return []
    return [jset(0x06, "tcp_syn", "tcp_keep"), label("tcp_syn"), *shed,
            label("tcp_keep"), ld(mem=M_FLAGS)]


def _udp(spec: FilterSpec) -> list[Insn]:
    sample: list[Insn] = []
    if spec.udp_sample:
        sample = [ld(ancillary=SKF_AD_RANDOM), op("and", spec.udp_sample - 1),
                  jeq(0, "accept", "drop")]
    else:
        sample = [ja("drop")]
    utp: list[Insn] = []
    for n, byte in enumerate(UTP_CONTROL):
        utp += [jeq(byte, "accept", f"udp_utp{n}"), label(f"udp_utp{n}")]
    shed = _shed(spec, spec.shed_udp, "udp_shed", "udp_keep")
    return [
        label("udp"),
        *([*shed, label("udp_keep")] if shed else []),
        ld("h", ind=2), jeq(LSD_PORT, "accept", "udp_nlsd"), label("udp_nlsd"),
        ld(mem=M_L4LEN), op("sub", 8), jgt(spec.small_udp, "udp_big", "accept"),
        label("udp_big"),
        txa(), op("add", 8), tax(),
        ld("w", ind=0), jeq(BEP15_MAGIC_HI, "udp_bep15", "udp_nbep"),
        label("udp_bep15"),
        ld("w", ind=4), jeq(BEP15_MAGIC_LO, "accept", "udp_nbep"),
        label("udp_nbep"),
        ld("w", ind=0), op("and", 0xFFFFFF00), jeq(BENCODE_D1, "accept", "udp_nbenc"),
        label("udp_nbenc"),
        ld("b", ind=0), *utp,
        *sample,
    ]


def filter_source(spec: FilterSpec) -> list[Insn]:
    """The program as declarative instructions (before assembly)."""
    return [
        *_link(spec), *_ipv4(spec), *_ipv6(spec), *_transport(), *_tcp(spec), *_udp(spec),
        label("accept"), ret(spec.snap_length),
        label("drop"), ret(0),
    ]


def build_filter(spec: FilterSpec | None = None) -> Program:
    return assemble(filter_source(spec or FilterSpec()))
