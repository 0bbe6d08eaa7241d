"""Decision: a finding plus the policy gives rule, severity, mode and actions.

Every area (network, Wi-Fi, media, kiosk) proposes its findings here; this module alone
matches the policy's rules (by kind and subtype), picks the mode (:func:`effective_mode`,
the one place that does), the severity and the actions, and suppresses repeats (Zeek's
notice framework): the same finding kind and identifier within the rule's
``suppress_for`` window is a repeat, counted and marked ``suppressed`` so the caller can
summarise it, but not acted on again.

The policy section whose ``mode`` applies is the finding type's area in the catalogue
(:mod:`edgeguard.findings`), never a string passed by the caller. The actions a decision
names are limited to those the area can carry out (the severity defaults apply to every
area; a rule's own actions are checked when the policy is loaded).
"""

from __future__ import annotations

from collections import OrderedDict

from edgeguard.clock import Clock
from edgeguard.events import ActionKind, Decision, Finding, Mode
from edgeguard.findings import AREA_ACTIONS, Area, area_of, default_rule_id
from edgeguard.policy.model import Policy, RuleConfig

__all__ = ["DEFAULT_SUPPRESS_FOR", "MAX_SUPPRESSION_ENTRIES", "DecisionEngine", "area_mode",
           "can_enforce", "effective_mode"]

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


class DecisionEngine:
    """``force_monitor``: every decision is in monitor mode whatever the policy says
    (``edgeguard replay``), so no action is ever asked for."""

    def __init__(self, policy: Policy, clock: Clock, *, force_monitor: bool = False) -> None:
        self.policy = policy
        self.clock = clock
        self.force_monitor = force_monitor
        self._last: OrderedDict[tuple[str, str], float] = OrderedDict()
        self.suppressed_count = 0
        self.evicted_count = 0

    def reload(self, policy: Policy) -> None:
        self.policy = policy

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
        suppressed = suppress and self._repeat(finding, rule)
        return Decision(
            finding=finding,
            rule_id=self._rule_id(finding, rule),
            severity=severity,
            mode=self.mode_for(finding, rule),
            actions=actions,
            suppressed=suppressed,
        )

    @staticmethod
    def _rule_id(finding: Finding, rule: RuleConfig | None) -> str:
        return rule.id if rule is not None else default_rule_id(finding.kind, finding.subtype)

    def _repeat(self, finding: Finding, rule: RuleConfig | None) -> bool:
        window = rule.suppress_for if rule is not None else DEFAULT_SUPPRESS_FOR
        key = (finding.kind, finding.identifier)
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
