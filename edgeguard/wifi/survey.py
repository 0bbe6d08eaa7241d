"""A site survey from an 802.11 capture: every BSS, its security class and the verdict.

``edgeguard wifi classify`` reads a monitor-mode capture, takes every beacon and probe
response, and classifies each BSSID with the daemon's own element parser and classifier.
When the frames of one BSSID disagree (a beacon and a probe response with different
elements, or a spoofed beacon next to the real one), the **weakest** class seen wins and
every class seen is listed: an IT manager auditing a site wants the worst case. A hidden
SSID (empty or zero-filled in beacons) is taken from a probe response that names it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from edgeguard.net.pcapfile import Frame, ReaderCounters, read_capture
from edgeguard.wifi.classify import Classification, classify
from edgeguard.wifi.config import WifiConfig, WifiSecurity
from edgeguard.wifi.dot11 import DOT11_LINKTYPES, MalformedFrame, MgmtFrame, parse_frame
from edgeguard.wifi.verdict import Assessment, ScannedBss, assess

__all__ = ["SurveyCounters", "SurveyedBss", "read_frames", "survey", "survey_capture"]


@dataclass(slots=True)
class SurveyCounters:
    frames: int = 0  # 802.11 frames read
    management: int = 0  # beacons and probe responses used
    malformed: int = 0  # too short for their own headers: skipped
    bad_fcs: int = 0  # the radio said the checksum failed: skipped
    other_linktype: int = 0  # not 802.11 (e.g. Ethernet): skipped


@dataclass(frozen=True, slots=True)
class SurveyedBss:
    bss: ScannedBss
    assessment: Assessment
    hidden: bool
    channel: int | None
    beacons: int
    probe_responses: int
    classes_seen: tuple[WifiSecurity, ...]  # weakest first; more than one: inconsistent
    first_seen: float
    last_seen: float


@dataclass(slots=True)
class _Tally:
    bssid: str
    classification: Classification
    first_seen: float
    last_seen: float
    ssid: bytes | None = None
    hidden: bool = False
    channel: int | None = None
    freq_mhz: int | None = None
    beacons: int = 0
    probe_responses: int = 0
    classes: set[WifiSecurity] = field(default_factory=set)

    def add(self, frame: MgmtFrame, cls: Classification, ts: float) -> None:
        self.first_seen, self.last_seen = min(self.first_seen, ts), max(self.last_seen, ts)
        if frame.kind == "beacon":
            self.beacons += 1
        else:
            self.probe_responses += 1
        self.classes.add(cls.security)
        if cls.security.rank < self.classification.security.rank:
            self.classification = cls
        ssid = cls.ssid
        if ssid is not None and ssid.strip(b"\x00"):
            self.ssid = ssid
        elif frame.kind == "beacon":
            self.hidden = True
        self.channel = self.channel or frame.channel()
        self.freq_mhz = self.freq_mhz or frame.freq_mhz


def read_frames(path: Path, counters: SurveyCounters) -> Iterator[tuple[float, MgmtFrame]]:
    """Beacons and probe responses of a pcap/pcapng file, malformed frames counted."""
    reader = ReaderCounters()
    frames: Iterable[Frame] = read_capture(path, reader, DOT11_LINKTYPES)
    for frame in frames:
        counters.frames += 1
        try:
            mgmt = parse_frame(frame.data, frame.linktype)
        except MalformedFrame:
            counters.malformed += 1
            continue
        if mgmt is None:
            continue
        if mgmt.bad_fcs:
            counters.bad_fcs += 1
            continue
        counters.management += 1
        yield frame.ts, mgmt
    counters.other_linktype += reader.unsupported_linktype
    counters.malformed += reader.truncated


def survey(frames: Iterable[tuple[float, MgmtFrame]], config: WifiConfig) -> list[SurveyedBss]:
    """One entry per BSSID, in the order first seen."""
    tallies: dict[str, _Tally] = {}
    for ts, frame in frames:
        cls = classify(frame.ies, frame.privacy)
        tally = tallies.get(frame.bssid)
        if tally is None:
            tally = tallies[frame.bssid] = _Tally(frame.bssid, cls, ts, ts)
        tally.add(frame, cls, ts)
    out = []
    for t in tallies.values():
        bss = ScannedBss(t.bssid, t.ssid, t.classification, t.freq_mhz)
        out.append(SurveyedBss(
            bss=bss, assessment=assess(bss, config), hidden=t.hidden, channel=t.channel,
            beacons=t.beacons, probe_responses=t.probe_responses,
            classes_seen=tuple(sorted(t.classes, key=lambda c: c.rank)),
            first_seen=t.first_seen, last_seen=t.last_seen))
    return out


def survey_capture(path: Path, config: WifiConfig,
                   counters: SurveyCounters | None = None) -> list[SurveyedBss]:
    return survey(read_frames(path, counters or SurveyCounters()), config)
