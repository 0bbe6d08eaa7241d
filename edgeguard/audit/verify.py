"""Verify an audit log: the hash chain across segments, naming the first bad sequence.

Reasons: ``edited`` (a record's content no longer matches its hash or is not JSON),
``deleted`` (a sequence number is missing inside a segment), ``inserted`` (a record that
does not belong: a repeated sequence number), ``reordered`` (records out of order),
``truncated`` (a segment ends before what the next segment's header says it held, or
with an incomplete record nobody acknowledged), ``segment-missing`` (a whole segment
between two others is gone), ``header`` (a segment without its header record).

A log that has no clean close (the daemon is running or was killed) still verifies
up to its last complete record. Truncation of whole records at the very end of the
newest segment can only be seen against a copy shipped off-host or a checkpoint.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from edgeguard.audit.against import compare_shipped, read_shipped
from edgeguard.audit.chain import GENESIS_HASH, canonical, chain_hash, get_path, strip_hash
from edgeguard.audit.checkpoint import CHECKPOINT, CheckpointChecker
from edgeguard.audit.keys import ExportedKey
from edgeguard.audit.writer import ACTIVE_NAME, PRUNED, SEGMENT_START

__all__ = ["Problem", "VerifyResult", "collect_segments", "verify_paths"]

_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class Problem:
    sequence: int
    reason: str
    detail: str
    segment: str


@dataclass(slots=True)
class VerifyResult:
    records: int = 0
    segments: int = 0
    first_sequence: int | None = None
    last_sequence: int | None = None
    last_hash: str | None = None
    chain_id: str | None = None
    problem: Problem | None = None
    checkpoints: int = 0
    last_checkpoint: int | None = None
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # time/epoch inconsistencies (with --key)

    @property
    def ok(self) -> bool:
        return self.problem is None


@dataclass(slots=True)
class _Segment:
    path: Path
    lines: list[bytes]
    partial: bytes  # bytes after the last newline
    header: dict[str, Any] | None


def collect_segments(paths: Iterable[Path]) -> list[Path]:
    """Files named, or the audit segments inside directories named."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out.extend(sorted(path.glob("audit-*.jsonl")))
            if (path / ACTIVE_NAME).exists():
                out.append(path / ACTIVE_NAME)
        else:
            out.append(path)
    return out


def _load(path: Path) -> _Segment:
    data = path.read_bytes()
    cut = data.rfind(b"\n") + 1
    lines = data[:cut].split(b"\n")[:-1] if cut else []
    header = None
    if lines:
        try:
            first = orjson.loads(lines[0])
            if isinstance(first, dict) and get_path(first, "event.action") == SEGMENT_START:
                header = first
        except orjson.JSONDecodeError:
            header = None
    return _Segment(path, lines, data[cut:], header)


