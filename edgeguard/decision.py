"""Decision: a finding plus the policy gives rule, severity, mode and actions.

Every area (network, Wi-Fi, media, kiosk) proposes its findings here; this module alone
matches the policy's rules (by kind and subtype), picks the mode (:func:`effective_mode`,
the one place that does), the severity and the actions, and suppresses repeats (Zeek's
notice framework): the same finding kind and identifier within the rule's
``suppress_for`` window is a repeat, counted and marked ``suppressed`` so the caller can
summarise it, but not acted on again. :meth:`DecisionEngine.forget` ends the window of
one finding early: ``net unblock`` calls it, so a fresh scan by a host just unblocked is
acted on (blocked) again instead of being counted as a repeat of the old one. A finding
a per-rule exception covers is de-duplicated in a window of its own (keyed by the
exception's id), so it never starts or extends the window of the findings acted on:
when the exception expires or is removed, the host's next finding is acted on at once.

Per-rule exceptions (``exceptions:`` in the policy, :mod:`edgeguard.policy.exceptions`)
are honoured here too: a finding an exception in force covers is decided as usual but
carries only ``log`` and the exception's id. The engine audits each exception when it
comes into force and when it expires or is removed (:meth:`DecisionEngine.tick`).

The policy section whose ``mode`` applies is the finding type's area in the catalogue
(:mod:`edgeguard.findings`), never a string passed by the caller. The actions a decision
names are limited to those the area can carry out (the severity defaults apply to every
area; a rule's own actions are checked when the policy is loaded).
"""

from __future__ import annotations

from collections import OrderedDict

from edgeguard.audit.sink import AuditSink
from edgeguard.clock import Clock
from edgeguard.ecs import iso_timestamp
from edgeguard.events import ActionKind, AuditRecord, Decision, EventKind, Finding, Mode, Outcome
from edgeguard.findings import AREA_ACTIONS, Area, area_of, default_rule_id
from edgeguard.policy.exceptions import ExceptionBook, ExceptionChange
from edgeguard.policy.model import Policy, RuleConfig

__all__ = ["DEFAULT_SUPPRESS_FOR", "EXCEPTION_ACTIONS", "MAX_SUPPRESSION_ENTRIES",
           "DecisionEngine", "area_mode", "can_enforce", "effective_mode", "exception_record"]

#: Cap on remembered (kind, identifier) pairs; the oldest are forgotten first.
MAX_SUPPRESSION_ENTRIES = 65536
#: Suppression window (seconds) for a finding no rule matches.
DEFAULT_SUPPRESS_FOR = 600.0


def area_mode(policy: Policy, area: Area) -> Mode | None:
    """The ``mode`` set in the area's policy section, or None (inherit the global one)."""
    sections = {Area.NETWORK: policy.network.mode, Area.WIFI: policy.wifi.mode,
                Area.MEDIA: policy.media.mode, Area.KIOSK: policy.kiosk.mode}
    return sections[area]


def effective_mode(policy: Policy, area: Area | None, rule: RuleConfig | None = None, *,
                   force_monitor: bool = False) -> Mode:
    """The mode a decision in ``area`` takes: monitor when forced (replays: they never
    act), else the matched rule's ``mode``, else the area section's, else the global one.

    Every component asks this function (the daemon's decisions, the media, kiosk and
    Wi-Fi services, the nftables table's "can anything enforce", ``media replay``).
    """
    if force_monitor:
        return Mode.MONITOR
    if rule is not None and rule.mode is not None:
        return rule.mode
    section = area_mode(policy, area) if area is not None else None
    return section if section is not None else policy.mode


def can_enforce(policy: Policy, area: Area) -> bool:
    """Whether any decision in ``area`` can be in enforce mode under ``policy``."""
    if effective_mode(policy, area) is Mode.ENFORCE:
        return True
    return any(rule.mode is Mode.ENFORCE and area_of(rule.kind) is area
               for rule in policy.rules)


#: ``event.action`` of the records of exceptions coming into force, expiring, removed.
EXCEPTION_ACTIONS = {"added": "policy-exception-added",
                     "expired": "policy-exception-expired",
                     "removed": "policy-exception-removed"}


def exception_record(change: ExceptionChange) -> AuditRecord:
    """The audit record of one exception coming into force, expiring or going away."""
    exc = change.exception
    verb = {"added": "in force", "expired": "expired",
            "removed": "removed from the policy"}[change.change]
    return AuditRecord(
        action=EXCEPTION_ACTIONS[change.change], kind=EventKind.EVENT,
        category=("configuration",), event_type=("change",), outcome=Outcome.SUCCESS,
        rule_id=exc.rule,
        message=f"exception {exc.id} for {exc.address} from rule {exc.rule} {verb} "
                f"(until {exc.until.iso()}"
                f"{', beyond exception_limits by override' if exc.override_limits else ''}): "
                f"{exc.reason}",
        fields={"edgeguard.exception.id": exc.id, "edgeguard.exception.address": str(exc.address),
                "edgeguard.exception.until": iso_timestamp(float(exc.until)),
                "event.reason": exc.reason})


