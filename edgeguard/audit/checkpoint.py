"""Checkpoint records: the chain head sealed with the forward-secure key of an epoch.

A checkpoint is an ordinary chained record (``event.action: audit-checkpoint``) whose
``edgeguard.checkpoint.*`` fields name the head it seals (the previous record's sequence
and hash), the bytes of the active segment, the wall time, the epoch and the key id, and
carry ``mac = HMAC(K(epoch), canonical(signed fields))``. Since format 2 the MAC also
covers ``version``, ``interval`` (the longest wall time the writer lets pass between
two checkpoints) and ``started`` (the first checkpoint since the writer opened the key,
or since a sealed checkpoint could not be written before the head moved on).

The verifier, holding K0, derives K(epoch) by evolving forward and requires, for a chain
that starts at sequence 1 (nothing pruned), that the sealed checkpoints show *every*
epoch from 0 on. One epoch may be missing only right before a ``started`` checkpoint
(the writer crashed between evolving the key and writing the checkpoint); verify names
it. Anything else (a first epoch other than 0, an epoch that jumps or repeats) is
refused at that checkpoint: an intruder holding K(E) can seal epochs >= E only, so he
can neither re-seal an older checkpoint nor start a chain of his own.

Time: consecutive format-2 checkpoints must not be further apart than their interval
(plus :data:`TIME_GRACE`), unless the later one is ``started`` (the daemon was down), and
their times must not go back; each such inconsistency is reported (a warning: a suspended
machine or a stepped clock does it too). Checkpoints written before format 2 ("legacy")
are checked for MAC and epoch order and counted; a legacy checkpoint after a format-2
one is a downgrade and refused.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any

from edgeguard.audit.chain import get_path
from edgeguard.audit.keys import ExportedKey, KeyStore, evolve, mac
from edgeguard.ecs import iso_timestamp
from edgeguard.events import AuditRecord, EventKind, Outcome, Scalar

__all__ = ["CHECKPOINT", "FORMAT", "TIME_GRACE", "CheckpointChecker", "checkpoint_record"]

CHECKPOINT = "audit-checkpoint"
FORMAT = 2
TIME_GRACE = 10.0  # seconds a checkpoint may be late (load, fsync) before a gap is reported
TIME_BACKWARDS_GRACE = 2.0  # seconds the clock may step back before it is reported
_LATER_KEYS_TRIED = 4096
_MAX_EPOCH_STEP = 50_000_000  # ~95 years of one checkpoint a minute


def _signed(chain_id: str, head_sequence: int, head_hash: str, segment_bytes: int,
            time: str) -> dict[str, Any]:
    return {"chain_id": chain_id, "head_sequence": head_sequence, "head_hash": head_hash,
            "segment_bytes": segment_bytes, "time": time}


def _signed_v2(signed: dict[str, Any], interval: Any, started: Any) -> dict[str, Any]:
    return dict(signed, version=FORMAT, interval=interval, started=started)


def checkpoint_record(*, chain_id: str, head_sequence: int, head_hash: str,
                      segment_bytes: int, now: float, reason: str,
                      keys: KeyStore | None, interval: float = 60.0,
                      started: bool = False) -> AuditRecord:
    """The record to append right after ``head_sequence`` (already fdatasync'ed)."""
    time = iso_timestamp(now)
    interval = float(interval)  # a policy Duration is a float subclass JSON cannot encode
    fields: dict[str, Scalar] = {
        "edgeguard.checkpoint.head_sequence": head_sequence,
        "edgeguard.checkpoint.head_hash": head_hash,
        "edgeguard.checkpoint.segment_bytes": segment_bytes,
        "edgeguard.checkpoint.time": time,
        "edgeguard.checkpoint.reason": reason,
        "edgeguard.checkpoint.sealed": keys is not None,
        "edgeguard.checkpoint.version": FORMAT,
        "edgeguard.checkpoint.interval": interval,
        "edgeguard.checkpoint.started": started,
    }
    if keys is not None:
        signed = _signed_v2(_signed(chain_id, head_sequence, head_hash, segment_bytes, time),
                            interval, started)
        epoch, tag = keys.seal(signed)
        fields["edgeguard.checkpoint.epoch"] = epoch
        fields["edgeguard.checkpoint.key_id"] = keys.key_id
        fields["edgeguard.checkpoint.mac"] = tag
    return AuditRecord(action=CHECKPOINT, kind=EventKind.STATE, category=("host",),
                       message=f"audit checkpoint after sequence {head_sequence} ({reason})",
                       outcome=Outcome.SUCCESS, timestamp=now, fields=fields)


@dataclass(frozen=True, slots=True)
class CheckpointFailure:
    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class _Sealed:
    """The last sealed checkpoint seen: where the next one must continue from."""

    sequence: int
    epoch: int
    version: int
    time: float | None
    interval: float | None


def _seconds(stamp: Any) -> float | None:
    try:
        parsed = _dt.datetime.strptime(str(stamp), "%Y-%m-%dT%H:%M:%S.%fZ")
    except ValueError:
        return None
    return parsed.replace(tzinfo=_dt.UTC).timestamp()


@dataclass(slots=True)
class CheckpointReport:
    """What verify says about sealing besides a failure."""

    legacy: int = 0
    last_legacy: int | None = None
    first_epoch: int | None = None
    lost_epochs: list[str] = field(default_factory=list)
    time_warnings: list[str] = field(default_factory=list)
    restarts: list[str] = field(default_factory=list)


class CheckpointChecker:
    """Checks checkpoints in chain order; with K0 it checks their MACs, epochs and times.

    ``pruned_start``: the log starts after sequence 1 (retention, or a part of the log
    was given), so the first sealed epoch cannot be required to be 0 (it is reported).
    """

    def __init__(self, key: ExportedKey | None) -> None:
        self.key = key
        self.count = 0
        self.unsealed_before_enrolment = 0
        self.first_unsealed: int | None = None
        self.last_sequence: int | None = None
        self.pruned_start = False
        self.report = CheckpointReport()
        self._last: _Sealed | None = None
        self._after_gap = False
        self._epoch = 0
        self._k = bytearray(key.k0) if key is not None else bytearray()

    def check(self, seq: int, rec: dict[str, Any], prev_hash: str) -> CheckpointFailure | None:
        def cp(name: str) -> Any:
            return get_path(rec, f"edgeguard.checkpoint.{name}")

        head_seq, head_hash = cp("head_sequence"), cp("head_hash")
        if head_seq != seq - 1 or head_hash != prev_hash:
            return CheckpointFailure("checkpoint", "checkpoint does not seal the record before it")
        if self.key is not None:
            failure = self._check_sealed(seq, rec, cp)
            if failure is not None:
                return failure
        if self.unsealed_before_enrolment and self.first_unsealed is None:
            self.first_unsealed = seq
        self.count += 1
        self.last_sequence = seq
        return None

    def after_gap(self) -> None:
        """Records are missing before the next one (a collector's copy with a gap): the
        next sealed checkpoint must still have a later epoch, but may skip epochs."""
        self._after_gap = True

    def _check_sealed(self, seq: int, rec: dict[str, Any], cp: Any) -> CheckpointFailure | None:
        assert self.key is not None
        epoch, key_id, tag = cp("epoch"), cp("key_id"), cp("mac")
        if cp("sealed") is not True or not isinstance(epoch, int) or not isinstance(tag, str):
            return self._unsealed()
        if key_id != self.key.key_id:
            return CheckpointFailure("checkpoint-key", f"sealed by key {key_id}, not by the "
                                     f"enrolled key {self.key.key_id}")
        version = FORMAT if cp("version") == FORMAT else 1
        failure = self._check_epoch(seq, epoch, version, cp("started") is True)
        if failure is not None:
            return failure
        while self._epoch < epoch:
            self._k = evolve(self._k)
            self._epoch += 1
        chain_id = get_path(rec, "edgeguard.chain_id")
        signed = _signed(chain_id, cp("head_sequence"), cp("head_hash"), cp("segment_bytes"),
                         cp("time"))
        if version == FORMAT:
            signed = _signed_v2(signed, cp("interval"), cp("started"))
        signed = dict(signed, epoch=epoch, key_id=key_id)
        if mac(self._k, signed) != tag:
            later = self._later_match(signed, tag)
            detail = (f"MAC'd with the key of epoch {later}, later than its epoch {epoch}: "
                      "forged by someone holding a later key" if later is not None
                      else f"MAC does not verify with the key of epoch {epoch}")
            return CheckpointFailure("checkpoint-mac", detail)
        self._accept(seq, epoch, version, cp)
        return None

    def _check_epoch(self, seq: int, epoch: int, version: int,
                     started: bool) -> CheckpointFailure | None:
        last = self._last
        if last is not None and version < last.version:
            return CheckpointFailure("checkpoint-downgrade", f"a legacy checkpoint (no time "
                                     f"binding) after format-{last.version} ones (sequence "
                                     f"{last.sequence}): written by someone else")
        if last is not None and epoch <= last.epoch:
            return CheckpointFailure("checkpoint-epoch", f"epoch {epoch} does not follow "
                                     f"epoch {last.epoch}: a key was reused")
        if epoch - self._epoch > _MAX_EPOCH_STEP:
            return CheckpointFailure("checkpoint-epoch", f"implausible epoch {epoch}")
        if last is None and self.pruned_start:
            self.report.first_epoch = epoch
            return None
        if self._after_gap:  # records (and checkpoints) missing: only "later" can be checked
            self._after_gap = False
            return None
        return self._check_continuity(seq, epoch, version, started)

    def _check_continuity(self, seq: int, epoch: int, version: int,
                          started: bool) -> CheckpointFailure | None:
        """Every epoch from 0 on; one lost only by a crash while sealing, then named."""
        last = self._last
        expected = 0 if last is None else last.epoch + 1
        if epoch == expected:
            return None
        # The writer marks its first checkpoint after a start (format 2); legacy
        # checkpoints had no mark: one lost epoch is allowed there and reported too.
        if epoch == expected + 1 and (started or version < FORMAT):
            why = ("a crash while sealing, or a sealed checkpoint the writer could not write"
                   if started else "legacy checkpoint without restart mark: a crash while "
                   "sealing?")
            self.report.lost_epochs.append(f"epoch {expected} is missing before the checkpoint "
                                           f"at sequence {seq} ({why})")
            return None
        if last is None:
            return CheckpointFailure("checkpoint-epoch", f"the first sealed checkpoint has "
                                     f"epoch {epoch}, not 0: this chain was not sealed from "
                                     "enrolment on (sealed with a later, stolen key?)")
        return CheckpointFailure("checkpoint-epoch", f"epoch jumps from {last.epoch} to "
                                 f"{epoch}: epochs {expected}..{epoch - 1} are missing")

    def _accept(self, seq: int, epoch: int, version: int, cp: Any) -> None:
        last = self._last
        time = _seconds(cp("time"))
        interval = cp("interval")
        interval = float(interval) if isinstance(interval, int | float) and \
            not isinstance(interval, bool) and interval > 0 else None
        if version < FORMAT:
            self.report.legacy += 1
            self.report.last_legacy = seq
        elif last is not None and last.version == FORMAT:
            self._check_time(seq, epoch, last, time, started=cp("started") is True)
        self._last = _Sealed(seq, epoch, version, time, interval)

    def _check_time(self, seq: int, epoch: int, last: _Sealed, time: float | None, *,
                    started: bool) -> None:
        if time is None or last.time is None or last.interval is None:
            self.report.time_warnings.append(f"checkpoint at sequence {seq} (epoch {epoch}) "
                                             "has no readable time or interval")
            return
        gap = time - last.time
        if gap < -TIME_BACKWARDS_GRACE:
            self.report.time_warnings.append(
                f"time goes back {-gap:.0f} s from epoch {last.epoch} (sequence "
                f"{last.sequence}) to epoch {epoch} (sequence {seq})")
        elif gap > last.interval + TIME_GRACE:
            span = (f"{gap:.0f} s without a checkpoint between epoch {last.epoch} (sequence "
                    f"{last.sequence}) and epoch {epoch} (sequence {seq})")
            if started:
                self.report.restarts.append(f"{span}: the writer was stopped and restarted")
            else:
                self.report.time_warnings.append(
                    f"{span}, interval {last.interval:g} s: the writer stalled or the machine "
                    "slept, or the checkpoints were sealed later from a stolen key")

    def _unsealed(self) -> CheckpointFailure | None:
        if self._last is None:  # before enrolment: nothing to check it with
            self.unsealed_before_enrolment += 1
            return None
        return CheckpointFailure("checkpoint-unsealed", "checkpoint carries no MAC after "
                                 f"sealed ones (epoch {self._last.epoch}): the key was lost "
                                 "or removed")

    def _later_match(self, signed: dict[str, Any], tag: str) -> int | None:
        key = bytearray(self._k)
        for step in range(1, _LATER_KEYS_TRIED + 1):
            key = evolve(key)
            if mac(key, signed) == tag:
                return self._epoch + step
        return None
