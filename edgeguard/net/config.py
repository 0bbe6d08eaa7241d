"""The ``network:`` section of the policy (detector thresholds live here too)."""


from __future__ import annotations

import enum
from dataclasses import dataclass

from edgeguard.actions.nftables.config import EnforcementConfig
from edgeguard.events import Mode
from edgeguard.policy.types import ByteSize, Duration, IPAddress, IPNetwork, Rate, setting
from edgeguard.valuetype import ValueType

__all__ = [
    "DEFAULT_EXCLUSIONS",
    "ArpThresholds",
    "BitTorrentThresholds",
    "DetectConfig",
    "ExclusionProtocol",
    "FloodThresholds",
    "NetworkConfig",
    "PortExclusion",
    "ScanThresholds",
]


# --- detector thresholds (owned by feat/detect) -------------------------------------------
# Every value below is a policy knob with its unit; the defaults are argued in
# docs/detectors.md. Counts are "distinct" where the doc says so.


class ExclusionProtocol(enum.Enum):
    TCP = "tcp"
    UDP = "udp"
    ANY = "any"


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class PortExclusion(ValueType):
    """Known-benign traffic by destination port: never counted as scan probes or P2P
    fan-out (floods and ARP are still watched)."""

    name: str = setting(None, "What this is, e.g. 'windows-delivery-optimization'.")
    protocol: ExclusionProtocol = setting(ExclusionProtocol.ANY, "tcp | udp | any.")
    ports: tuple[int, ...] = setting((), "Single ports.", minimum=0, maximum=65535)
    port_range: tuple[int, ...] = setting(
        (), "An inclusive range [first, last], e.g. [33434, 33534].", minimum=0, maximum=65535)

    def __post_init__(self) -> None:
        if self.name is None:
            raise ValueError("an exclusion needs 'name'")
        if self.port_range and (len(self.port_range) != 2
                                or self.port_range[0] > self.port_range[1]):
            raise ValueError("port_range must be [first, last] with first <= last")
        if not self.ports and not self.port_range:
            raise ValueError("an exclusion needs 'ports' or 'port_range'")

    def matches(self, proto: int, port: int) -> bool:
        if self.protocol is ExclusionProtocol.TCP and proto != 6:
            return False
        if self.protocol is ExclusionProtocol.UDP and proto != 17:
            return False
        if port in self.ports:
            return True
        return bool(self.port_range) and self.port_range[0] <= port <= self.port_range[1]