class DecisionEngine:
    """``force_monitor``: every decision is in monitor mode whatever the policy says
    (``edgeguard replay``), so no action is ever asked for. ``audit``: where the
    exceptions' changes are recorded (none: not recorded, e.g. a replay)."""

    def __init__(self, policy: Policy, clock: Clock, *, force_monitor: bool = False,
                 audit: AuditSink | None = None) -> None:
        self.policy = policy
        self.clock = clock
        self.force_monitor = force_monitor
        self.audit = audit
        self._last: OrderedDict[tuple[str, str, str], float] = OrderedDict()
        self.suppressed_count = 0
        self.evicted_count = 0
        self.excepted_count = 0
        self.exceptions = ExceptionBook()
        self._record(self.exceptions.update(policy.exceptions, clock.now()))

    def reload(self, policy: Policy) -> None:
        self.policy = policy
        self._record(self.exceptions.update(policy.exceptions, self.clock.now()))

    def tick(self) -> None:
        """Audit the exceptions that have expired since the last look (call it
        periodically; an expired exception is never honoured, ticked or not)."""
        self._record(self.exceptions.expire(self.clock.now()))

    def _record(self, changes: list[ExceptionChange]) -> None:
        if self.audit is None:
            return
        for change in changes:
            self.audit.write(exception_record(change))

    def forget(self, kind: str, identifier: str) -> bool:
        """End the suppression window of (kind, identifier): its next finding is new."""
        return self._last.pop(("", kind, identifier), None) is not None

    def rule_for(self, finding: Finding) -> RuleConfig | None:
        """The most specific matching rule (kind and subtype before kind alone); among
        equally specific ones the last, so a site's rule added after the shipped ones
        wins."""
        best: RuleConfig | None = None
        for rule in self.policy.rules:
            if rule.kind != finding.kind or rule.subtype not in (None, finding.subtype):
                continue
            if best is None or rule.subtype is not None or best.subtype is None:
                best = rule
        return best

    def mode_for(self, finding: Finding, rule: RuleConfig | None = None) -> Mode:
        return effective_mode(self.policy, area_of(finding.kind), rule,
                              force_monitor=self.force_monitor)

    def decide(self, finding: Finding, *, suppress: bool = True) -> Decision:
        """Match the policy. ``suppress=False`` for a proposal that is a state change to
        record every time (a media node's verdict), not a notice to de-duplicate."""
        rule = self.rule_for(finding)
        severity = rule.severity if rule and rule.severity else finding.severity
        area = area_of(finding.kind)
        if rule is not None and rule.actions is not None:
            actions = rule.actions
        else:
            actions = self.policy.severity_actions.for_severity(severity)
            if area is not None:
                actions = tuple(a for a in actions if a in AREA_ACTIONS[area]) or (
                    ActionKind.LOG,)
        rule_id = self._rule_id(finding, rule)
        excepted = self.exceptions.match(rule_id, finding, self.clock.now())
        # An excepted finding is de-duplicated in its exception's own window: it must
        # never start or extend the window the host's findings are acted on in, or the
        # first scans after the exception expires or is removed would be "repeats".
        suppressed = suppress and self._repeat(
            finding, rule, excepted.id if excepted is not None else "")
        if excepted is not None:
            self.excepted_count += 1
            actions = (ActionKind.LOG,)
        return Decision(
            finding=finding,
            rule_id=rule_id,
            severity=severity,
            mode=self.mode_for(finding, rule),
            actions=actions,
            suppressed=suppressed,
            exception=excepted.id if excepted is not None else "",
        )

    @staticmethod
    def _rule_id(finding: Finding, rule: RuleConfig | None) -> str:
        return rule.id if rule is not None else default_rule_id(finding.kind, finding.subtype)

    def _repeat(self, finding: Finding, rule: RuleConfig | None, scope: str) -> bool:
        """Whether the finding repeats one within the window in ``scope`` ("" for the
        findings acted on, an exception's id for the findings it covers)."""
        window = rule.suppress_for if rule is not None else DEFAULT_SUPPRESS_FOR
        key = (scope, finding.kind, finding.identifier)
        now = self.clock.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < window:
            self.suppressed_count += 1
            return True
        self._last[key] = now
        self._last.move_to_end(key)
        while len(self._last) > MAX_SUPPRESSION_ENTRIES:
            self._last.popitem(last=False)
            self.evicted_count += 1
        return False
