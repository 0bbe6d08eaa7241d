"""A realistic audit trail for the ``report`` and ``audit tail`` tests, written by the real
AuditWriter (hash chain, segment headers, rotation, checkpoints), with the numbers a
correct report must show counted here as the records are written (the ground truth)."""

from __future__ import annotations

import datetime as _dt
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from edgeguard.audit.keys import enrol
from edgeguard.audit.writer import AuditWriter
from edgeguard.clock import FakeClock
from edgeguard.events import AuditRecord, Endpoint, EventKind, Mode, Outcome, Severity

DAY = 86400.0
#: an SSID and a USB serial as a hostile device would send them
HOSTILE_SSID = "<script>alert(1)</script>\x1b[2J"
HOSTILE_SERIAL = '<img src="http://evil.example/x">\x1b]0;pwned\x07'


@dataclass
class Truth:
    since: float
    per_day: dict[str, Counter[str]] = field(default_factory=dict)
    offenders: Counter[str] = field(default_factory=Counter)
    findings: int = 0
    records: int = 0  # in the window, bookkeeping excluded
    blocks: int = 0
    blocks_failed: int = 0
    would_block: int = 0
    wifi: Counter[str] = field(default_factory=Counter)
    media: dict[str, Counter[str]] = field(default_factory=dict)


def _day(epoch: float) -> str:
    return _dt.datetime.fromtimestamp(epoch).astimezone().date().isoformat()


class TrailBuilder:
    def __init__(self, directory: Path, start: float, since: float, *,
                 segment_size: int = 20_000) -> None:
        self.clock = FakeClock(start)
        key = directory.parent / "audit.key"
        enrol(key, directory.parent / "k0.export")
        self.writer = AuditWriter(directory, clock=self.clock, host="school-gw",
                                  segment_size=segment_size, fsync_interval=10.0,
                                  checkpoint_records=50, key_file=key)
        self.truth = Truth(since=since)

    def _write(self, at: float, record: AuditRecord) -> None:
        if at > self.clock.now():
            self.clock.advance(at - self.clock.now())
        self.writer.write(record)
        if at >= self.truth.since:
            self.truth.records += 1

    def scan(self, at: float, src: str, *, monitor: bool) -> None:
        fields: dict[str, object] = {"edgeguard.finding.kind": "scan",
                                     "edgeguard.finding.subtype": "syn"}
        if monitor:
            fields["edgeguard.would_act"] = ("block",)
            fields["edgeguard.would_change"] = (f"nft: drop {src} for 1h",)
        self._write(at, AuditRecord(
            action="scan-syn", message=f"{src} probed 25 ports on 10.0.0.5",
            kind=EventKind.ALERT, category=("network",), outcome=Outcome.SUCCESS,
            severity=Severity.MODERATE, rule_id="net-scan",
            mode=Mode.MONITOR if monitor else Mode.ENFORCE, timestamp=at,
            source=Endpoint(ip=src), destinations=(Endpoint(ip="10.0.0.5"),),
            fields=fields))  # type: ignore[arg-type]
        self._finding(at, "scan", src)
        if monitor and at >= self.truth.since:
            self.truth.would_block += 1

    def block(self, at: float, src: str, *, ok: bool) -> None:
        self._write(at, AuditRecord(
            action="block", message=f"block {src} for 1h", kind=EventKind.EVENT,
            category=("network",), event_type=("denied",), rule_id="net-scan",
            outcome=Outcome.SUCCESS if ok else Outcome.FAILURE, severity=Severity.MODERATE,
            mode=Mode.ENFORCE, timestamp=at, source=Endpoint(ip=src)))
        if at >= self.truth.since:
            if ok:
                self.truth.blocks += 1
            else:
                self.truth.blocks_failed += 1

    def usb(self, at: float, vendor: str, product: str, serial: str, verdict: str) -> None:
        """One plug-in: a record for the disk and one for its partition, as the daemon
        writes them."""
        action = {"read-only": "usb-read-only", "write-allowed": "usb-write-allowed"}[verdict]
        for node, devtype in (("/dev/sdb", "disk"), ("/dev/sdb1", "partition")):
            self._write(at, AuditRecord(
                action=action, message=f"{node} {verdict}", kind=EventKind.EVENT,
                category=("host", "configuration"), event_type=("change",),
                outcome=Outcome.SUCCESS, mode=Mode.ENFORCE, timestamp=at,
                fields={"volume.device_name": node, "volume.device_type": devtype,
                        "volume.vendor_name": vendor, "volume.product_name": product,
                        "volume.serial_number": serial, "edgeguard.media.verdict": verdict}))
        if at >= self.truth.since:
            device = f"{vendor} {product} {serial}".strip()
            self.truth.media.setdefault(device, Counter())[verdict] += 1

    def wifi_refusal(self, at: float, why: str, ssid: str) -> None:
        self._write(at, AuditRecord(
            action=f"wifi-{why}", message=f"wlan0: refused {ssid!s}: {why}",
            kind=EventKind.ALERT, category=("network",), outcome=Outcome.SUCCESS,
            severity=Severity.SEVERE, rule_id="wifi-floor", mode=Mode.ENFORCE, timestamp=at,
            fields={"edgeguard.finding.kind": "wifi", "edgeguard.finding.subtype": why,
                    "edgeguard.wifi.ssid": ssid}))
        self._finding(at, "wifi", None)
        if at >= self.truth.since:
            self.truth.wifi[why] += 1

    def _finding(self, at: float, kind: str, src: str | None) -> None:
        if at < self.truth.since:
            return
        self.truth.findings += 1
        self.truth.per_day.setdefault(_day(at), Counter())[kind] += 1
        if src is not None:
            self.truth.offenders[src] += 1

    def close(self) -> Truth:
        self.writer.close()
        return self.truth


def school_week(directory: Path, now: float) -> Truth:
    """Six days of a school's week up to ``now``, plus one finding before the window
    (``--since 7d``) that a report must leave out."""
    since = now - 7 * DAY
    b = TrailBuilder(directory, start=now - 9 * DAY, since=since)
    b.scan(now - 8.5 * DAY, "10.9.9.9", monitor=False)  # before the window
    for d in range(6):
        base = now - (6 - d) * DAY
        for i in range(d + 2):
            b.scan(base + 60 * i, "10.0.0.7", monitor=i % 2 == 0)
        b.scan(base + 900, f"10.0.1.{d}", monitor=False)
        b.block(base + 1000, "10.0.0.7", ok=d != 2)
        b.usb(base + 2000, "Kingston", "DataTraveler", "SN123", "read-only")
        if d == 3:
            b.usb(base + 2100, "SanDisk", "Cruzer", HOSTILE_SERIAL, "write-allowed")
        if d in (1, 4):
            b.wifi_refusal(base + 3000, "public", HOSTILE_SSID)
        if d == 5:
            b.wifi_refusal(base + 3100, "unlisted", "Free Wifi")
    return b.close()
