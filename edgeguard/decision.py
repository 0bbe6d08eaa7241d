"""Decision: a finding plus the policy gives severity, mode and actions.

Repeat suppression lives here, in one place (Zeek's notice framework): the same
finding kind and identifier within the rule's ``suppress_for`` window is a repeat. A
repeat is counted and marked ``suppressed`` so the caller can summarise it, but it is
not acted on again.
"""

from __future__ import annotations

from collections import OrderedDict

from edgeguard.clock import Clock
from edgeguard.events import Decision, Finding, Mode
from edgeguard.policy.model import Policy, RuleConfig

__all__ = ["MAX_SUPPRESSION_ENTRIES", "DecisionEngine"]

#: Cap on remembered (kind, identifier) pairs; the oldest are forgotten first.
MAX_SUPPRESSION_ENTRIES = 65536


class DecisionEngine:
    def __init__(self, policy: Policy, clock: Clock, section_modes: dict[str, Mode] | None = None):
        self.policy = policy
        self.clock = clock
        self._section_modes = section_modes or {}
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

    def mode_for(self, finding: Finding, rule: RuleConfig | None, section: str | None) -> Mode:
        if rule is not None and rule.mode is not None:
            return rule.mode
        if section is not None:
            section_mode: Mode | None = getattr(getattr(self.policy, section), "mode", None)
            if section_mode is not None:
                return section_mode
        return self.policy.mode

    def decide(self, finding: Finding, section: str | None = None) -> Decision:
        """``section`` names the policy section whose ``mode`` applies (media, network...)."""
        rule = self.rule_for(finding)
        severity = rule.severity if rule and rule.severity else finding.severity
        if rule is not None and rule.actions is not None:
            actions = rule.actions
        else:
            actions = self.policy.severity_actions.for_severity(severity)
        window = rule.suppress_for if rule is not None else 600.0
        key = (finding.kind, finding.identifier)
        now = self.clock.monotonic()
        last = self._last.get(key)
        suppressed = last is not None and now - last < window
        if suppressed:
            self.suppressed_count += 1
        else:
            self._last[key] = now
            self._last.move_to_end(key)
            while len(self._last) > MAX_SUPPRESSION_ENTRIES:
                self._last.popitem(last=False)
                self.evicted_count += 1
        return Decision(
            finding=finding,
            rule_id=rule.id if rule is not None else f"default-{finding.kind}",
            severity=severity,
            mode=self.mode_for(finding, rule, section),
            actions=actions,
            suppressed=suppressed,
        )
