"""Fleet verification at the collector: every host's chain in a directory of received records.

The collector (rsyslog, syslog-ng, a file sink) writes the records it received as JSON
lines, each optionally after a syslog prefix (anything before the first ``{``): one file
per host, several rotated files per host, or every host mixed in one file all work,
because records are grouped by their own ``host.name`` and ``edgeguard.chain_id``, never
by file name. Files are read oldest first (modification time, then name), one line at a
time; each chain keeps only its head, a bounded window of recent hashes (to recognise the
duplicates a reconnect resends) and a bounded reorder buffer, so memory grows with the
number of chains, not records.

Per host and chain the result is one of (worst first):

* ``tampered``: a record does not chain from the one before it (edited, inserted,
  re-encoded), the same sequence arrived twice with different hashes, a checkpoint does
  not seal its predecessor or (with the host's K0) its MAC or epoch is wrong, or the
  host's own copy disagrees with what the collector received;
* ``truncated-at-source``: with the host's copy given, the collector holds records the
  host no longer has (cut from the end of its trail);
* ``gap``: sequences the collector never received (or, with the host's copy, records the
  host holds that never arrived);
* ``silent``: nothing from the host, not even a checkpoint, for longer than its
  checkpoint interval (plus :data:`SILENT_GRACE`); a host named by ``--expect`` or a key
  file with no record at all is silent too;
* ``verified``: none of these; with K0 every received checkpoint's MAC and epoch verified.
"""

from __future__ import annotations

import datetime as _dt
import enum
import os
from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeguard.audit.against import json_records
from edgeguard.audit.chain import canonical, chain_hash, get_path, strip_hash
from edgeguard.audit.checkpoint import CHECKPOINT, TIME_GRACE, CheckpointChecker
from edgeguard.audit.keys import AuditKeyError, ExportedKey, read_export
from edgeguard.audit.verify import verify_paths
from edgeguard.ecs import iso_timestamp
from edgeguard.events import Scalar

__all__ = [
    "DUPLICATE_WINDOW",
    "REORDER_LIMIT",
    "SILENT_GRACE",
    "ChainReport",
    "FleetError",
    "FleetReport",
    "Status",
    "fleet_line",
    "fleet_row",
    "load_keys",
    "received_files",
    "verify_fleet",
]

#: Recent (sequence, hash) pairs kept per chain to compare the duplicates a reconnect
#: resends (the shipper resends at most ``resend_on_reconnect``, default 100).
DUPLICATE_WINDOW = 4096
#: Records held per chain waiting for a missing predecessor before it is declared a gap.
REORDER_LIMIT = 1024
#: Seconds past a host's checkpoint interval before it counts as silent.
SILENT_GRACE = TIME_GRACE
DEFAULT_INTERVAL = 60.0  # a chain with no checkpoint received: the policy default
_MAX_LISTED = 8  # gap ranges and problems kept per chain (the rest are counted)


class FleetError(Exception):
    """A key file or host copy that cannot be read."""


class Status(enum.Enum):
    """Per chain, worst first."""

    TAMPERED = "tampered"
    TRUNCATED_AT_SOURCE = "truncated-at-source"
    GAP = "gap"
    SILENT = "silent"
    VERIFIED = "verified"


_RANK = {s: i for i, s in enumerate(Status)}


