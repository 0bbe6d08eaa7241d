"""BitTorrent family: plaintext signatures per packet, encrypted (MSE/PE) by inference.

A handshake split across TCP segments is joined first (:mod:`bt_handshake`).

Every signal is reported per (host, subtype, role) once, then again after
``bittorrent.report_every`` if it continues. Signals also go into the shared
:class:`HostIntel`, which the scan detector reads (peer fan-out is not a scan) and the
encrypted inference needs: an MSE/PE stream has no plaintext, so it is inferred from a
host already seen doing DHT/uTP/tracker/LSD that opens several high-entropy TCP flows
whose first payload is 96-608 bytes (the DH key plus padding), with a confidence; or,
with no other evidence from the host, from the exchange's shape alone: flows to
``encrypted_shape_peers`` distinct peers on distinct ports >= 1024 where the initiator's
*and* the responder's first payloads are both opaque and 96-608 bytes (Ya+PadA, then
Yb+PadB). No port is guessed; TLS, SSH, HTTP and other named openings never count.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import edgeguard.net.detect.bt_signatures as sig
from edgeguard.events import Finding, Flow, Severity
from edgeguard.net.config import NetworkConfig
from edgeguard.net.detect.bt_flows import FlowKey, Opening, TcpFlow, UtpFlow, flow_key
from edgeguard.net.detect.bt_handshake import HandshakeAssembler
from edgeguard.net.detect.common import (
    BoundedTable,
    ExclusionSet,
    endpoint,
    entropy_ratio,
    summary,
)
from edgeguard.net.detect.evidence import BitTorrentEvidence
from edgeguard.net.detect.intel import HostIntel
from edgeguard.net.packet import Packet, PacketClass

__all__ = ["KIND", "SUBTYPES", "BitTorrentDetector", "encrypted_confidence",
           "shape_confidence"]

KIND = "bittorrent"
#: One per signal; ``encrypted`` is the inferred MSE/PE one.
SUBTYPES = ("handshake", "http-tracker", "udp-tracker", "torrent-file", "dht", "utp", "lsd",
            "encrypted")

_MAX_PEERS = 16


@dataclass(slots=True)
class Activity:
    first: float
    last: float
    mac: str
    packets: int = 0
    peers: dict[str, None] = field(default_factory=dict)  # ordered set, capped
    reported_at: float | None = None
    port: int | None = None
    info_hash: str | None = None
    samples: list[str] = field(default_factory=list)


def encrypted_confidence(signals: int, flows: int, bittorrent_peers: int) -> float:
    """How sure the encrypted inference is: each independent clue removes part of the
    doubt. A BitTorrent signal of the host (DHT, uTP, tracker, LSD) weighs 0.3, each
    opaque flow beyond the first 0.15, each peer that is itself a BitTorrent host 0.2."""
    if signals <= 0 or flows <= 0:
        return 0.0
    doubt = 0.7 ** signals * 0.85 ** (flows - 1) * 0.8 ** bittorrent_peers
    return round(min(0.99, 1.0 - doubt), 2)


def shape_confidence(peers: int, needed: int) -> float:
    """Confidence of the shape-only inference: 0.6 at ``needed`` MSE/PE-shaped peers,
    each further peer removing a fifth of the remaining doubt."""
    return round(min(0.95, 1.0 - 0.4 * 0.8 ** max(0, peers - needed)), 2)


class BitTorrentDetector:
    name = "bittorrent"
    wants: frozenset[PacketClass] | None = None  # every packet

    def __init__(self, cfg: NetworkConfig, intel: HostIntel) -> None:
        self.cfg = cfg.bittorrent
        self.intel = intel
        self.exclusions = ExclusionSet(cfg.exclusions)
        self.acts: BoundedTable[tuple[str, str, str], Activity] = BoundedTable(
            self.cfg.max_hosts * 4)
        self.tcp: BoundedTable[FlowKey, TcpFlow] = BoundedTable(self.cfg.max_flows)
        self.utp: BoundedTable[FlowKey, UtpFlow] = BoundedTable(self.cfg.max_flows)
        self.udp_connects: BoundedTable[tuple[str, int, str, int], int] = BoundedTable(4096)
        # (flow, side) -> time from which an opaque opening counts (no handshake came)
        self.waiting: BoundedTable[tuple[FlowKey, str], float] = BoundedTable(
            self.cfg.max_flows)
        # host -> {peer: opening size} of its opaque flows
        self.opaque: BoundedTable[str, dict[str, int]] = BoundedTable(self.cfg.max_hosts)
        #: initiator -> {peer: listening port} of its MSE/PE-shaped flows (both sides)
        self.shaped: BoundedTable[str, dict[str, int]] = BoundedTable(self.cfg.max_hosts)
        self.handshakes = HandshakeAssembler(self.cfg)  # split across segments
        self.n_packets = 0
        self.n_signals = 0

    # -- the detector protocol ----------------------------------------------------------
    def observe(self, pkt: Packet) -> list[Finding]:
        self.n_packets += 1
        if not pkt.src_ip:
            return []
        if pkt.proto == 6:
            return self._tcp(pkt)
        if pkt.proto == 17 and pkt.payload:
            return self._udp(pkt)
        return []

    def tick(self, now: float) -> list[Finding]:
        self.handshakes.expire(now)
        out: list[Finding] = []
        hosts: dict[str, tuple[str, float]] = {}  # host -> (its MAC, latest opening)
        while (item := self.waiting.oldest()) is not None and item[1] <= now:
            (key, side), _ = item
            self.waiting.pop(item[0])
            flow = self.tcp.get(key)
            opening = None if flow is None else flow.opening(side)
            if flow is None or flow.plaintext or opening is None:
                continue
            peer = key[2] if key[0] == side else key[0]
            opened = self.opaque.touch(side)
            if opened is None:
                opened = {}
                self.opaque.put(side, opened)
            if peer not in opened and len(opened) < _MAX_PEERS:
                opened[peer] = opening.size
                act = self._activity(side, "encrypted", "peer", now, opening.mac)
                if len(act.samples) < 3:
                    act.samples.append(opening.sample)
            if side == flow.initiator:
                self._note_shape(flow, side, peer)
            hosts[side] = (opening.mac, max(opening.ts, hosts.get(side, ("", 0.0))[1]))
        for host, (mac, when) in hosts.items():
            # evidence is judged at the openings' time, not the tick's (a replay's
            # final flush runs far past the last packet)
            out.extend(self._infer_encrypted(host, mac, when))
        return out

    def counters(self) -> Mapping[str, int]:
        return {
            "packets": self.n_packets, "signals": self.n_signals,
            "activities": len(self.acts), "activities_evicted": self.acts.evicted,
            "tcp_flows": len(self.tcp), "tcp_flows_evicted": self.tcp.evicted,
            "utp_flows": len(self.utp), "utp_flows_evicted": self.utp.evicted,
            "opaque_hosts": len(self.opaque), "opaque_hosts_evicted": self.opaque.evicted,
            "mse_shaped_hosts": len(self.shaped),
            **self.handshakes.counters(),
        }

    def forget(self, address: str) -> None:
        """An operator unblocked ``address``: its activities (and when each was last
        reported), opaque and shaped flows and BitTorrent signals go, so its next use is
        reported at once rather than after ``report_every``."""
        self.acts.pop_where(lambda key, act: key[0] == address or act.mac == address)
        self.opaque.pop(address)
        self.shaped.pop(address)
        self.intel.bittorrent.pop(address)

    # -- TCP ----------------------------------------------------------------------------
    def _tcp(self, pkt: Packet) -> list[Finding]:
        syn = pkt.tcp_flags & 0x02
        if not syn and not pkt.payload:
            return []  # most of what passes the filter: answers without payload
        key = flow_key(pkt.src_ip, pkt.sport, pkt.dst_ip, pkt.dport)
        if syn:
            self._syn(pkt, key)
        if not pkt.payload:
            return []
        flow = self.tcp.get(key)
        out = self._tcp_signals(pkt, flow)
        if flow is not None and flow.opening(pkt.src_ip) is None and \
                flow.is_first_payload(pkt.src_ip, pkt.tcp_seq):
            opaque = self._opaque(pkt)
            flow.set_opening(pkt.src_ip, Opening(pkt.ts, pkt.payload_len, opaque, pkt.src_mac,
                                                 summary(pkt) if opaque else ""))
            if opaque:
                self.waiting.put((key, pkt.src_ip), pkt.ts + self.cfg.encrypted_settle)
        return out

    def _tcp_signals(self, pkt: Packet, flow: TcpFlow | None) -> list[Finding]:
        payload = pkt.payload
        port = flow.listen_port if flow is not None else min(pkt.sport, pkt.dport)
        joined = payload if sig.is_handshake(payload) else self._joined(pkt, flow)
        if joined is not None:
            if flow is not None:
                flow.plaintext = True
            return self._report(pkt, pkt.src_ip, "handshake", "peer", pkt.dst_ip, port,
                                info_hash=sig.handshake_info_hash(joined))
        return self._http(pkt, flow, port)

    def _joined(self, pkt: Packet, flow: TcpFlow | None) -> bytes | None:
        """The flow's first bytes once a handshake split across segments is whole enough
        (``bt_handshake``); the side's SYN, if seen, says where they start."""
        side = pkt.src_ip
        isn = None if flow is None else flow.isn(side)
        return self.handshakes.feed(
            (side, pkt.sport, pkt.dst_ip, pkt.dport), pkt.tcp_seq, pkt.payload, pkt.ts,
            isn=isn, opened=flow is not None and flow.opening(side) is not None)

    def _http(self, pkt: Packet, flow: TcpFlow | None, port: int) -> list[Finding]:
        """Tracker requests and answers, .torrent downloads."""
        payload = pkt.payload
        if sig.http_tracker_request(payload):
            if flow is not None:
                flow.announced = pkt.src_ip
            return self._report(pkt, pkt.src_ip, "http-tracker", "peer", pkt.dst_ip, port)
        if sig.is_tracker_response(payload) or (
                flow is not None and flow.announced == pkt.dst_ip
                and payload.startswith(b"HTTP/1.")):
            # the bencoded body, or (short snap length) any answer to an announce
            return self._report(pkt, pkt.src_ip, "http-tracker", "tracker", pkt.dst_ip, port)
        if sig.torrent_file_request(payload):
            return self._report(pkt, pkt.src_ip, "torrent-file", "client", pkt.dst_ip, port)
        if sig.torrent_file_response(payload):  # the receiver downloads metainfo
            return self._report(pkt, pkt.dst_ip, "torrent-file", "client", pkt.src_ip, port,
                                mac=pkt.dst_mac)
        return []

    def _syn(self, pkt: Packet, key: FlowKey) -> None:
        """A SYN opens a flow; its SYN-ACK gives the responder's ISN."""
        known = self.tcp.get(key)
        if not pkt.tcp_flags & 0x10:
            if known is None:
                self.tcp.put(key, TcpFlow(pkt.src_ip, pkt.dport, pkt.ts, pkt.tcp_seq))
        elif known is not None and known.initiator == pkt.dst_ip:
            known.isn_responder = pkt.tcp_seq

    def _opaque(self, pkt: Packet) -> bool:
        cfg = self.cfg
        return (cfg.encrypted_min_size <= pkt.payload_len <= cfg.encrypted_max_size
                and not sig.known_plaintext(pkt.payload)
                and not self.exclusions.packet_excluded(pkt)
                and entropy_ratio(pkt.payload) >= cfg.encrypted_min_entropy)

    # -- UDP ----------------------------------------------------------------------------
    def _udp(self, pkt: Packet) -> list[Finding]:
        payload = pkt.payload
        if sig.is_lsd(pkt.dst_ip, pkt.dport, payload):
            return self._report(pkt, pkt.src_ip, "lsd", "peer", pkt.dst_ip, pkt.dport)
        if sig.dht_message(payload):
            return self._report(pkt, pkt.src_ip, "dht", "peer", pkt.dst_ip, pkt.sport)
        tid = sig.udp_tracker_connect(payload)
        if tid is not None:
            self.udp_connects.put((pkt.src_ip, pkt.sport, pkt.dst_ip, pkt.dport), tid)
            return self._report(pkt, pkt.src_ip, "udp-tracker", "peer", pkt.dst_ip, pkt.dport)
        asked = self.udp_connects.get((pkt.dst_ip, pkt.dport, pkt.src_ip, pkt.sport))
        if asked is not None and sig.udp_tracker_connect_reply(payload) == asked:
            return self._report(pkt, pkt.src_ip, "udp-tracker", "tracker", pkt.dst_ip,
                                pkt.sport)
        if self.exclusions.packet_excluded(pkt):
            return []
        return self._utp(pkt)

    def _utp(self, pkt: Packet) -> list[Finding]:
        head = sig.utp_header(pkt.payload)
        if head is None:
            return []
        key = flow_key(pkt.src_ip, pkt.sport, pkt.dst_ip, pkt.dport)
        flow = self.utp.touch(key)
        if flow is None:
            flow = UtpFlow()
            self.utp.put(key, flow)
        flow.packets += 1
        flow.note(pkt.src_ip, head.connection_id)
        if flow.confirmed:
            return self._report(pkt, pkt.src_ip, "utp", "peer", pkt.dst_ip, pkt.sport)
        if head.type == 4:
            flow.syn = (pkt.src_ip, head.connection_id, head.seq_nr)
        elif head.type == 2 and flow.syn is not None and flow.syn[0] == pkt.dst_ip \
                and flow.syn[1] == head.connection_id and flow.syn[2] == head.ack_nr:
            flow.confirmed = True
        elif head.type == 0:
            # a handshake, or (mid-stream, one way) peer-wire messages: enough alone
            off = sig.utp_data_offset(pkt.payload)
            data = pkt.payload[off:] if off is not None else b""
            flow.confirmed = sig.is_handshake(data) or sig.peer_wire_messages(data)
        if not flow.confirmed and flow.packets >= 4 and flow.paired():
            flow.confirmed = True
        if not flow.confirmed:
            return []
        return (self._report(pkt, pkt.src_ip, "utp", "peer", pkt.dst_ip, pkt.sport)
                + self._report(pkt, pkt.dst_ip, "utp", "peer", pkt.src_ip, pkt.dport,
                               mac=pkt.dst_mac))

    def _note_shape(self, flow: TcpFlow, initiator: str, peer: str) -> None:
        """The responder answered the initiator's opaque opening with its own (the MSE/PE
        key exchange's shape), on a listening port >= 1024."""
        answer = flow.opening(peer)
        if answer is None or not answer.opaque or flow.listen_port < 1024:
            return
        shaped = self.shaped.touch(initiator)
        if shaped is None:
            shaped = {}
            self.shaped.put(initiator, shaped)
        if len(shaped) < _MAX_PEERS:
            shaped[peer] = flow.listen_port

    # -- findings -----------------------------------------------------------------------
    def _infer_encrypted(self, host: str, mac: str, now: float) -> list[Finding]:
        cfg = self.cfg
        signals = tuple(s for s in self.intel.bittorrent_signals(host, now) if s != "encrypted")
        opened = self.opaque.get(host) or {}
        if len(opened) < cfg.encrypted_min_flows or len(opened) < cfg.encrypted_min_peers:
            return []
        bt_peers = sum(1 for peer in opened if self.intel.is_bittorrent(peer, now))
        if not signals:
            shaped = self.shaped.get(host) or {}
            if min(len(shaped), len(set(shaped.values()))) < cfg.encrypted_shape_peers:
                return []
            signals = ("mse-shape",)
            confidence = shape_confidence(len(shaped), cfg.encrypted_shape_peers)
        else:
            confidence = encrypted_confidence(len(signals), len(opened), bt_peers)
        if confidence < cfg.encrypted_min_confidence:
            return []
        act = self._activity(host, "encrypted", "peer", now, mac)
        for peer in opened:
            if len(act.peers) < _MAX_PEERS:
                act.peers[peer] = None
        act.packets = len(opened)
        if act.reported_at is not None and now - act.reported_at < cfg.report_every:
            return []
        act.reported_at = now
        self.intel.note_bittorrent(host, "encrypted", now)
        return [self._finding(host, "encrypted", "peer", act, confidence=confidence,
                              host_evidence=signals, sizes=tuple(opened.values()))]

    def _activity(self, actor: str, subtype: str, role: str, ts: float, mac: str) -> Activity:
        act = self.acts.touch((actor, subtype, role))
        if act is None:
            act = Activity(first=ts, last=ts, mac=mac)
            self.acts.put((actor, subtype, role), act)
        act.last = max(act.last, ts)
        act.mac = mac or act.mac
        return act

    def _report(self, pkt: Packet, actor: str, subtype: str, role: str, peer: str,  # noqa: PLR0917
                port: int | None, *, info_hash: str | None = None,
                mac: str | None = None) -> list[Finding]:
        self.n_signals += 1
        self.intel.note_bittorrent(actor, subtype if role == "peer" else f"{subtype}-{role}",
                                   pkt.ts)
        act = self._activity(actor, subtype, role, pkt.ts, pkt.src_mac if mac is None else mac)
        act.packets += 1
        if peer not in act.peers and len(act.peers) < _MAX_PEERS:
            act.peers[peer] = None
        act.port = act.port or port
        act.info_hash = act.info_hash or info_hash
        if len(act.samples) < 3:
            act.samples.append(summary(pkt))
        if act.reported_at is not None and pkt.ts - act.reported_at < self.cfg.report_every:
            return []
        act.reported_at = pkt.ts
        flow = Flow(pkt.proto, pkt.src_ip, pkt.dst_ip, pkt.sport, pkt.dport)
        return [self._finding(actor, subtype, role, act, flow=flow)]

    def _finding(self, actor: str, subtype: str, role: str, act: Activity, *,
                 confidence: float | None = None, host_evidence: tuple[str, ...] = (),
                 sizes: tuple[int, ...] = (), flow: Flow | None = None) -> Finding:
        peers = tuple(act.peers)
        what = {"tracker": "serves as a BitTorrent tracker",
                "client": "downloads .torrent metainfo"}.get(role, f"uses BitTorrent ({subtype})")
        message = f"{actor} {what} with {', '.join(peers[:4])}" + (
            f"{' ...' if len(peers) > 4 else ''}")
        if confidence is not None:
            message += f" (inferred, confidence {confidence:.2f})"
        return Finding(
            kind=KIND, subtype=subtype, message=message,
            identifier=f"bittorrent:{actor}:{subtype}" + ("" if role == "peer" else f":{role}"),
            severity=Severity.MODERATE,
            source=endpoint(actor, act.mac), destinations=tuple(endpoint(p) for p in peers),
            transport="udp" if subtype in ("dht", "utp", "udp-tracker", "lsd") else "tcp",
            first_seen=act.first, last_seen=act.last, count=act.packets,
            evidence=BitTorrentEvidence(
                signal=subtype, role=role, peers=len(peers), packets=act.packets,
                port=act.port, info_hash=act.info_hash, confidence=confidence,
                host_evidence=host_evidence, opening_sizes=sizes,
                samples=tuple(act.samples)), flow=flow)
