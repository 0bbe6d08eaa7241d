"""The finding a port scan gives: its evidence (type, timing, direction, counts, samples)
and its message, from the source's state (:mod:`edgeguard.net.detect.scan`) once the
decoy group, if any, has been resolved to the address that reports it."""

from __future__ import annotations

from collections.abc import Mapping

from edgeguard.events import Finding, Severity
from edgeguard.net.detect.common import endpoint
from edgeguard.net.detect.evidence import ScanEvidence
from edgeguard.net.detect.scan_state import SourceState

__all__ = ["KIND", "scan_finding"]

KIND = "scan"


def scan_finding(state: SourceState, kind: str, subtype: str, closing: bool, *,
                 actor_ip: str | None, decoys: tuple[str, ...]) -> Finding:
    """The finding (``closing``: the summary) of probe type ``kind`` under ``subtype``;
    ``actor_ip`` is the reporting address (``None``: only the MAC is known)."""
    actor = actor_ip or state.mac
    by_host, by_port, failed, succeeded = state.figures(17 if kind == "udp" else 6)
    hosts = sorted(by_host, key=by_host.__getitem__, reverse=True)
    single_port = next(iter(by_port)) if len(by_port) == 1 else None
    evidence = ScanEvidence(
        type=state.syn_label() if kind == "syn" else kind,
        timing=("masscan-rate" if "masscan" in subtype else
                "slow" if "slow" in subtype else "normal"),
        direction=_direction(by_host, by_port), probes=state.probes, failed=failed,
        succeeded=succeeded, ports=len(by_port) + state.overflow,
        hosts=len(by_host), duration_s=state.duration(),
        rate_pps=state.probes / state.duration() if state.duration() > 0 else 0.0,
        median_gap_s=state.median_gap(), ip_version=state.ip_version,
        trw_log10_ratio=state.log_ratio, decoys=decoys, summary=closing,
        samples=tuple(state.sample_list))
    what = "scan summary" if closing else "scan"
    return Finding(
        kind=KIND, subtype=subtype,
        message=(f"{actor} {subtype} {what}: {evidence.ports} ports on {evidence.hosts} "
                 f"host(s), {failed} failed first contacts, {state.probes} probes "
                 f"in {state.duration():.1f}s"
                 + (f" (decoys {', '.join(decoys)})" if decoys else "")),
        identifier=f"scan:{actor}:{subtype}", severity=Severity.SEVERE,
        source=endpoint(actor_ip, state.mac),
        destinations=tuple(endpoint(h, None, single_port) for h in hosts[:8]),
        transport="udp" if kind == "udp" else "tcp",
        first_seen=state.first, last_seen=state.last, count=state.probes,
        evidence=evidence)


def _direction(by_host: Mapping[str, int], by_port: Mapping[int, int]) -> str:
    if len(by_host) <= 1:
        return "vertical"
    return "horizontal" if len(by_port) <= 1 else "mixed"
