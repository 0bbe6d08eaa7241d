"""The media engine: uevents in, kernel flags set, audit records out.

One engine serves the live udev monitor and the replay backend alike; only the
:class:`~edgeguard.media.block.BlockLayer` differs (the kernel, or a simulated one).
Per event it re-judges the whole disk the node belongs to (a partition arriving can
change the disk's verdict), tightens first (sets read-only), then loosens (disk before
partitions, since a partition is writable only when its disk is), and writes one record
per node whose verdict changed, through :func:`~edgeguard.actions.base.audited` so the
record says *failure* unless the kernel confirmed the state.

State is bounded (``media.max_devices``); a device over the cap is left as the udev
rule made it (read-only) and counted as dropped. Malformed uevents are counted and
skipped; a malformed event about a known node makes that node read-only again.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from edgeguard.actions.base import audited
from edgeguard.audit.sink import AuditSink
from edgeguard.clock import Clock
from edgeguard.ecs import finding_record
from edgeguard.events import ActionKind, ActionResult, Decider, Decision, Finding, Mode
from edgeguard.findings import default_rule_id
from edgeguard.media.allow import AllowStore
from edgeguard.media.block import BlockLayer, DeviceGone
from edgeguard.media.catalogue import HardwareCatalogue
from edgeguard.media.classify import Assessment, TrustMatch, Verdict, evaluate
from edgeguard.media.config import MediaConfig
from edgeguard.media.evidence import (
    not_encrypted_finding,
    removal_record,
    verdict_finding,
    verdict_record,
)
from edgeguard.media.exempt import ExemptWatch
from edgeguard.media.malformed import (
    MalformedDevice,
    escape,
    malformed_device,
    malformed_finding,
    malformed_record,
)
from edgeguard.media.mtp import MtpInterface, mtp_finding, parse_mtp
from edgeguard.media.uevent import Action, BlockDevice, MalformedUevent, Uevent, parse_uevent

__all__ = ["MediaCounters", "MediaEngine"]


@dataclass(slots=True)
class MediaCounters:
    events: int = 0
    malformed: int = 0
    ignored: int = 0  # well-formed but not a removable medium (internal disks)
    exempt: int = 0  # USB, but exempted by the administrator's udev rule (a USB system disk)
    dropped: int = 0  # over media.max_devices: left read-only, untracked
    vanished: int = 0  # removed before we could act
    action_failures: int = 0
    reapplied: int = 0  # same verdict, kernel state had to be restored (udev change)
    mtp: int = 0  # phone/camera (MTP/PTP) interfaces seen, blocked or allowed by udev

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


@dataclass(slots=True)
class _Node:
    device: BlockDevice
    assessment: Assessment | None = None
    findings: set[str] = field(default_factory=set)


#: ``mount(device) -> None`` / ``unmount(device) -> None`` hooks (optional mounting).
MountHook = Callable[[BlockDevice], None]


class MediaEngine:
    """``mode`` is the media area's mode, used as is when no ``decisions`` engine is given
    (tests); the daemon passes its decision engine, which matches ``rules:`` on each
    verdict, and ``submit`` (the pipeline) for the ``not-encrypted`` alert."""

    def __init__(self, *, config: MediaConfig, mode: Mode, catalogue: HardwareCatalogue,
                 allows: AllowStore, block: BlockLayer, audit: AuditSink, clock: Clock,
                 mount: MountHook | None = None, unmount: MountHook | None = None,
                 revoke: MountHook | None = None, decisions: Decider | None = None,
                 submit: Callable[[Finding], Decision] | None = None) -> None:
        self.config = config
        self.mode = mode
        self.decisions = decisions
        self._submit = submit
        self.catalogue = catalogue
        self.allows = allows
        self.block = block
        self.audit = audit
        self.clock = clock
        self._mount = mount
        self._unmount = unmount
        self._revoke = revoke
        self.counters = MediaCounters()
        self.exempt_watch = ExemptWatch(config.max_devices)
        self._nodes: OrderedDict[str, _Node] = OrderedDict()
        self._malformed: OrderedDict[str, MalformedDevice] = OrderedDict()

    # -- input -------------------------------------------------------------------------
    def handle_properties(self, props: object) -> None:
        """Parse and handle one uevent; malformed input is counted and skipped."""
        self.counters.events += 1
        if isinstance(props, Mapping) and props.get("SUBSYSTEM") == "usb":
            mtp = parse_mtp(props)  # the only USB events the source passes on
            if mtp is not None:
                self.counters.mtp += 1
                self._report(mtp_finding(mtp, self.clock.now(), self._mtp_still_open(mtp)))
            return
        try:
            event = parse_uevent(props)
        except MalformedUevent as exc:
            self.counters.malformed += 1
            self._distrust(props)
            self._refused(props, str(exc))
            return
        self.handle(event)

    def _mtp_still_open(self, mtp: MtpInterface) -> str | None:
        """Why an interface the rule was to de-authorise is not (read back), or None."""
        if mtp.allowed:
            return None
        try:
            if not self.block.authorized(mtp.syspath):
                return None
        except (OSError, ValueError) as exc:
            return f"authorized not readable: {exc}"
        return f"{mtp.syspath}/authorized still reads 1"

    def handle(self, event: Uevent) -> None:
        dev = event.device
        if event.action is not Action.REMOVE and (dev.protected or dev.exempt):
            for finding in self.exempt_watch.observe(dev, self.clock.now()):
                self._report(finding)
        elif event.action is Action.REMOVE:
            self.exempt_watch.forget(dev.name)
        if not dev.protected or dev.exempt:
            if dev.exempt:
                self.counters.exempt += 1
            else:
                self.counters.ignored += 1
            if dev.name in self._nodes:  # e.g. a loop device detached: no longer a stick
                self._remove(dev.name)
            return
        if event.action is Action.REMOVE:
            self._remove(dev.name)
            return
        if dev.name not in self._nodes and len(self._nodes) >= self.config.max_devices:
            self.counters.dropped += 1
            return
        node = self._nodes.get(dev.name)
        if node is None:
            self._nodes[dev.name] = _Node(dev)
        else:
            node.device = dev
        self._judge(dev.disk, force=True)  # a uevent means udev may have re-set the flag

    def reconfigure(self, config: MediaConfig, mode: Mode,
                    catalogue: HardwareCatalogue | None = None) -> None:
        self.config = config
        self.mode = mode
        if catalogue is not None:
            self.catalogue = catalogue
        self.reevaluate_all()

    def reevaluate_all(self) -> None:
        for disk in sorted({n.device.disk for n in self._nodes.values()}):
            self._judge(disk, force=False)

    def expire_allows(self) -> int:
        """Drop lapsed allows and re-judge the devices they covered."""
        gone = self.allows.prune()
        if gone:
            self.reevaluate_all()
        return len(gone)

    # -- queries -----------------------------------------------------------------------
    def malformed_devices(self) -> Iterator[MalformedDevice]:
        """USB storage devices whose uevents were refused, as far as they are known."""
        yield from self._malformed.values()

    def devices(self) -> Iterator[Assessment]:
        for node in self._nodes.values():
            if node.assessment is not None:
                yield node.assessment

    def find(self, name: str) -> BlockDevice | None:
        name = name.removeprefix("/dev/")
        node = self._nodes.get(name)
        return node.device if node is not None else None

    def group(self, disk: str) -> tuple[BlockDevice, list[BlockDevice]]:
        """The disk (or a stand-in partition when the disk is unknown) and its partitions."""
        parts = [n.device for n in self._nodes.values()
                 if n.device.parent == disk]
        head = self._nodes.get(disk)
        if head is not None:
            return head.device, parts
        return parts[0], parts[1:]

    # -- internals ---------------------------------------------------------------------
    def _refused(self, props: object, reason: str) -> None:
        """Audit a refused USB storage uevent once per device, and list it until removed."""
        if isinstance(props, Mapping) and props.get("ACTION") == "remove":
            self._malformed.pop(escape(props.get("DEVPATH", "")), None)
            return
        device = malformed_device(props, reason, self.clock.now())
        if device is None or device.key in self._malformed:
            return
        if len(self._malformed) >= self.config.max_devices:
            self.counters.dropped += 1
            return
        self._malformed[device.key] = device
        self.audit.write(malformed_record(device, self._decide(malformed_finding(device))))

    def _distrust(self, props: object) -> None:
        """A malformed event about a node we track: make it read-only again (fail closed)."""
        devpath = props.get("DEVPATH") if isinstance(props, Mapping) else None
        name = devpath.rsplit("/", 1)[-1] if isinstance(devpath, str) else None
        node = self._nodes.get(name) if name else None
        if node is None or node.assessment is None or not node.assessment.verdict.writable:
            return
        assessment = dataclasses.replace(
            node.assessment, verdict=Verdict.READ_ONLY, allow=None, trust=TrustMatch(),
            reason="malformed uevent for this device; read-only until it is seen again")
        self._apply([assessment], force=True)

    def _remove(self, name: str) -> None:
        for key in [k for k, m in self._malformed.items() if k.rsplit("/", 1)[-1] == name]:
            del self._malformed[key]
        node = self._nodes.pop(name, None)
        if node is None:
            return
        for child in [n for n, v in self._nodes.items() if v.device.parent == name]:
            self._remove(child)
        if node.assessment is not None:
            if self._unmount is not None:
                self._unmount(node.device)
            self.audit.write(removal_record(node.assessment))
        remaining = [n for n in self._nodes.values() if n.device.disk == node.device.disk]
        if remaining:
            self._judge(node.device.disk, force=False)

    def _judge(self, disk: str, force: bool) -> None:
        members = [n for n in self._nodes.values() if n.device.disk == disk]
        if not members:
            return
        head, parts = self.group(disk)
        allow = self.allows.active(head.identity)
        self._apply(evaluate(head, parts, self.config, self.catalogue, allow), force)

    def _report(self, finding: Finding) -> None:
        """An alert-style finding (exempt device, not-encrypted): through the pipeline
        when there is one (rules, mode, repeat suppression), else recorded directly."""
        if self._submit is not None:
            self._submit(finding)
        else:
            self.audit.write(finding_record(finding, action=f"usb-{finding.subtype}"))

    def _decide(self, finding: Finding) -> Decision:
        """What the policy says about a node's verdict (a state change recorded every
        time, so never suppressed): rule id and mode."""
        if self.decisions is not None:
            return self.decisions.decide(finding, suppress=False)
        return Decision(finding, default_rule_id(finding.kind, finding.subtype),
                        finding.severity, self.mode, ())

    def _apply(self, assessments: list[Assessment], force: bool) -> None:
        # Tighten before loosening; loosen the disk before its partitions.
        ordered = ([a for a in assessments if not a.verdict.writable]
                   + [a for a in assessments if a.verdict.writable])
        for assessment in ordered:
            node = self._nodes.get(assessment.device.name)
            if node is None:
                continue
            previous = node.assessment
            changed = previous is None or (previous.verdict, previous.reason, previous.allow) != (
                assessment.verdict, assessment.reason, assessment.allow)
            node.assessment = assessment
            decision = self._decide(verdict_finding(assessment, self.clock.now()))
            if changed or force:
                self._act(node, assessment, decision, audit=changed)
            if (self._revoke is not None and previous is not None and previous.verdict.writable
                    and not assessment.verdict.writable and decision.enforcing):
                self._revoke(assessment.device)

    def _enforce(self, assessment: Assessment) -> ActionResult:
        """Make the kernel match one verdict and read it back."""
        dev = assessment.device
        want_ro = not assessment.verdict.writable
        changed = self.block.set_read_only(dev.name, want_ro)
        detail = ""
        if assessment.verdict is Verdict.BLOCKED:
            if dev.usb_syspath is None:
                return ActionResult(ActionKind.DEAUTHORIZE, ok=False, changed=changed,
                                    detail="no USB interface to de-authorise; left read-only")
            changed = self.block.deauthorize(dev.usb_syspath) or changed
            detail = f"de-authorised {dev.usb_syspath}"
        effective_ro = self.block.read_only(dev.name)
        if effective_ro != want_ro:
            return ActionResult(ActionKind.READ_ONLY, ok=False, changed=changed,
                                detail=f"kernel reports ro={int(effective_ro)}")
        return ActionResult(ActionKind.READ_ONLY, ok=True, changed=changed, detail=detail)

    def _observe(self, assessment: Assessment) -> ActionResult:
        """Monitor mode: change nothing; the udev rule's read-only flag stays."""
        self.block.read_only(assessment.device.name)
        return ActionResult(ActionKind.LOG, ok=True, changed=False,
                            detail="monitor mode: kernel state left as the udev rule set it")

    def _act(self, node: _Node, assessment: Assessment, decision: Decision,
             audit: bool) -> None:
        enforce = decision.enforcing
        step = self._enforce if enforce else self._observe

        def act() -> ActionResult:
            try:
                return step(assessment)
            except DeviceGone as exc:
                self.counters.vanished += 1
                return ActionResult(ActionKind.READ_ONLY, ok=False,
                                    detail=f"device vanished before acting: {exc}")

        if not audit:  # same verdict re-asserted (a udev change event reset the flag)
            result = act()
            if result.ok:
                self.counters.reapplied += int(result.changed)
                return
            if "vanished" in result.detail:
                return
        # volume.writable states what the node is once the action succeeded; a failed
        # action is on record as event.outcome failure with error.message.
        writable = assessment.verdict.writable and enforce
        if not enforce:
            try:
                writable = not self.block.read_only(assessment.device.name)
            except OSError:
                writable = False
        result = audited(self.audit, verdict_record(assessment, decision, writable), act)
        if not result.ok:
            self.counters.action_failures += 1
        self._after(node, assessment, result.ok, decision)

    def _after(self, node: _Node, assessment: Assessment, ok: bool,
               decision: Decision) -> None:
        dev = assessment.device
        head = dev.devtype == "disk" or dev.parent not in self._nodes
        if (assessment.verdict is Verdict.NOT_ENCRYPTED and head
                and "not-encrypted" not in node.findings):
            node.findings.add("not-encrypted")
            self._report(not_encrypted_finding(assessment, self.clock.now()))
        if (ok and self._mount is not None and decision.enforcing
                and assessment.verdict in (Verdict.READ_ONLY, Verdict.NOT_ENCRYPTED)):
            self._mount(dev)
