"""Port scans: TRW early detection, vertical/horizontal counts, type and timing labels.

Works on the prefiltered stream: probes (SYN, odd flags, UDP), answers (SYN-ACK, RST,
ICMP unreachable) and ARP (to learn which IP a MAC owns, for decoys). Answers are
never probes, so a target answering a scan never becomes an actor.

A scan is failed first contacts: a probe type is reported only while its failures
dominate (``scan.max_success_ratio``), so a host whose contacts succeed (a video call
to 25 hosts, a resolver pinger, P2P fan-out) is not scanning however slowly or widely.
A SYN followed by the initiator's own ACK or data on that flow succeeded even when the
SYN-ACK is not seen (egress-only capture, asymmetric routing); UDP answered from the
contacted port succeeded. While the capture holds no return traffic at all (no SYN-ACK,
RST, ICMP error or UDP reply), silence is not judged: unanswered SYNs are counted in
``silence_unjudged`` and ``no_return_traffic`` says so, no scan is reported from them.

Labels: the probe type (syn, connect, fin, null, xmas, maimon, ack, udp), replaced by
``masscan`` for a steady high-rate scan whose SYNs carry masscan's fingerprint (no TCP
options, IP id = destination ^ port ^ sequence) and ``slow`` for a paced one; IPv6 scans
get an ``ipv6-`` prefix. A probe type is reported under one label, once (its later
summary keeps that label). With nmap ``-D`` every probe is also sent from decoy addresses
through the same MAC; the finding then names the MAC and the address it owns.
"""

from __future__ import annotations

from collections.abc import Mapping

from edgeguard.events import Finding
from edgeguard.net.config import NetworkConfig
from edgeguard.net.detect.common import BoundedTable, ExclusionSet, summary
from edgeguard.net.detect.intel import HostIntel
from edgeguard.net.detect.scan_decoy import DecoyTracker
from edgeguard.net.detect.scan_probe import Probe, ProbeClassifier, masscan_fingerprint
from edgeguard.net.detect.scan_report import KIND, scan_finding
from edgeguard.net.detect.scan_state import PENDING, SEEN, SourceState, Trw
from edgeguard.net.packet import Packet, PacketClass

__all__ = ["KIND", "LABELS", "SUBTYPES", "ScanDetector"]

#: Probe types whose failures the walk counts (UDP is counted by distinct ports too).
_TCP_TYPES = ("syn", "fin", "null", "xmas", "maimon", "ack")
#: Probe types that are never legitimate (failed when sent, answered or not).
_ODD_TYPES = ("fin", "null", "xmas")
#: Every label a port scan can get (docs/findings.md documents each).
LABELS = (*_TCP_TYPES, "connect", "udp", "masscan", "slow")
#: The finding subtypes: the labels, and the same for IPv6 with an ``ipv6-`` prefix.
SUBTYPES = (*LABELS, *(f"ipv6-{label}" for label in LABELS))
_NO_ADDRESS = ("", "0.0.0.0")  # noqa: S104 (an ARP probe's sender, not a bind address)
PendingKey = tuple[str, str, int, int]  # (source, destination, protocol, port)
#: ``SourceState.reported`` value of a subtype judged not a scan (never summarised)
_EXEMPT = -1
#: contact outcomes still open (an answer may settle them)
_OPEN = (PENDING, SEEN)


