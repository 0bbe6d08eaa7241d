"""Issue 21: ``net unblock`` makes every detector forget the address (Detector.forget).

Each detector reports an offence once per source history (a scan's probe type, a
sweep, a flood episode, an ARP claimer's subtype, BitTorrent once per ``report_every``).
For each: the sample offence, a pause that leaves the detector's history in place (for
the scan: past ``network.scan.idle``, so the first scan is closed), then the same
offence again. Without ``forget`` the second one raises no finding (the old main's
behaviour after an unblock); after ``forget`` of the actor it is reported afresh;
forgetting another address changes nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from _samples import parse_packets
from conftest import shipped_network

from edgeguard.clock import FakeClock
from edgeguard.events import Finding
from edgeguard.net.detect import DetectorChain
from edgeguard.net.packet import Packet

DATA = Path(__file__).resolve().parents[3] / "data" / "detect"

#: (sample file, case name, address to forget, expected subtype, pause in seconds)
OFFENCES = [
    ("scan", "SYN scan, closed ports answer RST, half-open teardown of the open one",
     "10.0.0.7", "syn", 120.0),  # past scan.idle (30 s): the first scan is closed
    ("sweep", "ARP sweep of a subnet, most addresses never answer",
     "10.0.0.66", "ping-sweep", 10.0),  # within sweep_window
    ("flood", "SYN flood to one port from one address",
     "10.0.0.46", "syn-flood", 2.0),  # the flood goes on (end_after 5 s)
    ("arp", "gratuitous ARP storm from one MAC",
     "02:00:00:00:00:2d", "gratuitous-storm", 10.0),
    ("bittorrent", "DHT query and reply (BEP 42 reply with ip first)",
     "10.0.0.31", "dht", 60.0),  # within report_every (600 s)
]


def _case(stem: str, name: str) -> list[Packet]:
    cases = yaml.safe_load((DATA / f"{stem}.yaml").read_text())["cases"]
    (case,) = [c for c in cases if c["name"] == name]
    return parse_packets(case["packets"])


def _feed(chain: DetectorChain, packets: list[Packet], shift: float) -> list[Finding]:
    out: list[Finding] = []
    for pkt in packets:
        pkt.ts += shift
        out.extend(chain.feed(pkt))
    return out


def _offence_twice(stem: str, name: str, pause: float, forget: str | None) -> tuple[
        list[Finding], list[Finding]]:
    """Findings of the first offence, and of the same offence ``pause`` s later (with
    ``forget`` forgotten in between), ticked up to just after its last packet."""
    chain = DetectorChain(shipped_network(), FakeClock())
    first = _feed(chain, _case(stem, name), 0.0)
    end = max(p.ts for p in _case(stem, name))
    for step in range(1, int(pause) + 1):  # time passes (ticks close what is idle)
        first.extend(chain.tick(end + step))
    if forget is not None:
        chain.forget([forget])
    second = _feed(chain, _case(stem, name), end + pause)
    second.extend(chain.tick(end + pause + end + 1.0))
    return first, second


def _named(findings: list[Finding], subtype: str, actor: str) -> list[Finding]:
    return [f for f in findings if f.subtype == subtype and f.source is not None
            and actor in (f.source.ip, f.source.mac)]


@pytest.mark.parametrize(("stem", "name", "actor", "subtype", "pause"), OFFENCES,
                         ids=[o[0] for o in OFFENCES])
def test_a_forgotten_source_is_reported_afresh(stem: str, name: str, actor: str,
                                               subtype: str, pause: float) -> None:
    first, second = _offence_twice(stem, name, pause, forget=actor)
    assert _named(first, subtype, actor)
    again = _named(second, subtype, actor)
    assert again, f"{stem}: nothing reported after forget: {second}"
    assert "summary" not in again[0].message
    assert "ended" not in again[0].message


@pytest.mark.parametrize(("stem", "name", "actor", "subtype", "pause"), OFFENCES,
                         ids=[o[0] for o in OFFENCES])
@pytest.mark.parametrize("forget", [None, "10.0.0.99"])
def test_without_forget_the_same_offence_is_not_reported_again(
        stem: str, name: str, actor: str, subtype: str, pause: float,
        forget: str | None) -> None:
    first, second = _offence_twice(stem, name, pause, forget=forget)
    assert _named(first, subtype, actor)
    assert _named(second, subtype, actor) == []


def test_forget_drops_the_scan_sources_state_and_keeps_the_counts_right() -> None:
    chain = DetectorChain(shipped_network(), FakeClock())
    _feed(chain, _case("scan", OFFENCES[0][1]), 0.0)
    before = chain.counters()
    assert before["scan.sources"] == 1
    assert before["scan.contacts"] > 0
    chain.forget(["10.0.0.7"])
    after = chain.counters()
    assert after["scan.sources"] == 0
    assert after["scan.contacts"] == 0  # the global contact budget is given back
    assert after["scan.pending"] == 0
