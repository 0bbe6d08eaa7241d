"""Per-source scan state: first contacts, their outcomes, TRW ratio, timing and labels.

A *contact* is a distinct (destination, port, protocol) a source tried. Its outcome
is decided by the answers the prefilter passes (SYN-ACK, RST, ICMP unreachable) or by
silence. The threshold random walk (Jung et al., 2004) multiplies a likelihood ratio
by (1-theta1)/(1-theta0) per failed first contact and by theta1/theta0 per success;
the source is a scanner once the ratio reaches detection/false_alarm.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Generic, TypeVar

from edgeguard.net.config import ScanThresholds

__all__ = ["FAILED", "OK", "PENDING", "SEEN", "SourceState", "Tally", "Trw", "median"]

# Contact outcomes.
PENDING = 0  # waiting for an answer
FAILED = 1  # RST, ICMP unreachable, silence, or a never-legitimate probe
OK = 2  # SYN-ACK (and not torn down half-open)
SEEN = 3  # counted without an outcome (UDP: replies are not seen through the prefilter)

K = TypeVar("K")
Contact = tuple[str, int, int]  # (destination, port, protocol)

#: How many gaps between first contacts are kept for the median.
_GAPS = 64
#: Cap on remembered source ports (the connect-scan hint).
_SPORTS = 64


@dataclass(frozen=True, slots=True)
class Trw:
    """The random walk's steps and thresholds in log10."""

    fail_step: float
    ok_step: float
    alarm: float
    benign: float

    @classmethod
    def from_config(cls, cfg: ScanThresholds) -> Trw:
        t0, t1 = cfg.trw_benign_success, cfg.trw_scanner_success
        pd, pf = cfg.trw_detection, cfg.trw_false_alarm
        return cls(fail_step=math.log10((1 - t1) / (1 - t0)), ok_step=math.log10(t1 / t0),
                   alarm=math.log10(pd / pf), benign=math.log10((1 - pd) / (1 - pf)))


class Tally(Generic[K]):
    """Counts per key and their running maximum, in O(1) per step (counts move by one).

    ``top`` is the largest count; ``_with`` holds how many keys have each count, so a
    decrement knows whether the maximum went down."""

    __slots__ = ("_counts", "_with", "top")

    def __init__(self) -> None:
        self._counts: dict[K, int] = {}
        self._with: dict[int, int] = {}
        self.top = 0

    def add(self, key: K) -> None:
        n = self._counts.get(key, 0) + 1
        self._counts[key] = n
        if n > 1:
            self._with[n - 1] -= 1
        self._with[n] = self._with.get(n, 0) + 1
        self.top = max(self.top, n)

    def remove(self, key: K) -> None:
        n = self._counts[key]
        self._with[n] -= 1
        if n == 1:
            del self._counts[key]
        else:
            self._counts[key] = n - 1
            self._with[n - 1] += 1
        if n == self.top and not self._with[n]:
            self.top = n - 1


