"""Fleet verification at the collector: every host's chain in a directory of received records.

The collector (rsyslog, syslog-ng, a file sink) writes the records it received as JSON
lines, each optionally after a syslog prefix (anything before the first ``{``): one file
per host, several rotated files per host, or every host mixed in one file all work,
because records are grouped by their own ``host.name`` and ``edgeguard.chain_id``, never
by file name. A first pass notes, per file, the lowest sequence of each chain in it; files
are then read in sequence order (a file whose chain starts earlier is read before one that
continues it, whatever the modification times say: editing a file must not move its
records behind newer ones), one line at a time. Each chain starts at the lowest sequence
the collector holds, keeps only its head, a bounded window of recent hashes (to recognise
the duplicates a reconnect resends) and a bounded reorder buffer, so memory grows with the
number of chains and files, not records.

Silence is measured from when the *collector* received a host's newest record (its file's
modification time; in a file holding several hosts, the earlier of that and the record's
own ``@timestamp``), never from the host's clock alone: a record dated in the future cannot
keep a host from going silent, and records dated more than :data:`FUTURE_GRACE` after
their file was last written are flagged.

Per host and chain the result is one of (worst first):

* ``tampered``: a record does not chain from the one before it (edited, inserted,
  re-encoded), the same sequence arrived twice with different hashes, a checkpoint does
  not seal its predecessor or (with the host's K0) its MAC or epoch is wrong, or the
  host's own copy disagrees with what the collector received;
* ``truncated-at-source``: with the host's copy given, the collector holds records the
  host no longer has (cut from the end of its trail), or a whole chain the host no longer
  holds (its audit directory wiped and a fresh chain started) unless that chain's last
  record is the checkpoint of a clean stop (``reason: shutdown``);
* ``gap``: sequences the collector never received (or, with the host's copy, records the
  host holds that never arrived);
* ``silent``: nothing from the host, not even a checkpoint, for longer than its
  checkpoint interval (plus :data:`SILENT_GRACE`); a host named by ``--expect`` or a key
  file with no record at all is silent too;
* ``unchecked``: what was received verifies, but part of the chain could not be checked:
  resends older than :data:`DUPLICATE_WINDOW` (not compared with what was first received),
  the chain's head (sequences before the first received) never received and no host copy
  given, or records dated more than :data:`FUTURE_GRACE` in the future (host clock ahead);
* ``verified``: none of these; with K0 every received checkpoint's MAC and epoch verified.
"""

from __future__ import annotations

import datetime as _dt
import enum
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeguard.audit.chain import canonical, chain_hash, get_path, strip_hash
from edgeguard.audit.checkpoint import CHECKPOINT, TIME_GRACE, CheckpointChecker
from edgeguard.audit.fleet_files import fleet_records, reading_order, received_files, survey_files
from edgeguard.audit.keys import AuditKeyError, ExportedKey, read_export
from edgeguard.audit.verify import verify_paths
from edgeguard.ecs import iso_timestamp

