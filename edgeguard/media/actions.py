"""The actions media offers the pipeline (``read-only``, ``deauthorize``), so a rule
such as ``{kind: usb, subtype: not-encrypted, actions: [log, deauthorize]}`` is carried
out, as the finding catalogue promises, instead of failing with "no component provides".

Both act on the device the finding's :class:`~edgeguard.media.evidence.MediaEvidence`
names, read the state back, and are idempotent. A verdict the engine sets later (a
re-plug, a reload) may loosen ``read-only`` again; de-authorisation holds until re-plug.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from edgeguard.actions.base import Action
from edgeguard.events import ActionKind, ActionResult, Decision
from edgeguard.media.block import BlockLayer
from edgeguard.media.evidence import MediaEvidence

__all__ = ["MediaDeauthorize", "MediaReadOnly", "media_actions"]


def _media_evidence(decision: Decision) -> MediaEvidence | None:
    evidence = decision.finding.evidence
    return evidence if isinstance(evidence, MediaEvidence) else None


@dataclass(slots=True)
class MediaReadOnly:
    block: BlockLayer
    kind: ActionKind = ActionKind.READ_ONLY

    def apply(self, decision: Decision) -> ActionResult:
        evidence = _media_evidence(decision)
        if evidence is None:
            return ActionResult(self.kind, ok=False, changed=False,
                                detail=f"not a media finding ({decision.finding.kind})")
        name = evidence.assessment.device.name
        changed = self.block.set_read_only(name, True)
        if not self.block.read_only(name):
            return ActionResult(self.kind, ok=False, changed=changed,
                                detail=f"kernel reports /dev/{name} writable")
        return ActionResult(self.kind, ok=True, changed=changed, detail=f"/dev/{name} read-only")


@dataclass(slots=True)
class MediaDeauthorize:
    block: BlockLayer
    kind: ActionKind = ActionKind.DEAUTHORIZE

    def apply(self, decision: Decision) -> ActionResult:
        evidence = _media_evidence(decision)
        if evidence is None:
            return ActionResult(self.kind, ok=False, changed=False,
                                detail=f"not a media finding ({decision.finding.kind})")
        syspath = evidence.assessment.device.usb_syspath
        if syspath is None:
            return ActionResult(self.kind, ok=False, changed=False,
                                detail="no USB interface to de-authorise")
        changed = self.block.deauthorize(syspath)
        return ActionResult(self.kind, ok=True, changed=changed, detail=f"de-authorised {syspath}")


def media_actions(block: BlockLayer) -> Mapping[ActionKind, Action]:
    return {ActionKind.READ_ONLY: MediaReadOnly(block),
            ActionKind.DEAUTHORIZE: MediaDeauthorize(block)}