def median(values: list[float]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


class SourceState:
    """Everything known about one probing source. Memory per source is bounded by
    ``max_contacts_per_source`` and the fixed caps above; a source with a single
    contact (a spoofed flood's typical source) allocates only its contact map, the
    rest is created when a second contact arrives."""

    __slots__ = (
        "_fails", "_gaps", "_hosts_by_port", "_open_hosts", "_open_ports", "_ports_by_host",
        "_probes_by", "_sports",
        "alarmed", "best_run", "co_sent", "completed", "contacts", "failed", "failed_tcp",
        "failed_udp", "first", "first_sport", "foreign_mac", "half_open", "high_run", "ip",
        "ip_version", "kind0", "labels", "last", "last_contact", "log_ratio", "mac",
        "masscan_like", "muted", "ok_tcp", "ok_udp", "overflow", "probes", "reported",
        "sample_list", "sec", "sec_count", "succeeded", "syn_probes", "udp_open",
    )

    def __init__(self, ip: str, mac: str, ip_version: int, ts: float) -> None:
        self.ip = ip
        self.mac = mac
        self.ip_version = ip_version
        self.first = ts
        self.last = ts
        self.last_contact = -1.0
        self.probes = 0
        self.contacts: dict[tuple[str, int, int], int] = {}
        self.overflow = 0
        #: (plain dicts, not Counters: a Counter's ``c[k] += 1`` on a new key runs the
        #: interpreted ``__missing__``, once per new contact)
        self._ports_by_host: dict[str, int] | None = None
        self._hosts_by_port: dict[int, int] | None = None
        self.log_ratio = 0.0
        self.alarmed = False
        self.failed = 0
        self.succeeded = 0
        #: settled first contacts per transport, and UDP contacts with no outcome yet
        self.failed_tcp = self.failed_udp = self.ok_tcp = self.ok_udp = self.udp_open = 0
        #: UDP contacts with no outcome yet per host / per port, kept from the second
        #: such contact on (a one-contact spoofed source allocates none)
        self._open_hosts: Tally[str] | None = None
        self._open_ports: Tally[int] | None = None
        #: SYN probes with masscan's fingerprint (see scan.masscan_fingerprint)
        self.masscan_like = 0
        #: failed contacts per probe type (a plain dict: a spoofed flood makes one per
        #: source, and a Counter costs a Python-level __init__)
        self._fails: dict[str, int] | None = None
        self._probes_by: dict[str, int] | None = None
        self.kind0 = ""  # the probe type while there has been only one kind
        self.first_sport = -1
        self._sports: set[int] | None = None
        self.syn_probes = 0
        self.half_open = 0
        self.completed = 0
        self.co_sent = 0
        self._gaps: list[float] | None = None
        self.sec = -1
        self.sec_count = 0
        self.high_run = 0
        self.best_run = 0
        #: subtype -> probes at its last report (a summary is due when this grew)
        self.reported: dict[str, int] = {}
        #: probe type -> the subtype it was first reported (or exempted) under: one set
        #: of contacts is reported once, even when its timing label changes later
        self.labels: dict[str, str] = {}
        self.sample_list: list[str] = []
        #: a decoy address of another actor: never reported on its own
        self.muted = False
        #: this address also reacts from another MAC: a live host used as a decoy
        self.foreign_mac = False

    # -- views (empty until allocated) -------------------------------------------------
    @property
    def ports_by_host(self) -> dict[str, int]:
        """Distinct ports per destination host."""
        if self._ports_by_host is None:
            counts: dict[str, int] = {}
            for host, _, _ in self.contacts:
                counts[host] = counts.get(host, 0) + 1
            return counts
        return self._ports_by_host

    @property
    def hosts_by_port(self) -> dict[int, int]:
        """Distinct hosts per destination port."""
        if self._hosts_by_port is None:
            counts: dict[int, int] = {}
            for _, port, _ in self.contacts:
                counts[port] = counts.get(port, 0) + 1
            return counts
        return self._hosts_by_port

    def fails(self, kind: str) -> int:
        return 0 if self._fails is None else self._fails.get(kind, 0)

    def failed_kinds(self, kinds: tuple[str, ...], at_least: int) -> list[str]:
        """Those of ``kinds`` (in that order) with ``at_least`` failed contacts."""
        fails = self._fails
        out: list[str] = []
        if fails is not None:  # a loop, not a comprehension: no extra frame (3.11)
            for kind in kinds:
                if fails.get(kind, 0) >= at_least:
                    out.append(kind)
        return out

    def probes_of(self, kind: str) -> int:
        if self._probes_by is None:
            return self.probes if kind == self.kind0 else 0
        return self._probes_by.get(kind, 0)

    @property
    def gaps(self) -> list[float]:
        return self._gaps or []

    @property
    def sports(self) -> set[int]:
        if self._sports is not None:
            return self._sports
        return {self.first_sport} if self.first_sport >= 0 else set()

    # -- accounting -------------------------------------------------------------------
    def distinct_contacts(self) -> int:
        return len(self.contacts) + self.overflow

    def add_contact(self, key: tuple[str, int, int], state: int, cap: int) -> bool:
        """Record a new contact; False when it was already known. ``cap`` is what
        this source may still remember (per-source and global budgets)."""
        if key in self.contacts:
            return False
        if len(self.contacts) >= cap:
            self.overflow += 1  # counted, not remembered: memory stays bounded
        else:
            if self.contacts and self._ports_by_host is None:
                self._ports_by_host = self.ports_by_host
                self._hosts_by_port = self.hosts_by_port
            self.contacts[key] = state
            if key[2] == 17 and state == SEEN:
                self._open_udp(key)
            by_host, by_port = self._ports_by_host, self._hosts_by_port
            if by_host is not None and by_port is not None:
                host, port = key[0], key[1]
                by_host[host] = by_host.get(host, 0) + 1
                by_port[port] = by_port.get(port, 0) + 1
        if self.last_contact >= 0:
            if self._gaps is None:
                self._gaps = []
            self._gaps.append(self.last - self.last_contact)
            if len(self._gaps) > _GAPS:
                del self._gaps[0]
        self.last_contact = self.last
        return True

    def _open_udp(self, key: Contact) -> None:
        """A UDP contact without an outcome was added (``key`` already in contacts)."""
        self.udp_open += 1
        hosts, ports = self._open_hosts, self._open_ports
        if hosts is None or ports is None:
            if self.udp_open < 2:
                return
            hosts, ports = self._open_hosts, self._open_ports = Tally[str](), Tally[int]()
            for dst, port, proto in self.contacts:  # once: from here on, per contact
                if proto == 17 and self.contacts[(dst, port, proto)] == SEEN:
                    hosts.add(dst)
                    ports.add(port)
            return
        hosts.add(key[0])
        ports.add(key[1])

    def _close_udp(self, key: Contact) -> None:
        """An open UDP contact got its outcome."""
        self.udp_open -= 1
        if self._open_hosts is not None and self._open_ports is not None:
            self._open_hosts.remove(key[0])
            self._open_ports.remove(key[1])

    def open_udp_peaks(self) -> tuple[int, int]:
        """The most open UDP contacts on one host, and on one port."""
        if self._open_hosts is None or self._open_ports is None:
            return self.udp_open, self.udp_open  # (0 or 1 such contact)
        return self._open_hosts.top, self._open_ports.top

    def count_probe(self, ts: float, kind: str, sport: int, rate: float) -> None:
        by_kind = self._probes_by
        if by_kind is not None:
            by_kind[kind] = by_kind.get(kind, 0) + 1
        elif self.probes and kind != self.kind0:  # a second kind: count per kind from now
            self._probes_by = {self.kind0: self.probes, kind: 1}
        else:
            self.kind0 = kind
        self.probes += 1
        last = self.last  # (max() is a call: this runs for every probe)
        self.last = ts if ts > last else last
        if kind == "syn":
            self.syn_probes += 1
            if self.first_sport < 0:
                self.first_sport = sport
            elif sport != self.first_sport or self._sports is not None:
                if self._sports is None:
                    self._sports = {self.first_sport}
                if len(self._sports) < _SPORTS:
                    self._sports.add(sport)
        second = int(ts)
        if second != self.sec:
            if second == self.sec + 1 and self.sec_count >= rate:
                self.high_run += 1
            else:
                self.high_run = 0
            self.sec, self.sec_count = second, 0
        self.sec_count += 1
        run = self.high_run + 1 if self.sec_count >= rate else self.high_run
        best = self.best_run
        self.best_run = run if run > best else best

    def outcome(self, key: tuple[str, int, int], failed: bool, kind: str, trw: Trw) -> bool:
        """Settle a contact; True when this changed the walk."""
        state = self.contacts.get(key)
        if state not in (PENDING, SEEN):
            return False
        self.contacts[key] = FAILED if failed else OK
        udp = key[2] == 17
        if udp and state == SEEN:
            self._close_udp(key)
        if failed:
            if udp:
                self.failed_udp += 1
            else:
                self.failed_tcp += 1
            self.failed += 1
            fails = self._fails
            if fails is None:
                self._fails = {kind: 1}
            else:
                fails[kind] = fails.get(kind, 0) + 1
            self.log_ratio += trw.fail_step
        else:
            self.succeeded += 1
            if udp:
                self.ok_udp += 1
            else:
                self.ok_tcp += 1
            self.log_ratio += trw.ok_step
        if self.log_ratio >= trw.alarm:
            self.alarmed = True
        elif self.log_ratio <= trw.benign:
            self.log_ratio = 0.0  # benign for now; start over (bounds a scanner's credit)
        return True

    def sample(self, text: str) -> None:
        if len(self.sample_list) < 3:
            self.sample_list.append(text)

    # -- labels -----------------------------------------------------------------------
    def rate_may_continue(self, now: float, rate: float, seconds: int) -> bool:
        """The scan is still sending at the masscan rate but has not held it for
        ``seconds`` yet: its label may still become masscan, so wait."""
        if self.best_run >= seconds or now - self.last >= 1.0:
            return False
        if self.sec_count >= rate:
            return True
        recent = self.gaps[-8:]
        return bool(recent) and median(recent) * rate <= 1.0

    def mostly_succeeding(self, udp: bool, ratio: float) -> bool:
        """More than ``ratio`` of this transport's settled first contacts succeeded
        (UDP: contacts still without an outcome count as settled-not-succeeded)."""
        if udp:
            ok, total = self.ok_udp, self.ok_udp + self.failed_udp + self.udp_open
        else:
            ok, total = self.ok_tcp, self.ok_tcp + self.failed_tcp
        return total > 0 and ok > ratio * total

    def figures(self, proto: int) -> tuple[Counter[str], Counter[int], int, int]:
        """Ports per host, hosts per port, failed and succeeded contacts of one
        transport (a finding describes only its own transport's contacts)."""
        keys = [key for key in self.contacts if key[2] == proto]
        by_host = Counter(key[0] for key in keys)
        by_port = Counter(key[1] for key in keys)
        if proto == 17:
            return by_host, by_port, self.failed_udp, self.ok_udp
        return by_host, by_port, self.failed_tcp, self.ok_tcp

    def median_gap(self) -> float:
        return median(self.gaps)

    def syn_label(self) -> str:
        """syn (half-open) or connect (full handshakes through the OS)."""
        if self.completed or self.half_open:
            return "connect" if self.completed > self.half_open else "syn"
        if self.syn_probes >= 4 and len(self.sports) >= min(self.syn_probes, _SPORTS) // 2:
            return "connect"  # connect() takes a new ephemeral port per probe
        return "syn"

    def duration(self) -> float:
        return max(0.0, self.last - self.first)