DEFAULT_EXCLUSIONS = (
    PortExclusion("windows-delivery-optimization", ExclusionProtocol.ANY, (7680,)),
    PortExclusion("teredo", ExclusionProtocol.UDP, (3544,)),
    PortExclusion("capwap", ExclusionProtocol.UDP, (5246, 5247)),
    PortExclusion("traceroute", ExclusionProtocol.UDP, port_range=(33434, 33534)),
)


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class ScanThresholds(ValueType):
    """Port scans and sweeps (scan detector, TRW early detection, sweeps)."""

    trw_benign_success: float = setting(
        0.8, "TRW theta0: chance that a benign host's first contact succeeds.",
        unit="probability", minimum=0.01, maximum=0.99)
    trw_scanner_success: float = setting(
        0.2, "TRW theta1: chance that a scanner's first contact succeeds.",
        unit="probability", minimum=0.01, maximum=0.99)
    trw_detection: float = setting(
        0.99, "TRW target detection probability (with trw_false_alarm sets the alarm ratio "
        "eta1 = detection / false_alarm: 4 straight failures with the other defaults).",
        unit="probability", minimum=0.5, maximum=0.9999)
    trw_false_alarm: float = setting(
        0.01, "TRW target false-alarm probability.", unit="probability",
        minimum=0.0001, maximum=0.5)
    min_failed_contacts: int = setting(
        4, "A scan type is reported only after this many distinct failed first contacts "
        "of that type (a floor under TRW).", unit="contacts", minimum=2, maximum=10000)
    max_success_ratio: float = setting(
        0.5, "A probe type is reported only while at most this share of its settled first "
        "contacts succeeded: a host whose contacts succeed (a video call, a resolver "
        "pinger, P2P fan-out) is not scanning, however slowly or widely. A SYN scan's "
        "open ports count as failed (torn down half-open).", unit="ratio",
        minimum=0.0, maximum=1.0)
    vertical_ports: int = setting(
        20, "Distinct UDP ports probed on one host that make a UDP scan even when no ICMP "
        "unreachable comes back (closed ports are rate-limited, open ones silent).",
        unit="ports", minimum=3, maximum=65535)
    horizontal_hosts: int = setting(
        20, "Distinct hosts probed on one UDP port that make a UDP sweep even without "
        "answers.", unit="hosts", minimum=3, maximum=1000000)
    answer_timeout: Duration = setting(
        Duration(3.0), "A TCP probe with no answer after this long counts as failed.",
        unit="duration", minimum=0.1, maximum=600)
    window: Duration = setting(
        Duration(3600.0), "How long a source's probe history is kept after its last "
        "probe; slow scans (nmap -T1 waits 15 s, -T0 5 min) must fit in it.",
        unit="duration", minimum=10, maximum=86400)
    slow_gap: Duration = setting(
        Duration(0.25), "Median gap between a scan's probes from which it is labelled "
        "slow (nmap -T2 waits 0.4 s, -T1 15 s, -T0 5 min; -T3 and faster send back to "
        "back).", unit="duration", minimum=0.01, maximum=3600)
    masscan_rate: Rate = setting(
        Rate(100.0), "Probe rate a scan must hold in every second of masscan_seconds to "
        "be labelled masscan (a steady, stateless high-rate scan).", unit="probes/s",
        minimum=1, maximum=10000000)
    masscan_seconds: int = setting(
        3, "Consecutive seconds at masscan_rate for the masscan label; nmap's bursts "
        "(all probes at once, then retransmissions) do not hold a rate this long.",
        unit="seconds", minimum=2, maximum=3600)
    sweep_hosts: int = setting(
        24, "Distinct addresses asked by ICMP echo or broadcast ARP within sweep_window "
        "that make a ping sweep.", unit="hosts", minimum=4, maximum=1000000)
    sweep_window: Duration = setting(
        Duration(30.0), "Window for sweep_hosts.", unit="duration", minimum=1, maximum=3600)
    sweep_unanswered_ratio: float = setting(
        0.5, "Share of the swept addresses that must stay unanswered (a sweep asks for "
        "addresses nobody has; a busy router resolves live clients).", unit="ratio",
        minimum=0.0, maximum=1.0)
    decoy_window: Duration = setting(
        Duration(1.0), "Probes from different source addresses with one MAC to the same "
        "port within this time are decoys of one actor (nmap -D).", unit="duration",
        minimum=0.01, maximum=60)
    idle: Duration = setting(
        Duration(30.0), "A reported scan with no new probe for this long is closed and "
        "summarised (same identifier, totals).", unit="duration", minimum=1, maximum=86400)
    max_sources: int = setting(
        16384, "Cap on sources with probe history (suspects are kept, one-contact sources "
        "are evicted first).", unit="entries", minimum=64, maximum=10000000)
    max_contacts_per_source: int = setting(
        1024, "Cap on distinct contacts remembered per source (beyond it, counts only).",
        unit="entries", minimum=16, maximum=65536)
    max_contacts: int = setting(
        262144, "Cap on distinct contacts remembered over all sources (bounds memory "
        "whatever the number of sources).", unit="entries", minimum=1024, maximum=100000000)
    max_pending: int = setting(
        65536, "Cap on probes waiting for an answer.", unit="entries", minimum=64,
        maximum=10000000)


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class BitTorrentThresholds(ValueType):
    """BitTorrent family: plaintext signatures plus the encrypted (MSE/PE) inference."""

    evidence_ttl: Duration = setting(
        Duration(1800.0), "How long a host's BitTorrent evidence (DHT, uTP, tracker, LSD, "
        "handshake) counts for the encrypted inference and scan exemption.",
        unit="duration", minimum=10, maximum=86400)
    report_every: Duration = setting(
        Duration(600.0), "A host still doing the same BitTorrent activity is reported again "
        "after this long.", unit="duration", minimum=1, maximum=86400)
    encrypted_min_flows: int = setting(
        2, "High-entropy TCP flows (first payload in the MSE/PE size range) a host must "
        "send before encrypted BitTorrent is inferred.", unit="flows", minimum=1,
        maximum=1000)
    encrypted_min_peers: int = setting(
        2, "Distinct peers of those flows (fan-out).", unit="hosts", minimum=1, maximum=1000)
    encrypted_min_size: int = setting(
        96, "Smallest first payload of an MSE/PE opening (the 96-byte DH public key).",
        unit="bytes", minimum=1, maximum=65535)
    encrypted_max_size: int = setting(
        608, "Largest first payload of an MSE/PE opening (key + 512 bytes of padding).",
        unit="bytes", minimum=1, maximum=65535)
    encrypted_min_entropy: float = setting(
        0.85, "Byte entropy of the captured opening as a share of the maximum for its "
        "length (random data ~0.9+, text ~0.65).", unit="ratio", minimum=0.1, maximum=1.0)
    encrypted_min_confidence: float = setting(
        0.6, "Encrypted BitTorrent is reported at or above this confidence.",
        unit="probability", minimum=0.0, maximum=1.0)
    encrypted_shape_peers: int = setting(
        3, "Without any other BitTorrent evidence from the host, MSE/PE-shaped flows "
        "(both sides' first payload opaque and 96-608 bytes, to a listening port >= 1024) "
        "with this many distinct peers on distinct ports make encrypted BitTorrent.",
        unit="hosts", minimum=2, maximum=1000)
    encrypted_settle: Duration = setting(
        Duration(2.0), "Wait this long after a flow's opening for a plaintext handshake "
        "(MSE with plaintext payload) before counting it as encrypted.", unit="duration",
        minimum=0, maximum=600)
    handshake_min_bytes: int = setting(
        17, "Bytes of the handshake's 20-byte protocol string ('\\x13BitTorrent protocol') "
        "that, joined in sequence order from a flow's first segments, make a handshake "
        "finding. A cut after 17-19 bytes leaves a continuation the capture filter cannot "
        "pass, so above 17 such cuts go unseen.", unit="bytes", minimum=8, maximum=20)
    handshake_timeout: Duration = setting(
        Duration(10.0), "A handshake split across segments is reassembled for this long "
        "after its last segment, then forgotten.", unit="duration", minimum=0.1,
        maximum=600)
    max_handshake_assemblies: int = setting(
        16384, "Cap on flow directions whose first bytes are being reassembled (at most 68 "
        "bytes each); the least recently fed is evicted first.", unit="entries",
        minimum=16, maximum=10000000)
    max_hosts: int = setting(
        8192, "Cap on hosts with BitTorrent evidence.", unit="entries", minimum=16,
        maximum=10000000)
    max_flows: int = setting(
        65536, "Cap on TCP/uTP flows followed for openings (and the sequence numbers a "
        "split handshake is reassembled by).", unit="entries", minimum=64,
        maximum=10000000)


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class ArpThresholds(ValueType):
    """ARP spoofing; the actor is the claiming MAC."""

    gateways: tuple[IPAddress, ...] = setting(
        (), "Addresses of the LAN's gateway(s): unsolicited replies toward them and claims "
        "on them are reported at once.")
    request_window: Duration = setting(
        Duration(5.0), "A reply within this long after a matching request is solicited.",
        unit="duration", minimum=0.1, maximum=600)
    binding_ttl: Duration = setting(
        Duration(600.0), "How long an address's genuine MAC is remembered after it was last "
        "confirmed.", unit="duration", minimum=1, maximum=86400)
    poison_replies: int = setting(
        2, "Unsolicited replies claiming another host's address that make poisoning.",
        unit="replies", minimum=1, maximum=10000)
    claims_ips: int = setting(
        5, "Distinct addresses one MAC claims in replies within window.", unit="addresses",
        minimum=2, maximum=65536)
    gratuitous_storm: int = setting(
        20, "Gratuitous ARPs from one MAC within window that make a storm.",
        unit="packets", minimum=2, maximum=1000000)
    window: Duration = setting(
        Duration(60.0), "Window for claims_ips and gratuitous_storm.", unit="duration",
        minimum=1, maximum=86400)
    max_entries: int = setting(
        65536, "Cap on addresses, MACs and open requests tracked (each).", unit="entries",
        minimum=64, maximum=10000000)


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class FloodThresholds(ValueType):
    """SYN and UDP floods toward one destination, by rate."""

    syn_rate: Rate = setting(
        Rate(300.0), "SYNs per second from one sender (MAC) to one address.",
        unit="packets/s", minimum=1, maximum=100000000)
    udp_rate: Rate = setting(
        Rate(1000.0), "UDP datagrams per second from one sender (MAC) to one address.",
        unit="packets/s", minimum=1, maximum=100000000)
    window: Duration = setting(
        Duration(1.0), "Rates are measured over this sliding window.", unit="duration",
        minimum=0.1, maximum=60)
    max_ports: int = setting(
        8, "A flood hits few destination ports; more distinct ports is a scan.",
        unit="ports", minimum=1, maximum=65535)
    spoofed_sources: int = setting(
        32, "Distinct source addresses behind one MAC in a flood that make it spoofed "
        "(the actor is then the MAC).", unit="addresses", minimum=2, maximum=1000000)
    udp_max_reverse_ratio: float = setting(
        0.1, "A UDP stream whose target sends back more than this share is a conversation "
        "(QUIC, RTP), not a flood.", unit="ratio", minimum=0.0, maximum=10.0)
    end_after: Duration = setting(
        Duration(5.0), "A flood below its rate for this long has ended and is summarised.",
        unit="duration", minimum=0.1, maximum=3600)
    max_entries: int = setting(
        16384, "Cap on (sender, destination) rate counters.", unit="entries", minimum=64,
        maximum=10000000)


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class DetectConfig(ValueType):
    """How the detector chain is driven (shared by every detector)."""

    tick_interval: Duration = setting(
        Duration(1.0), "How often (packet time) detectors are ticked to expire state and "
        "emit time-driven findings (slow scans, floods ending).", unit="duration",
        minimum=0.05, maximum=60)
    flush_horizon: Duration = setting(
        Duration(3600.0), "At the end of a replayed capture, time is advanced this far past "
        "the last packet so every open window closes and reports.", unit="duration",
        minimum=0, maximum=86400)
    summaries: bool = setting(
        True, "When a reported scan or flood ends, emit a closing finding with the same "
        "identifier and the totals (the decision engine counts it as a repeat).")


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class NetworkConfig(ValueType):
    """Traffic inspection: which interfaces are watched, what is never reported, and
    what a finding of each detector takes (the sections below)."""

    enabled: bool = setting(False, "Capture and inspect traffic on `interfaces`.")
    mode: Mode | None = setting(None, "monitor | enforce; defaults to the global mode.")
    interfaces: tuple[str, ...] = setting((), "Interfaces to watch (a gateway's LAN side).")
    promiscuous: bool = setting(True, "Put the watched interfaces in promiscuous mode.")
    allowlist: tuple[IPNetwork, ...] = setting(
        (), "Hosts and networks never reported or blocked (management, the trust's scanner).")
    block_duration: Duration = setting(Duration(3600), "How long a blocked source stays blocked.",
                                       unit="duration")
    detect: DetectConfig = setting(DetectConfig(), "How the detectors are driven.")
    scan: ScanThresholds = setting(ScanThresholds(), "Port scan and sweep thresholds.")
    bittorrent: BitTorrentThresholds = setting(BitTorrentThresholds(),
                                               "BitTorrent detection thresholds.")
    arp: ArpThresholds = setting(ArpThresholds(), "ARP spoofing thresholds.")
    flood: FloodThresholds = setting(FloodThresholds(), "SYN/UDP flood thresholds.")
    exclusions: tuple[PortExclusion, ...] = setting(
        DEFAULT_EXCLUSIONS, "Known-benign ports never counted as scan probes or P2P fan-out.")

    # -- capture (edgeguard/net/capture.py, filter.py); detector thresholds go above ----
    snap_length: int = setting(256, "Bytes kept of each frame the filter passes: headers and "
                               "the first payload bytes.", unit="bytes", minimum=96,
                               maximum=65535)
    ring_size: ByteSize = setting(ByteSize(64 * 1024 * 1024), "Kernel buffer per capture "
                                  "socket (the TPACKET_V3 ring, in 1 MiB blocks); absorbs "
                                  "bursts while a worker is busy.", unit="bytes",
                                  minimum=2 * 1024 * 1024, maximum=1024 * 1024 * 1024)
    capture_workers: int = setting(1, "Capture worker processes per interface; above 1 each "
                                   "owns a share of the addresses (all their traffic).",
                                   minimum=1, maximum=16)
    stats_interval: Duration = setting(Duration(300), "How often capture counters (kernel "
                                       "drops) are written to the audit log.", unit="duration",
                                       minimum=1)
    filter_small_udp: int = setting(512, "UDP datagrams with at most this much payload pass "
                                    "the capture filter (probes, DNS, DHT, tracker).",
                                    unit="bytes", minimum=0, maximum=65507)
    filter_udp_sample: int = setting(64, "Pass 1 in N larger UDP datagrams without a P2P "
                                     "shape (keeps large-payload floods visible); 0: none. A "
                                     "power of two.", minimum=0, maximum=65536)
    filter_shed_sample: int = setting(16, "While a flood toward an IPv4 address is in "
                                      "progress, the live capture filter passes 1 in N of "
                                      "its packets (SYNs, or UDP, toward that address) and "
                                      "the flood detector counts each as N, so a line-rate "
                                      "flood does not overrun the worker; 0 or 1: never shed. "
                                      "A power of two.", minimum=0, maximum=65536)
    filter_shed_max: int = setting(16, "Flooded destinations shed at once (the busiest "
                                   "first).", unit="addresses", minimum=1, maximum=256)
    filter_opening_min: int = setting(96, "Smallest pushed TCP payload passed as a possible "
                                      "flow opening (MSE/PE key exchange).", unit="bytes",
                                      minimum=1)
    filter_opening_max: int = setting(608, "Largest pushed TCP payload passed as a possible "
                                      "flow opening.", unit="bytes", minimum=1)
    enforcement: EnforcementConfig = setting(
        EnforcementConfig(),
        "How enforce-mode decisions become nftables state (docs/enforcement.md).")
