"""Which packets are scan probes, and of what type.

* a SYN (no ACK) opens a first contact; SYN-ACK, RST and ICMP errors are answers;
* FIN, NULL and XMAS (no ACK) are never legitimate: each is a failed contact at once;
* FIN/ACK (Maimon) and bare ACK are ordinary on open connections, so they are only
  *candidates*: a probe when the flow has no history (never seen opening, no payload,
  no earlier FIN/ACK or ACK from either side) and the target answers with RST (which
  it does for every ACK/Maimon probe to an unknown connection). A keep-alive flow that
  began before the capture and closes during it (client FIN/ACK, server FIN/ACK, client
  RST) therefore gives at most the first FIN/ACK as a candidate, and that one is
  answered by a FIN/ACK, not a RST;
* UDP to a port is a contact unless it answers a datagram seen the other way or comes
  from a low service port to a high one (a server's reply).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from socket import inet_aton
from typing import Final

from edgeguard.net.detect.common import BoundedTable, is_multicast_or_broadcast
from edgeguard.net.packet import Packet, TcpFlags

__all__ = ["Probe", "ProbeClassifier", "masscan_fingerprint"]

FlowKey = tuple[str, int, str, int]

_FIN, _SYN, _RST, _PSH, _ACK, _URG = (TcpFlags.FIN, TcpFlags.SYN, TcpFlags.RST, TcpFlags.PSH,
                                      TcpFlags.ACK, TcpFlags.URG)


@dataclass(frozen=True, slots=True)
class Probe:
    kind: str  # syn | fin | null | xmas | maimon | ack | udp
    #: "now": failed at once; "timeout": silence is failure; "answer": only an answer
    #: (RST / ICMP error) makes it a failure; "confirm": not a probe until answered
    settle: str


#: Hex digits with the low bit set: a MAC's second digit among these is a group address
#: (no ``int(mac[:2], 16)`` per datagram).
_ODD_DIGITS: Final = frozenset("13579bdfBDF")

_SYN_PROBE = Probe("syn", "timeout")
_UDP_PROBE = Probe("udp", "answer")
_ODD = {"fin": Probe("fin", "now"), "null": Probe("null", "now"), "xmas": Probe("xmas", "now")}
_MAIMON = Probe("maimon", "confirm")
_ACK_PROBE = Probe("ack", "confirm")


def _flow(pkt: Packet) -> FlowKey:
    """The flow's key, the same from both ends (the lower (address, port) first)."""
    src, sport, dst, dport = pkt.src_ip, pkt.sport, pkt.dst_ip, pkt.dport
    if src < dst or (src == dst and sport <= dport):
        return (src, sport, dst, dport)
    return (dst, dport, src, sport)


class ProbeClassifier:
    """Remembers which TCP flows opened and which UDP conversations exist (bounded)."""

    def __init__(self, cap: int) -> None:
        self.tcp_flows: BoundedTable[FlowKey, None] = BoundedTable(cap)
        self.udp_flows: BoundedTable[FlowKey, None] = BoundedTable(cap)

    def classify(self, pkt: Packet) -> Probe | None:
        if pkt.proto == 6:
            return self._tcp(pkt)
        if pkt.proto == 17:
            return self._udp(pkt)
        return None

    def _tcp(self, pkt: Packet) -> Probe | None:  # noqa: PLR0911 (a decision table)
        flags = pkt.tcp_flags & 0x3F  # ECE/CWR (ECN) do not change the probe type
        if flags & _RST:
            return None
        if flags & _SYN:
            self.tcp_flows.put(_flow(pkt), None)
            return None if flags & _ACK else _SYN_PROBE
        if not flags & _ACK:
            if flags & _FIN:
                return _ODD["xmas"] if flags & _PSH and flags & _URG else _ODD["fin"]
            return _ODD["null"]
        flow = _flow(pkt)
        if self.tcp_flows.has(flow):
            return None
        self.tcp_flows.put(flow, None)  # from now on the flow has a history
        if pkt.payload_len:
            return None
        if flags == _FIN | _ACK:
            return _MAIMON
        return _ACK_PROBE if flags == _ACK else None

    def _udp(self, pkt: Packet) -> Probe | None:
        dst_mac = pkt.dst_mac
        if is_multicast_or_broadcast(pkt.dst_ip) or (
                dst_mac and dst_mac[1] in _ODD_DIGITS):  # the MAC's group bit
            return None  # a broadcast or multicast target is not a contact
        key = _flow(pkt)
        if self.udp_flows.has(key):
            # a conversation already seen: either the other side's reply or more of
            # the same exchange; only its first datagram was a contact
            return None
        self.udp_flows.put(key, None)
        if pkt.sport < 1024 <= pkt.dport:
            return None  # a service answering a client we did not see asking
        return _UDP_PROBE


def masscan_fingerprint(pkt: Packet) -> bool:
    """masscan's SYN: no TCP options and, over IPv4, IP id = (destination ^ port ^
    sequence) & 0xFFFF (nmap's SYN carries an MSS option and a random id)."""
    if pkt.tcp_hdr_len != 20:
        return False
    if pkt.ip_version != 4:
        return pkt.tcp_window == 1024
    return pkt.ip_id == (_ipv4_number(pkt.dst_ip) ^ pkt.dport ^ pkt.tcp_seq) & 0xFFFF


@functools.lru_cache(maxsize=4096)
def _ipv4_number(address: str) -> int:
    """The address as a number, remembered: a scan sends many probes to each host."""
    return int.from_bytes(inet_aton(address), "big")