@dataclass(slots=True)
class ChainReport:
    """What the collector's copy of one chain shows."""

    host: str
    chain_id: str | None
    records: int = 0
    first_sequence: int | None = None
    last_sequence: int | None = None
    last_time: float | None = None
    interval: float = DEFAULT_INTERVAL
    checkpoints: int = 0
    sealed: bool = False  # checked with the host's K0
    duplicates: int = 0  # byte-identical resends (harmless)
    unchecked_duplicates: int = 0  # resends older than DUPLICATE_WINDOW: not compared
    missing: int = 0
    gaps: list[tuple[int, int]] = field(default_factory=list)
    problems: list[tuple[Status, int, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    files: set[str] = field(default_factory=set)

    status: Status = Status.VERIFIED  # the worst problem, also beyond those listed
    problems_total: int = 0

    def problem(self, status: Status, sequence: int, detail: str) -> None:
        self.problems_total += 1
        if _RANK[status] < _RANK[self.status]:
            self.status = status
        first_of_worst = status is self.status and all(p[0] is not status
                                                       for p in self.problems)
        if len(self.problems) < _MAX_LISTED or first_of_worst:
            self.problems.append((status, sequence, detail))


@dataclass(slots=True)
class FleetReport:
    chains: list[ChainReport]

    @property
    def ok(self) -> bool:
        return all(c.status is Status.VERIFIED for c in self.chains)


def _seconds(stamp: Any) -> float | None:
    if not isinstance(stamp, str):
        return None
    try:
        parsed = _dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ")
    except ValueError:
        return None
    return parsed.replace(tzinfo=_dt.UTC).timestamp()


_STAMP_LEN = len("2026-01-01T00:00:00.000000Z")


class _HashRing:
    """The hashes of the last ``size`` sequences, 40 bytes each, in two flat arrays."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.seqs = array("q", bytes(8 * size))
        self.hashes = bytearray(32 * size)

    def put(self, seq: int, digest: str) -> None:
        slot = seq % self.size
        try:
            raw = bytes.fromhex(digest)
        except ValueError:
            raw = b""
        if len(raw) != 32:  # not a SHA-256: never matches a genuine resend
            self.seqs[slot] = -1
            return
        self.seqs[slot] = seq
        self.hashes[32 * slot:32 * slot + 32] = raw

    def get(self, seq: int) -> str | None:
        slot = seq % self.size
        if self.seqs[slot] != seq or seq <= 0:
            return None
        return self.hashes[32 * slot:32 * slot + 32].hex()


class _ChainState:
    """The streaming check of one chain: head, duplicate window, reorder buffer."""

    def __init__(self, report: ChainReport, keys: Mapping[str, tuple[str, ExportedKey]],
                 ) -> None:
        self.report = report
        self.keys = keys
        self.checker = CheckpointChecker(None)
        self.expected: int | None = None
        self.prev_hash: str | None = None
        self.recent = _HashRing(DUPLICATE_WINDOW)
        self.last_stamp = ""  # the newest @timestamp (RFC 3339, fixed width: sorts as text)
        self.pending: dict[int, tuple[dict[str, Any], bytes]] = {}

    def add(self, seq: int, rec: dict[str, Any], body: bytes) -> None:
        report = self.report
        stamp = rec.get("@timestamp")
        if isinstance(stamp, str) and len(stamp) == _STAMP_LEN and stamp > self.last_stamp:
            self.last_stamp = stamp
        if self.expected is None:  # the first record the collector holds
            if seq > 1:
                report.notes.append(f"the collector's copy starts at sequence {seq}")
                self.checker.pruned_start = True
            self._accept(seq, rec, body, linked=False)
            return
        if seq < self.expected or seq in self.pending:
            self._duplicate(seq, rec)
        elif seq == self.expected:
            self._accept(seq, rec, body, linked=True)
            self._drain()
        else:
            self.pending[seq] = (rec, body)
            if len(self.pending) > REORDER_LIMIT:
                self._skip_to(min(self.pending))

    def finish(self) -> None:
        while self.pending:
            self._skip_to(min(self.pending))
        self.report.last_time = _seconds(self.last_stamp)

    def _skip_to(self, seq: int) -> None:
        """Records ``expected .. seq - 1`` never arrived: a gap."""
        assert self.expected is not None
        first, last = self.expected, seq - 1
        self.report.missing += seq - first
        if len(self.report.gaps) < _MAX_LISTED:
            self.report.gaps.append((first, last))
        self.report.problem(Status.GAP, first, f"sequences {first}..{last} were not received")
        self.checker.after_gap()
        rec, body = self.pending.pop(seq)
        self._accept(seq, rec, body, linked=False)
        self._drain()

    def _drain(self) -> None:
        while self.expected in self.pending:
            rec, body = self.pending.pop(self.expected)
            self._accept(self.expected, rec, body, linked=True)

    def _duplicate(self, seq: int, rec: dict[str, Any]) -> None:
        digest = get_path(rec, "event.hash")
        held = self.pending.get(seq)
        known = self.recent.get(seq) if held is None else get_path(held[0], "event.hash")
        if known is None:
            self.report.unchecked_duplicates += 1
        elif known == digest:
            self.report.duplicates += 1
        else:
            self.report.problem(Status.TAMPERED, seq, f"sequence {seq} was received twice "
                                "with different hashes")

    def _accept(self, seq: int, rec: dict[str, Any], body: bytes, *, linked: bool) -> None:
        report = self.report
        digest = get_path(rec, "event.hash")
        if not isinstance(digest, str):
            report.problem(Status.TAMPERED, seq, "record without a hash")
            digest = ""
        elif canonical(rec) != body:
            report.problem(Status.TAMPERED, seq, "line is not in canonical form (edited, or "
                           "re-encoded by the receiver)")
        elif linked and chain_hash(str(self.prev_hash), strip_hash(rec)) != digest:
            report.problem(Status.TAMPERED, seq, "content does not chain from the record "
                           "before it (edited or inserted)")
        if get_path(rec, "event.action") == CHECKPOINT:
            self._checkpoint(seq, rec, linked=linked)
        self.prev_hash = digest
        self.expected = seq + 1
        self.recent.put(seq, digest)
        report.records += 1
        report.first_sequence = seq if report.first_sequence is None else report.first_sequence
        report.last_sequence = seq

    def _checkpoint(self, seq: int, rec: dict[str, Any], *, linked: bool) -> None:
        interval = get_path(rec, "edgeguard.checkpoint.interval")
        if isinstance(interval, int | float) and not isinstance(interval, bool) and interval > 0:
            self.report.interval = float(interval)
        if not self.report.sealed:
            self._find_key(rec)
        # After a gap the predecessor is unknown: the MAC still seals the head it names.
        prev = self.prev_hash if linked else get_path(rec, "edgeguard.checkpoint.head_hash")
        failure = self.checker.check(seq, rec, str(prev))
        if failure is not None:
            self.report.problem(Status.TAMPERED, seq, f"{failure.reason}: {failure.detail}")
        else:
            self.report.checkpoints += 1


    def _find_key(self, rec: dict[str, Any]) -> None:
        """The first sealed checkpoint names its key: from here on checkpoints are
        checked with that host's K0 (the unsealed ones before it are enrolment's)."""
        kid = get_path(rec, "edgeguard.checkpoint.key_id")
        if get_path(rec, "edgeguard.checkpoint.sealed") is not True or kid not in self.keys:
            return
        old = self.checker
        self.checker = CheckpointChecker(self.keys[kid][1])
        self.checker.pruned_start = old.pruned_start
        self.checker.count = old.count
        self.checker.unsealed_before_enrolment = old.unsealed_before_enrolment
        self.report.sealed = True


def received_files(directory: Path) -> list[Path]:
    """Every regular file under ``directory``, oldest first (mtime, then path)."""
    found: list[tuple[float, str, Path]] = []
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        for name in files:
            path = Path(root) / name
            try:
                if path.is_file():
                    found.append((path.stat().st_mtime, str(path), path))
            except OSError:
                continue
    return [p for _, _, p in sorted(found)]


def load_keys(directory: Path | None) -> dict[str, tuple[str, ExportedKey]]:
    """K0 exports in ``directory`` (``<host>.key``): key id -> (host, key)."""
    keys: dict[str, tuple[str, ExportedKey]] = {}
    if directory is None:
        return keys
    for path in sorted(directory.glob("*.key")):
        try:
            key = read_export(path)
        except (OSError, AuditKeyError) as exc:
            raise FleetError(f"{path}: {exc}") from None
        keys[key.key_id] = (path.stem, key)
    return keys


def _records(files: Sequence[Path]) -> Iterator[tuple[str, str, int, dict[str, Any], bytes, str]]:
    for path in files:
        for rec, body in json_records(path):
            chain, seq = get_path(rec, "edgeguard.chain_id"), get_path(rec, "event.sequence")
            host = get_path(rec, "host.name")
            if not isinstance(chain, str) or not isinstance(seq, int) or isinstance(seq, bool):
                continue
            yield str(host or "?"), chain, seq, rec, body, str(path)


def verify_fleet(directory: Path, *, keys: Mapping[str, tuple[str, ExportedKey]] | None = None,
                 host_copies: Mapping[str, Sequence[Path]] | None = None,
                 expect: Iterable[str] = (), now: float, grace: float = SILENT_GRACE,
                 ) -> FleetReport:
    """Check every chain received in ``directory``; see the module docstring.

    ``keys``: :func:`load_keys` (a chain is checked with the key whose id its sealed
    checkpoints name). ``host_copies``: host name -> that host's own audit directory or
    segments. ``expect``: hosts that must appear (also every key file's host). ``now``:
    the time silence is measured to.
    """
    keys = keys or {}
    files = received_files(directory)
    states: dict[str, _ChainState] = {}
    for host, chain, seq, rec, body, where in _records(files):
        state = states.get(chain)
        if state is None:
            state = states[chain] = _ChainState(ChainReport(host, chain), keys)
        state.report.files.add(where)
        state.add(seq, rec, body)
    for state in states.values():
        state.finish()
    reports = [s.report for s in states.values()]
    for report in reports:
        if not report.sealed and keys:
            report.notes.append("no K0 for this chain's key among the key files: chain only")
    _compare_host_copies(reports, host_copies or {})
    _silence(reports, set(expect) | {host for host, _ in keys.values()}, now, grace)
    reports.sort(key=lambda r: (r.host, r.first_sequence or 0, r.chain_id or ""))
    return FleetReport(reports)


def _compare_host_copies(reports: list[ChainReport],
                         host_copies: Mapping[str, Sequence[Path]]) -> None:
    for host, paths in host_copies.items():
        if not all(p.exists() for p in paths):
            raise FleetError(f"host copy of {host}: no such file or directory")
        for report in (r for r in reports if r.host == host):
            received = sorted(Path(f) for f in report.files)
            local = verify_paths(list(paths), against=received)
            if local.chain_id != report.chain_id:
                continue  # another chain of this host (an older enrolment)
            problem = local.problem
            if problem is not None and problem.reason == "truncated":
                report.problem(Status.TRUNCATED_AT_SOURCE, problem.sequence,
                               f"the host's trail ends at {local.last_sequence}; the "
                               f"collector received records up to {report.last_sequence}")
            elif problem is not None:
                report.problem(Status.TAMPERED, problem.sequence, f"host copy: "
                               f"{problem.reason}: {problem.detail}")
            elif (local.last_sequence or 0) > (report.last_sequence or 0):
                first, last = (report.last_sequence or 0) + 1, local.last_sequence or 0
                report.missing += last - first + 1
                report.problem(Status.GAP, first, f"the host holds {first}..{last}, which "
                               "the collector has not received (not shipped yet, or lost)")


def _silence(reports: list[ChainReport], expected: set[str], now: float, grace: float) -> None:
    newest: dict[str, ChainReport] = {}
    for report in reports:
        best = newest.get(report.host)
        if best is None or (report.last_time or 0) > (best.last_time or 0):
            newest[report.host] = report
    for report in newest.values():
        if report.last_time is None:
            continue
        quiet = now - report.last_time
        if quiet > report.interval + grace:
            report.problem(Status.SILENT, report.last_sequence or 0,
                           f"nothing received for {quiet:.0f} s (checkpoint interval "
                           f"{report.interval:g} s)")
    for host in sorted(expected - set(newest)):
        missing = ChainReport(host, None)
        missing.problem(Status.SILENT, 0, "no record received from this host at all")
        reports.append(missing)


def fleet_line(report: ChainReport) -> str:
    """One human line per host and chain."""
    if not report.records:
        detail = report.problems[0][2] if report.problems else "no records"
        return f"{report.host} - {report.status.value}: {detail}"
    span = (f"sequences {report.first_sequence}..{report.last_sequence}"
            if report.records else "no records")
    sealing = ("sealed" if report.sealed else "chain only") if report.checkpoints else \
        "no checkpoint"
    line = (f"{report.host} {report.chain_id or '-'} {report.status.value}: "
            f"{report.records} records, {span}, {report.checkpoints} checkpoints ({sealing})")
    if report.duplicates:
        line += f", {report.duplicates} duplicates"
    if report.missing:
        line += f", {report.missing} missing"
    if report.problems:
        status, seq, detail = min(report.problems, key=lambda p: (_RANK[p[0]], p[1]))
        line += f": first {status.value} at sequence {seq}: {detail}"  # seq > 0: records
    return line


def fleet_row(report: ChainReport) -> dict[str, Scalar]:
    """The --json object of one host and chain (ECS names, dotted; the caller nests)."""
    row: dict[str, Scalar] = {
        "event.kind": "state",
        "event.action": "audit-fleet-verify",
        "event.outcome": "success" if report.status is Status.VERIFIED else "failure",
        "host.name": report.host,
        "edgeguard.chain_id": report.chain_id,
        "edgeguard.fleet.status": report.status.value,
        "edgeguard.audit.records": report.records,
        "edgeguard.audit.first_sequence": report.first_sequence,
        "edgeguard.audit.last_sequence": report.last_sequence,
        "edgeguard.audit.checkpoints": report.checkpoints,
        "edgeguard.fleet.sealed": report.sealed,
        "edgeguard.fleet.duplicates": report.duplicates,
        "edgeguard.fleet.unchecked_duplicates": report.unchecked_duplicates,
        "edgeguard.fleet.missing": report.missing,
        "edgeguard.fleet.gaps": tuple(f"{a}..{b}" for a, b in report.gaps),
        "edgeguard.fleet.problems": tuple(f"{s.value} at {q}: {d}"
                                          for s, q, d in report.problems),
        "edgeguard.fleet.problem_count": report.problems_total,
        "edgeguard.audit.notes": tuple(report.notes),
    }
    if report.last_time is not None:
        row["event.end"] = iso_timestamp(report.last_time)
    if report.problems:
        status, seq, detail = min(report.problems, key=lambda p: (_RANK[p[0]], p[1]))
        if seq > 0:
            row["event.sequence"] = seq
        row["event.reason"] = status.value
        row["error.message"] = detail
    return row