class ScanDetector:
    name = "scan"
    wants: frozenset[PacketClass] | None = None  # every packet

    def __init__(self, cfg: NetworkConfig, intel: HostIntel) -> None:
        self.cfg = cfg.scan
        self.summaries = cfg.detect.summaries
        # per-probe thresholds as native attributes (not read through the config)
        self._answer_timeout: float = self.cfg.answer_timeout
        self._masscan_rate: float = self.cfg.masscan_rate
        self._max_contacts_per_source: int = self.cfg.max_contacts_per_source
        self._max_contacts: int = self.cfg.max_contacts
        self.intel = intel
        self.trw = Trw.from_config(self.cfg)
        self.exclusions = ExclusionSet(cfg.exclusions)
        self.sources: BoundedTable[str, SourceState] = BoundedTable(
            self.cfg.max_sources, on_evict=self._source_gone,
            prefer_evict=lambda s: s.distinct_contacts() <= 1 and not s.reported)
        self.contacts_total = 0  # remembered contacts over all sources (global budget)
        # probe waiting for its answer -> (deadline, probe type, silence is failure)
        self.pending: BoundedTable[PendingKey, tuple[float, str, bool]] = BoundedTable(
            self.cfg.max_pending, on_evict=self._pending_evicted)
        # ACK / FIN-ACK on a flow never seen opening: a probe only if answered by RST
        self.candidates: BoundedTable[PendingKey, tuple[float, str, Packet]] = BoundedTable(
            self.cfg.max_pending)
        # SYN-ACKed probe waiting for the actor's reaction (RST = half-open) -> deadline
        self.half: BoundedTable[PendingKey, float] = BoundedTable(self.cfg.max_pending)
        self.classifier = ProbeClassifier(self.cfg.max_pending)
        self.decoys = DecoyTracker(self.cfg.decoy_window, self.cfg.max_pending,
                                   self.cfg.max_sources)
        self.active: dict[str, SourceState] = {}  # reported and not yet summarised
        self.now = 0.0
        self.n_packets = 0
        self.n_probes = 0
        self.n_expired = 0
        self.n_bittorrent_exempt = 0
        self.n_sweep_exempt = 0
        self.n_answers = 0  # any return traffic: SYN-ACK, RST, ICMP error, UDP reply
        self.n_unjudged = 0  # silent probes not judged (no return traffic seen at all)

    # -- the detector protocol ----------------------------------------------------------
    def observe(self, pkt: Packet) -> list[Finding]:
        self.n_packets += 1
        now = self.now  # (per packet: a comparison, not a max() call)
        self.now = pkt.ts if pkt.ts > now else now
        if pkt.arp is not None:
            arp = pkt.arp
            if arp.sender_ip not in _NO_ADDRESS and arp.sender_mac == pkt.src_mac:
                self.decoys.note_owner(arp.sender_mac, arp.sender_ip)
            return []
        # traffic to a known-benign service (and, for UDP, its replies); a TCP probe
        # *from* such a port (nmap -g 7680) is still a probe
        if not pkt.src_ip:
            return []
        if self.exclusions.to_service(pkt):
            # (a TCP answer to a probe sent from such a port still settles it)
            return self._tcp_answer(pkt) if pkt.proto == 6 else []
        probe = self.classifier.classify(pkt)
        if probe is None:
            return self._answer(pkt)
        if probe.settle == "confirm":
            self.candidates.put((pkt.src_ip, pkt.dst_ip, pkt.proto, pkt.dport),
                                (pkt.ts + self._answer_timeout, probe.kind, pkt))
            return []
        return self._probe(pkt, probe)

    def tick(self, now: float) -> list[Finding]:
        self.now = max(self.now, now)
        out: list[Finding] = []
        while (item := self.pending.oldest()) is not None and item[1][0] <= now:
            self.pending.pop(item[0])
            if not item[1][2]:
                continue
            if self.n_answers:
                out.extend(self._settle(item[0], failed=True, kind=item[1][1]))
            else:  # a one-way link: silence says nothing about the contact
                self.n_unjudged += 1
        while (cand := self.candidates.oldest()) is not None and cand[1][0] <= now:
            self.candidates.pop(cand[0])
        while (h := self.half.oldest()) is not None and h[1] <= now:
            self.half.pop(h[0])
            out.extend(self._settle(h[0], failed=False, kind="syn"))
        for state in list(self.active.values()):
            out.extend(self._check(state))
            if now - state.last >= self.cfg.idle:
                del self.active[state.ip]
                out.extend(self._summarise(state))
        while (old := self.sources.oldest()) is not None and now - old[1].last > self.cfg.window:
            self.sources.pop(old[0])
            self._source_gone(old[0], old[1])
            self.n_expired += 1
        return out

    def forget(self, address: str) -> None:
        """An operator unblocked ``address``: its history (contacts, probe types already
        reported, an open scan) and its probes waiting for answers go, so a fresh scan
        from it is reported again (a MAC: every source seen through that MAC)."""
        for ip, state in self.sources.pop_where(
                lambda ip, state: address in (ip, state.mac)):
            self._source_gone(ip, state)
        self.pending.pop_where(lambda key, _: key[0] == address)
        self.candidates.pop_where(lambda key, _: key[0] == address)
        self.half.pop_where(lambda key, _: key[0] == address)

    def _source_gone(self, ip: str, state: SourceState) -> None:
        self.active.pop(ip, None)
        self.contacts_total -= len(state.contacts)

    def counters(self) -> Mapping[str, int]:
        return {
            "packets": self.n_packets, "probes": self.n_probes,
            "sources": len(self.sources), "sources_evicted": self.sources.evicted,
            "contacts": self.contacts_total,
            "sources_expired": self.n_expired,
            "pending": len(self.pending), "pending_evicted": self.pending.evicted,
            "candidates": len(self.candidates), "candidates_evicted": self.candidates.evicted,
            "tcp_flows": len(self.classifier.tcp_flows),
            "tcp_flows_evicted": self.classifier.tcp_flows.evicted,
            "udp_flows": len(self.classifier.udp_flows),
            "udp_flows_evicted": self.classifier.udp_flows.evicted,
            "decoy_groups": len(self.decoys.groups), "bittorrent_exempt": self.n_bittorrent_exempt,
            "sweep_exempt": self.n_sweep_exempt,
            "answers": self.n_answers, "silence_unjudged": self.n_unjudged,
            "no_return_traffic": int(self.n_unjudged > 0 and not self.n_answers),
        }

    # -- probes and answers -------------------------------------------------------------
    def _probe(self, pkt: Packet, probe: Probe) -> list[Finding]:
        self.n_probes += 1
        src, ts, kind, settle = pkt.src_ip, pkt.ts, probe.kind, probe.settle
        sources = self.sources
        state = sources.touch(src)
        if state is None:
            state = SourceState(src, pkt.src_mac, pkt.ip_version, ts)
            sources.insert(src, state)
        elif pkt.src_mac:
            state.mac = pkt.src_mac
        state.count_probe(ts, kind, pkt.sport, self._masscan_rate)
        if kind == "syn" and masscan_fingerprint(pkt):
            state.masscan_like += 1
        if state.probes > 1 and len(state.sample_list) < 3:
            # from the second probe on: a one-packet (spoofed) source keeps no text
            state.sample(summary(pkt))
        if pkt.src_mac:
            self.decoys.note_probe(pkt, state, sources)
        dst, port, proto = pkt.dst_ip, pkt.dport, pkt.proto
        key = (dst, port, proto)
        contacts = state.contacts
        known = len(contacts)
        if key in contacts:
            new = False
        else:
            budget = min(self._max_contacts_per_source,
                         known + self._max_contacts - self.contacts_total)
            new = state.add_contact(key, SEEN if settle == "answer" else PENDING, budget)
            self.contacts_total += len(contacts) - known
        if settle == "now":  # never legitimate (FIN, NULL, XMAS): failed at once
            if new and state.outcome(key, True, kind, self.trw):
                return self._check(state)
            return []
        if new or contacts.get(key) in _OPEN:
            self.pending.put((src, dst, proto, port),
                             (ts + self._answer_timeout, kind, settle == "timeout"))
        if new and kind == "udp":
            return self._check(state)
        return []

    def _confirmed(self, cand: tuple[float, str, Packet]) -> list[Finding]:
        """An ACK / FIN-ACK probe the target answered with RST."""
        _, kind, pkt = cand
        out = self._probe(pkt, Probe(kind, "answer"))
        return out + self._settle((pkt.src_ip, pkt.dst_ip, pkt.proto, pkt.dport), True, kind)

    def _answer(self, pkt: Packet) -> list[Finding]:
        """SYN-ACK / RST from a target, the actor's reaction to a SYN-ACK, or an ICMP
        error quoting a probe."""
        if pkt.proto == 6:
            return self._tcp_answer(pkt)
        if pkt.proto == 17:
            # a datagram from a port a source contacted: that contact was answered
            state = self.sources.get(pkt.dst_ip)
            if state is not None and (pkt.src_ip, pkt.sport, 17) in state.contacts:
                self.n_answers += 1
                return self._settle((pkt.dst_ip, pkt.src_ip, 17, pkt.sport), failed=False,
                                    kind="udp")
            return []
        quote = pkt.icmp_quote
        if quote is not None and quote.dport is not None and pkt.icmp_type in (1, 3):
            key = (quote.src_ip, quote.dst_ip, quote.proto, quote.dport)
            entry = self.pending.pop(key)
            if entry is not None:
                self.n_answers += 1
            kind = entry[1] if entry is not None else ("udp" if quote.proto == 17 else "syn")
            return self._settle(key, failed=True, kind=kind)
        return []

    def _tcp_answer(self, pkt: Packet) -> list[Finding]:
        flags = pkt.tcp_flags
        if flags & 0x06:  # SYN-ACK or RST: the target answering a probe
            return self._target_answer(pkt, flags)
        if not flags & 0x10:
            return []
        mine = (pkt.src_ip, pkt.dst_ip, 6, pkt.dport)
        if self.half.pop(mine) is not None:
            return self._reaction(mine, pkt.src_mac, half_open=False)
        if self.pending.pop(mine) is not None:
            # the initiator's own ACK/data on its SYN's flow: the handshake completed,
            # whether or not the SYN-ACK was seen (one-way capture, asymmetric route)
            return self._settle(mine, failed=False, kind="syn")
        return []

    def _target_answer(self, pkt: Packet, flags: int) -> list[Finding]:
        """SYN-ACK or RST from a target (``flags & 0x06``; a bare SYN, sent to an
        excluded port, is neither and gives nothing)."""
        key = (pkt.dst_ip, pkt.src_ip, 6, pkt.sport)  # the probe's (src, dst, proto, port)
        if flags & 0x12 == 0x12:  # SYN-ACK: open port; wait for the actor's reaction
            if self.pending.pop(key) is not None:
                self.n_answers += 1
                self.half.put(key, pkt.ts + self._answer_timeout)
            return []
        if flags & 0x04:
            entry = self.pending.pop(key)
            if entry is not None:
                self.n_answers += 1
                return self._settle(key, failed=True, kind=entry[1])
            cand = self.candidates.pop(key)
            if cand is not None:
                self.n_answers += 1
                return self._confirmed(cand)
            mine = (pkt.src_ip, pkt.dst_ip, 6, pkt.dport)
            if self.half.pop(mine) is not None:
                # the actor tears down the target's SYN-ACK: bare RST = half-open
                # (SYN scan), RST|ACK after the handshake = connect()
                return self._reaction(mine, pkt.src_mac, half_open=not flags & 0x10)
        return []

    def _reaction(self, key: PendingKey, mac: str, half_open: bool) -> list[Finding]:
        state = self.sources.get(key[0])
        if state is None:
            return []
        if mac and state.mac and mac != state.mac:
            state.foreign_mac = True  # a live host answering for itself: someone's decoy
        if half_open:
            state.half_open += 1
        else:
            state.completed += 1
        return self._settle(key, failed=half_open, kind="syn")

    def _settle(self, key: PendingKey, failed: bool, kind: str) -> list[Finding]:
        state = self.sources.get(key[0])
        if state is None:
            return []
        if state.outcome((key[1], key[3], key[2]), failed, kind, self.trw):
            return self._check(state)
        return []

    def _pending_evicted(self, key: PendingKey, value: tuple[float, str, bool]) -> None:
        """Under pressure a waiting probe is settled as unanswered (no finding here;
        the next check of that source reports)."""
        state = self.sources.get(key[0])
        if state is not None and value[2]:
            state.outcome((key[1], key[3], key[2]), True, value[1], self.trw)

    # -- reporting ----------------------------------------------------------------------
    def _reportable(self, state: SourceState) -> list[str]:
        cfg = self.cfg
        # checked after every settled contact: nothing to count until the walk alarms
        kinds = state.failed_kinds(_TCP_TYPES, cfg.min_failed_contacts) if state.alarmed else []
        if not self.n_answers:  # no return traffic seen: only never-legitimate probes
            return [kind for kind in kinds if kind in _ODD_TYPES]
        if kinds and state.mostly_succeeding(False, cfg.max_success_ratio):
            kinds = [kind for kind in kinds if kind in state.labels]  # (already reported)
        if state.probes_of("udp") and ("udp" in state.labels or self._udp_scan(state)):
            kinds.append("udp")
        return kinds

    def _udp_scan(self, state: SourceState) -> bool:
        """Failed UDP contacts (ICMP unreachable), or many contacts no answer came back
        from (closed ports are rate-limited, open ones silent) on one host or one port;
        never while most UDP contacts were answered, nor while the capture has no return
        traffic at all."""
        cfg = self.cfg
        if state.mostly_succeeding(True, cfg.max_success_ratio):
            return False
        if state.fails("udp") >= cfg.min_failed_contacts and state.alarmed:
            return True
        if not self.n_answers or state.udp_open < min(cfg.vertical_ports,
                                                     cfg.horizontal_hosts):
            return False
        on_host, on_port = state.open_udp_peaks()  # running maxima: O(1) per contact
        return on_host >= cfg.vertical_ports or on_port >= cfg.horizontal_hosts

    def _check(self, state: SourceState) -> list[Finding]:
        # (the common case, e.g. every probe of a spoofed flood: nothing to report yet)
        if state.muted or (not state.alarmed and not state.probes_of("udp")):
            return []
        kinds = self._reportable(state)
        if not kinds:
            return []
        if state.rate_may_continue(self.now, self.cfg.masscan_rate, self.cfg.masscan_seconds):
            self.active[state.ip] = state  # re-checked on tick: the label may be masscan
            return []
        out: list[Finding] = []
        for kind in kinds:
            if kind in state.labels:
                continue
            subtype = state.labels[kind] = self._subtype(state, kind)
            if subtype in state.reported:
                continue
            if self._bittorrent_fanout(state, kind):
                state.reported[subtype] = _EXEMPT
                self.n_bittorrent_exempt += 1
                continue
            if self._sweep_probes(state, kind):
                state.reported[subtype] = _EXEMPT
                self.n_sweep_exempt += 1
                continue
            finding = self._finding(state, kind, subtype, closing=False)
            state.reported[subtype] = state.probes
            self.active[state.ip] = state
            if finding is not None:
                out.append(finding)
        return out

    def _summarise(self, state: SourceState) -> list[Finding]:
        if not self.summaries or state.muted:
            return []
        out = []
        kinds = {subtype: kind for kind, subtype in state.labels.items()}
        for subtype, probes in list(state.reported.items()):
            if probes != _EXEMPT and state.probes > probes:
                state.reported[subtype] = state.probes
                kind = kinds.get(subtype)
                if kind is None:  # (a decoy group's label, taken over from a member)
                    kind = subtype.removeprefix("ipv6-")
                    kind = "syn" if kind in ("connect", "masscan", "slow") else kind
                finding = self._finding(state, kind, subtype, closing=True)
                if finding is not None:
                    out.append(finding)
        return out

    def _bittorrent_fanout(self, state: SourceState, kind: str) -> bool:
        """A BitTorrent host contacting many peers on high ports is not scanning."""
        # judged at the probes' time, not the tick's (a replay's final flush is late)
        if kind not in ("syn", "udp") or not self.intel.is_bittorrent(state.ip, state.last):
            return False
        by_port = state.hosts_by_port
        high = sum(n for port, n in by_port.items() if port >= 1024)
        return high * 2 >= sum(by_port.values())

    def _sweep_probes(self, state: SourceState, kind: str) -> bool:
        """nmap -sn off-link adds a SYN to 443 and an ACK to 80 per address: a sweep
        (reported by the sweep detector), not a port scan, while it stays on those
        one or two ports."""
        return kind in ("syn", "ack") and len(state.hosts_by_port) <= 2 and \
            self.intel.is_sweeping(state.ip, state.last)

    def _subtype(self, state: SourceState, kind: str) -> str:
        cfg = self.cfg
        if state.best_run >= cfg.masscan_seconds and kind == "syn" \
                and state.masscan_like * 2 >= state.syn_probes:
            label = "masscan"
        elif state.median_gap() >= cfg.slow_gap:
            label = "slow"
        else:
            label = state.syn_label() if kind == "syn" else kind
        return f"ipv6-{label}" if state.ip_version == 6 else label

    def _finding(self, state: SourceState, kind: str, subtype: str,
                 closing: bool) -> Finding | None:
        decoy = self.decoys.actor(state, self.sources)
        actor_ip: str | None = state.ip
        decoys: tuple[str, ...] = ()
        if decoy is not None:
            actor_ip, decoys = decoy
            # one finding for the whole group, kept by the real address's state (or,
            # MAC only, by the one reporting first); the decoys go quiet
            real = self.sources.get(actor_ip) if actor_ip else None
            if real is not None and real is not state:
                state.muted = True
                self.active.pop(state.ip, None)
                if subtype in real.reported:
                    return None
                real.reported[subtype] = real.probes
                self.active[real.ip] = real
                state = real
            for ip in decoys:
                member = self.sources.get(ip)
                if member is not None and member is not state:
                    member.muted = True
                    self.active.pop(ip, None)
        return scan_finding(state, kind, subtype, closing, actor_ip=actor_ip, decoys=decoys)
