"""Checkpoint records: the chain head sealed with the forward-secure key of an epoch.

A checkpoint is an ordinary chained record (``event.action: audit-checkpoint``) whose
``edgeguard.checkpoint.*`` fields name the head it seals (the previous record's sequence
and hash), the bytes of the active segment, the time, the epoch and the key id, and
carry ``mac = HMAC(K(epoch), canonical(signed fields))``. The verifier, holding K0,
derives K(epoch) by evolving forward; epochs must strictly increase (a crash may skip
one, never repeat one). A checkpoint that only verifies with a *later* key was forged by
someone who stole the key after the fact: that is reported as such.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgeguard.audit.chain import get_path
from edgeguard.audit.keys import ExportedKey, KeyStore, evolve, mac
from edgeguard.ecs import iso_timestamp
from edgeguard.events import AuditRecord, EventKind, Outcome, Scalar

__all__ = ["CHECKPOINT", "CheckpointChecker", "checkpoint_record"]

CHECKPOINT = "audit-checkpoint"
_LATER_KEYS_TRIED = 4096
_MAX_EPOCH_STEP = 50_000_000  # ~95 years of one checkpoint a minute


def _signed(chain_id: str, head_sequence: int, head_hash: str, segment_bytes: int,
            time: str) -> dict[str, Any]:
    return {"chain_id": chain_id, "head_sequence": head_sequence, "head_hash": head_hash,
            "segment_bytes": segment_bytes, "time": time}


def checkpoint_record(*, chain_id: str, head_sequence: int, head_hash: str,
                      segment_bytes: int, now: float, reason: str,
                      keys: KeyStore | None) -> AuditRecord:
    """The record to append right after ``head_sequence`` (already fdatasync'ed)."""
    time = iso_timestamp(now)
    fields: dict[str, Scalar] = {
        "edgeguard.checkpoint.head_sequence": head_sequence,
        "edgeguard.checkpoint.head_hash": head_hash,
        "edgeguard.checkpoint.segment_bytes": segment_bytes,
        "edgeguard.checkpoint.time": time,
        "edgeguard.checkpoint.reason": reason,
        "edgeguard.checkpoint.sealed": keys is not None,
    }
    if keys is not None:
        epoch, tag = keys.seal(_signed(chain_id, head_sequence, head_hash, segment_bytes, time))
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


class CheckpointChecker:
    """Checks checkpoints in chain order; with K0 it checks their MACs too."""

    def __init__(self, key: ExportedKey | None) -> None:
        self.key = key
        self.count = 0
        self.unsealed_before_enrolment = 0
        self.first_unsealed: int | None = None
        self.last_sequence: int | None = None
        self._last_epoch = -1
        self._epoch = 0
        self._k = bytearray(key.k0) if key is not None else bytearray()

    def check(self, seq: int, rec: dict[str, Any], prev_hash: str) -> CheckpointFailure | None:
        def cp(name: str) -> Any:
            return get_path(rec, f"edgeguard.checkpoint.{name}")

        head_seq, head_hash = cp("head_sequence"), cp("head_hash")
        if head_seq != seq - 1 or head_hash != prev_hash:
            return CheckpointFailure("checkpoint", "checkpoint does not seal the record before it")
        if self.key is not None:
            failure = self._check_mac(rec, cp)
            if failure is not None:
                return failure
        if self.unsealed_before_enrolment and self.first_unsealed is None:
            self.first_unsealed = seq
        self.count += 1
        self.last_sequence = seq
        return None

    def _check_mac(self, rec: dict[str, Any], cp: Any) -> CheckpointFailure | None:
        assert self.key is not None
        epoch, key_id, tag = cp("epoch"), cp("key_id"), cp("mac")
        if cp("sealed") is not True or not isinstance(epoch, int) or not isinstance(tag, str):
            return self._unsealed()
        if key_id != self.key.key_id:
            return CheckpointFailure("checkpoint-key", f"sealed by key {key_id}, not by the "
                                     f"enrolled key {self.key.key_id}")
        if epoch <= self._last_epoch:
            return CheckpointFailure("checkpoint-epoch", f"epoch {epoch} does not follow "
                                     f"epoch {self._last_epoch}: a key was reused")
        if epoch - self._epoch > _MAX_EPOCH_STEP:
            return CheckpointFailure("checkpoint-epoch", f"implausible epoch {epoch}")
        while self._epoch < epoch:
            self._k = evolve(self._k)
            self._epoch += 1
        chain_id = get_path(rec, "edgeguard.chain_id")
        signed = dict(_signed(chain_id, cp("head_sequence"), cp("head_hash"),
                              cp("segment_bytes"), cp("time")), epoch=epoch, key_id=key_id)
        if mac(self._k, signed) != tag:
            later = self._later_match(signed, tag)
            detail = (f"MAC'd with the key of epoch {later}, later than its epoch {epoch}: "
                      "forged by someone holding a later key" if later is not None
                      else f"MAC does not verify with the key of epoch {epoch}")
            return CheckpointFailure("checkpoint-mac", detail)
        self._last_epoch = epoch
        return None

    def _unsealed(self) -> CheckpointFailure | None:
        if self._last_epoch < 0:  # before enrolment: nothing to check it with
            self.unsealed_before_enrolment += 1
            return None
        return CheckpointFailure("checkpoint-unsealed", "checkpoint carries no MAC after "
                                 f"sealed ones (epoch {self._last_epoch}): the key was lost "
                                 "or removed")

    def _later_match(self, signed: dict[str, Any], tag: str) -> int | None:
        key = bytearray(self._k)
        for step in range(1, _LATER_KEYS_TRIED + 1):
            key = evolve(key)
            if mac(key, signed) == tag:
                return self._epoch + step
        return None