__all__ = [
    "DUPLICATE_WINDOW",
    "FUTURE_GRACE",
    "REORDER_LIMIT",
    "SILENT_GRACE",
    "ChainReport",
    "FleetError",
    "FleetReport",
    "Status",
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
#: Seconds a record's ``@timestamp`` may lie after its file was last written (clock skew)
#: before the record counts as future-dated.
FUTURE_GRACE = TIME_GRACE
#: The ``edgeguard.checkpoint.reason`` of the checkpoint a clean stop writes.
CLEAN_STOP = "shutdown"
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
    UNCHECKED = "unchecked"
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
    future_dated: int = 0  # records dated beyond FUTURE_GRACE after their receipt
    ended_cleanly: bool = False  # the newest record is a clean stop's checkpoint
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

    def first_problem(self) -> tuple[Status, int, str] | None:
        """The earliest listed problem of the worst kind (None: no problem)."""
        if not self.problems:
            return None
        return min(self.problems, key=lambda p: (_RANK[p[0]], p[1]))


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


@dataclass(frozen=True, slots=True)
class _Receipt:
    """When the collector received the records of one file: its modification time; in a
    file several hosts write to (``shared``), a record's own time if that is earlier."""

    mtime: float
    shared: bool
    future: str  # @timestamps above this (text compare, fixed width) are future-dated

    def of(self, stamp: str) -> float:
        own = _seconds(stamp) if self.shared else None
        return self.mtime if own is None else min(own, self.mtime)


class _ChainState:
    """The streaming check of one chain: head, duplicate window, reorder buffer."""

    def __init__(self, report: ChainReport, keys: Mapping[str, tuple[str, ExportedKey]],
                 start: int) -> None:
        self.report = report
        self.keys = keys
        self.checker = CheckpointChecker(None)
        # The lowest sequence any file holds (first pass): records are taken in order from
        # there, so one read late is a reorder or a duplicate, never a new start.
        self.expected = start
        self.prev_hash: str | None = None
        self.recent = _HashRing(DUPLICATE_WINDOW)
        self.last_stamp = ""  # the @timestamp of the newest record taken
        self.last_receipt: _Receipt | None = None
        self.pending: dict[int, tuple[dict[str, Any], bytes, _Receipt]] = {}
        if start > 1:
            report.notes.append(f"the collector's copy starts at sequence {start}")
            self.checker.pruned_start = True

    def add(self, seq: int, rec: dict[str, Any], body: bytes, receipt: _Receipt) -> None:
        stamp = rec.get("@timestamp")
        if isinstance(stamp, str) and len(stamp) == _STAMP_LEN and stamp > receipt.future:
            self.report.future_dated += 1
            if self.report.future_dated == 1:
                self.report.problem(Status.UNCHECKED, seq, f"dated {stamp}, more than "
                                    f"{FUTURE_GRACE:g} s after the collector received it "
                                    "(host clock ahead): host times not trusted")
        if seq < self.expected or seq in self.pending:
            self._duplicate(seq, rec)
        elif seq == self.expected:
            self._accept(seq, rec, body, receipt, linked=self.prev_hash is not None)
            self._drain()
        else:
            self.pending[seq] = (rec, body, receipt)
            if len(self.pending) > REORDER_LIMIT:
                self._skip_to(min(self.pending))

    def finish(self) -> None:
        while self.pending:
            self._skip_to(min(self.pending))
        report = self.report
        if self.last_receipt is not None:
            report.last_time = self.last_receipt.of(self.last_stamp)
        if report.unchecked_duplicates:
            report.problem(Status.UNCHECKED, report.first_sequence or 0,
                           f"{report.unchecked_duplicates} resent records older than the "
                           f"last {DUPLICATE_WINDOW} were not compared with the first copy")

    def _skip_to(self, seq: int) -> None:
        """Records ``expected .. seq - 1`` never arrived: a gap."""
        assert self.expected is not None
        first, last = self.expected, seq - 1
        self.report.missing += seq - first
        if len(self.report.gaps) < _MAX_LISTED:
            self.report.gaps.append((first, last))
        self.report.problem(Status.GAP, first, f"sequences {first}..{last} were not received")
        self.checker.after_gap()
        rec, body, receipt = self.pending.pop(seq)
        self._accept(seq, rec, body, receipt, linked=False)
        self._drain()

    def _drain(self) -> None:
        while self.expected in self.pending:
            rec, body, receipt = self.pending.pop(self.expected)
            self._accept(self.expected, rec, body, receipt, linked=True)

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

    def _accept(self, seq: int, rec: dict[str, Any], body: bytes, receipt: _Receipt, *,
                linked: bool) -> None:
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
        checkpoint = get_path(rec, "event.action") == CHECKPOINT
        if checkpoint:
            self._checkpoint(seq, rec, linked=linked)
        report.ended_cleanly = checkpoint and \
            get_path(rec, "edgeguard.checkpoint.reason") == CLEAN_STOP
        stamp = rec.get("@timestamp")
        self.last_stamp = stamp if isinstance(stamp, str) else ""
        self.last_receipt = receipt
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
    host_copies = host_copies or {}
    surveys = survey_files(received_files(directory))
    starts: dict[str, int] = {}
    for survey in surveys.values():
        for chain, first in survey.firsts.items():
            starts[chain] = min(first, starts.get(chain, first))
    states: dict[str, _ChainState] = {}
    for path in reading_order(surveys):
        survey = surveys[path]
        receipt = _Receipt(survey.mtime, len(survey.hosts) > 1,
                           iso_timestamp(survey.mtime + FUTURE_GRACE))
        for host, chain, seq, rec, body in fleet_records(path):
            state = states.get(chain)
            if state is None:
                start = starts.get(chain, seq)  # a file changed since the first pass
                state = states[chain] = _ChainState(ChainReport(host, chain), keys, start)
            state.report.files.add(str(path))
            state.add(seq, rec, body, receipt)
    for state in states.values():
        state.finish()
    reports = [s.report for s in states.values()]
    for report in reports:
        if not report.sealed and keys:
            report.notes.append("no K0 for this chain's key among the key files: chain only")
        if (report.first_sequence or 1) > 1 and report.host not in host_copies:
            report.problem(Status.UNCHECKED, report.first_sequence or 0,
                           f"sequences 1..{(report.first_sequence or 1) - 1} (the chain's "
                           "head) were never received, and no host copy was given")
    _compare_host_copies(reports, host_copies)
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
                if not report.ended_cleanly:  # the host lost the chain it was writing
                    report.problem(Status.TRUNCATED_AT_SOURCE, report.last_sequence or 0,
                                   f"the host's copy no longer holds this chain (it holds "
                                   f"{local.chain_id or 'none'}), which did not end with a "
                                   f"clean stop: its audit directory was wiped or replaced")
                continue
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