def _int(value: Any) -> int | None:
    """A JSON integer (not a boolean), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _order_key(seg: _Segment) -> tuple[int, int]:
    seq = _int(get_path(seg.header, "event.sequence")) if seg.header else None
    if seq is not None:
        return (0, seq)
    return (1, 0)


def _header_fault(header: dict[str, Any]) -> str | None:
    """What makes a header unusable (wrong types), or None."""
    prev_seq = get_path(header, "edgeguard.audit.previous_sequence")
    prev_hash = get_path(header, "edgeguard.audit.previous_hash")
    if _int(prev_seq) is None or prev_seq < 0:
        return "malformed segment header: previous_sequence is not a sequence number"
    if not isinstance(prev_hash, str) or not _HEX64.fullmatch(prev_hash):
        return "malformed segment header: previous_hash is not a SHA-256 hex digest"
    if not isinstance(get_path(header, "edgeguard.chain_id"), str):
        return "malformed segment header: chain_id is missing"
    if _int(get_path(header, "event.sequence")) is None:
        return "malformed segment header: its own sequence is not a number"
    return None


class _Walker:
    def __init__(self, result: VerifyResult, key: ExportedKey | None, keep_hashes: bool) -> None:
        self.result = result
        self.expected: int | None = None
        self.prev_hash = GENESIS_HASH
        self.prev_segment: _Segment | None = None
        self.start: tuple[int, str] | None = None  # (sequence, hash) the oldest segment follows
        self.pruned: dict[int, str] = {}  # last sequence -> last hash of pruned segments
        self.checker = CheckpointChecker(key)
        self.hashes: dict[int, str] | None = {} if keep_hashes else None

    def fail(self, seq: int, reason: str, detail: str, seg: _Segment) -> None:
        self.result.problem = Problem(seq, reason, detail, str(seg.path))

    def link_segment(self, seg: _Segment) -> bool:
        header = seg.header
        fault = "segment has no header record" if header is None else _header_fault(header)
        if header is None or fault is not None:
            self.fail(self.expected or 1, "header", str(fault), seg)
            return False
        prev_seq = get_path(header, "edgeguard.audit.previous_sequence")
        prev_hash = get_path(header, "edgeguard.audit.previous_hash")
        chain = get_path(header, "edgeguard.chain_id")
        if self.result.chain_id is None:
            self.result.chain_id = chain
        elif chain != self.result.chain_id:
            self.fail(get_path(header, "event.sequence"), "segment-missing",
                      f"segment belongs to another chain ({chain})", seg)
            return False
        if self.expected is None:  # the oldest segment we were given
            if isinstance(prev_seq, int) and prev_seq > 0:
                self.checker.pruned_start = True
                self.result.notes.append(f"log starts at sequence {prev_seq + 1}: earlier "
                                         "segments were pruned or not given")
            self.expected = (prev_seq or 0) + 1
            self.prev_hash = str(prev_hash or GENESIS_HASH)
            self.start = (self.expected - 1, self.prev_hash)
            return True
        last = self.expected - 1
        previous = self.prev_segment
        assert previous is not None
        unclean = get_path(header, "edgeguard.audit.unclean_tail_bytes") or 0
        if previous.partial and unclean != len(previous.partial):
            self.fail(self.expected, "truncated", f"{previous.path.name} ends with an incomplete "
                      "record that the next segment does not acknowledge", previous)
            return False
        if prev_seq == last and prev_hash == self.prev_hash:
            return True
        named = get_path(header, "edgeguard.audit.previous_segment")
        jumped = isinstance(prev_seq, int) and prev_seq > last
        if jumped and previous.path.name not in (named, ACTIVE_NAME):
            self.fail(last + 1, "segment-missing", f"records {last + 1}..{prev_seq} are in "
                      f"segment {named}, which is missing", seg)
        elif jumped:
            self.fail(last + 1, "truncated", f"{previous.path.name} ends at {last} but held "
                      f"records up to {prev_seq}", previous)
        else:
            self.fail(get_path(header, "event.sequence") or last + 1, "edited",
                      "segment header does not link to the previous segment", seg)
        return False

    def walk(self, seg: _Segment) -> bool:
        records: list[tuple[int | None, dict[str, Any] | None]] = []
        for raw in seg.lines:
            try:
                rec = orjson.loads(raw)
                seq = get_path(rec, "event.sequence") if isinstance(rec, dict) else None
                records.append((seq if isinstance(seq, int) else None,
                                rec if isinstance(rec, dict) else None))
            except orjson.JSONDecodeError:
                records.append((None, None))
        for index, (seq, rec) in enumerate(records):
            assert self.expected is not None
            if rec is None or seq is None:
                self.fail(self.expected, "edited", f"line {index + 1} is not a record", seg)
                return False
            bad = self._position(index, seq, records) or self._content(index, seq, rec,
                                                                       records, seg)
            if bad is not None:
                self.fail(bad[0], bad[1], bad[2], seg)
                return False
            stored = get_path(rec, "event.hash")
            if not self._record_checks(seq, rec, seg):
                return False
            self.prev_hash = str(stored)
            if self.hashes is not None:
                self.hashes[seq] = self.prev_hash
            self.expected = seq + 1
            self.result.records += 1
            self.result.first_sequence = self.result.first_sequence or seq
            self.result.last_sequence = seq
        return True


    def _position(self, index: int, seq: int, records: list[tuple[int | None, Any]],
                  ) -> tuple[int, str, str] | None:
        assert self.expected is not None
        if seq > self.expected:
            later = {s for s, _ in records[index + 1:]}
            reason = "reordered" if self.expected in later else "deleted"
            return (self.expected, reason,
                    f"expected sequence {self.expected} at line {index + 1}, found {seq}")
        if seq < self.expected:
            bad = seq if seq == self.expected - 1 else self.expected
            return bad, "inserted", f"line {index + 1} repeats sequence {seq}"
        return None

    def _content(self, index: int, seq: int, rec: dict[str, Any],
                 records: list[tuple[int | None, dict[str, Any] | None]], seg: _Segment,
                 ) -> tuple[int, str, str] | None:
        if chain_hash(self.prev_hash, strip_hash(rec)) != get_path(rec, "event.hash"):
            return (seq, self._mismatch_reason(seq, records, index),
                    "content does not match its hash")
        if canonical(rec) != seg.lines[index]:
            # Same values, other bytes (e.g. 1e16 -> 1E16): still an edit of the file.
            return seq, "edited", "line is not in canonical form"
        return None

    def _record_checks(self, seq: int, rec: dict[str, Any], seg: _Segment) -> bool:
        action = get_path(rec, "event.action")
        if action == CHECKPOINT:
            failure = self.checker.check(seq, rec, self.prev_hash)
            if failure is not None:
                self.fail(seq, failure.reason, failure.detail, seg)
                return False
        elif action == PRUNED:
            last = get_path(rec, "edgeguard.audit.pruned_last_sequence")
            digest = get_path(rec, "edgeguard.audit.pruned_last_hash")
            if isinstance(last, int) and isinstance(digest, str):
                self.pruned[last] = digest
        return True

    def _mismatch_reason(self, seq: int, records: list[tuple[int | None, dict[str, Any] | None]],
                         index: int) -> str:
        """A foreign line carrying the sequence the next (genuine) line holds: inserted."""
        if index + 1 < len(records):
            nxt_seq, nxt = records[index + 1]
            if nxt_seq == seq and nxt is not None and \
                    chain_hash(self.prev_hash, strip_hash(nxt)) == get_path(nxt, "event.hash"):
                return "inserted"
        return "edited"


def verify_paths(paths: Sequence[Path], *, key: ExportedKey | None = None,
                 against: Sequence[Path] = ()) -> VerifyResult:
    """Verify the segments named (directories: every segment in them).

    ``key``: K0 exported at enrolment; every checkpoint's MAC is checked. ``against``:
    shipped copies; records cut from the end of the local log are found there. When a
    directory is given, a missing oldest part must be accounted for by prune records.
    """
    result = VerifyResult()
    segments = sorted((_load(p) for p in collect_segments(paths)), key=_order_key)
    walker = _Walker(result, key, keep_hashes=bool(against))
    for seg in _iter_nonempty(segments):
        result.segments += 1
        if not walker.link_segment(seg) or not walker.walk(seg):
            return _finish(result, walker)
        walker.prev_segment = seg
    last = walker.prev_segment
    if last is not None and last.partial:
        expected = walker.expected or 1
        walker.fail(expected, "truncated", f"{last.path.name} ends with an incomplete record "
                    f"after sequence {expected - 1} ({len(last.partial)} bytes): a power loss "
                    "or a cut; the next start of edgeguard records it", last)
        return _finish(result, walker)
    result.last_hash = walker.prev_hash if result.records else None
    if not _check_prefix(walker, strict=any(p.is_dir() for p in paths)):
        return _finish(result, walker)
    if against:
        copy = read_shipped(against, result.chain_id)
        assert walker.hashes is not None
        mismatch = compare_shipped(copy, walker.hashes, result.last_sequence,
                                   result.first_sequence)
        if mismatch is not None:
            result.problem = Problem(*mismatch)
    return _finish(result, walker)


def _check_prefix(walker: _Walker, *, strict: bool) -> bool:
    """A log that starts after sequence 0: pruned by retention (recorded) or cut."""
    if walker.start is None or walker.start[0] == 0:
        return True
    seq, digest = walker.start
    if walker.pruned.get(seq) == digest:
        walker.result.notes = [n for n in walker.result.notes if "were pruned or" not in n]
        walker.result.notes.append(f"sequences up to {seq} were pruned by retention "
                                   "(prune records in the log account for them)")
        return True
    if strict:
        first = max((p for p in walker.pruned if p < seq), default=0) + 1
        walker.result.problem = Problem(first, "segment-missing", f"records {first}..{seq} are "
                                        "missing and no prune record accounts for them", "")
        return False
    return True


def _finish(result: VerifyResult, walker: _Walker) -> VerifyResult:
    result.checkpoints = walker.checker.count
    result.last_checkpoint = walker.checker.last_sequence
    if walker.checker.unsealed_before_enrolment:
        result.notes.append(f"{walker.checker.unsealed_before_enrolment} checkpoints were "
                            "written before the key was enrolled (unsealed)")
        if walker.checker.count == walker.checker.unsealed_before_enrolment:
            result.problem = result.problem or Problem(
                walker.checker.first_unsealed or 0, "checkpoint-unsealed",
                "no checkpoint is sealed: this log was never written with the enrolled key",
                "")
    _sealing_notes(result, walker.checker)
    if result.ok and result.records and walker.checker.key is not None:
        sealed = result.last_checkpoint or 0
        unsealed = (result.last_sequence or 0) - sealed
        if unsealed > 0:
            result.notes.append(f"{unsealed} records after the last checkpoint "
                                f"(sequence {sealed or '-'}) are not sealed yet")
    return result


def _sealing_notes(result: VerifyResult, checker: CheckpointChecker) -> None:
    report = checker.report
    result.warnings = list(report.time_warnings)
    if report.first_epoch is not None:
        result.notes.append(f"the log starts after sequence 1: sealing is checked from epoch "
                            f"{report.first_epoch} on (compare with the epoch your last "
                            "verification reached)")
    if report.legacy:
        result.notes.append(f"{report.legacy} checkpoints up to sequence {report.last_legacy} "
                            "are legacy (written before time binding): their MACs and epochs "
                            "are checked, their times are not")
    result.notes.extend(report.lost_epochs)
    result.notes.extend(report.restarts)


def _iter_nonempty(segments: list[_Segment]) -> Iterator[_Segment]:
    for seg in segments:
        if seg.lines or seg.partial:
            yield seg
