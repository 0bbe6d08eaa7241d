"""The whole policy: global mode, severity -> actions, rules, and one section per area."""

from __future__ import annotations

from dataclasses import dataclass

from edgeguard.audit.config import AuditConfig
from edgeguard.clock import SystemClock
from edgeguard.events import ActionKind, Mode, Severity
from edgeguard.findings import FINDING_TYPES, default_rule_id, suggest
from edgeguard.kiosk.config import KioskConfig
from edgeguard.media.config import MediaConfig
from edgeguard.net.config import NetworkConfig
from edgeguard.policy.control import ControlConfig
from edgeguard.policy.exceptions import ExceptionLimits, RuleException
from edgeguard.policy.types import Duration, setting
from edgeguard.wifi.config import WifiConfig

__all__ = ["DaemonConfig", "Policy", "RuleConfig", "SeverityActions"]


@dataclass(frozen=True, slots=True)
class SeverityActions:
    """What each severity does when a rule does not say (LT2 §11 breach levels)."""

    minor: tuple[ActionKind, ...] = setting((ActionKind.LOG,), "Actions for minor findings.")
    moderate: tuple[ActionKind, ...] = setting((ActionKind.LOG,), "Actions for moderate ones.")
    severe: tuple[ActionKind, ...] = setting((ActionKind.LOG, ActionKind.BLOCK),
                                             "Actions for severe ones.")

    def for_severity(self, severity: Severity) -> tuple[ActionKind, ...]:
        actions: tuple[ActionKind, ...] = getattr(self, severity.value)
        return actions


@dataclass(frozen=True, slots=True)
class RuleConfig:
    """A rule matching findings by kind (and optionally subtype)."""

    id: str = setting(None, "Rule id, written to the audit record as rule.id.")
    kind: str = setting(None, "Finding kind: scan, bittorrent, arp-spoof, flood, usb-storage...")
    subtype: str | None = setting(None, "Finding subtype; any when unset.")
    severity: Severity | None = setting(None, "Override the detector's severity.")
    mode: Mode | None = setting(None, "monitor | enforce for this rule.")
    actions: tuple[ActionKind, ...] | None = setting(None, "Override the severity's actions.")
    suppress_for: Duration = setting(Duration(600), "Repeats of the same finding within this "
                                     "window are counted, not re-acted.", unit="duration")

    def __post_init__(self) -> None:
        if self.id is None or self.kind is None:
            raise ValueError("a rule needs 'id' and 'kind'")


@dataclass(frozen=True, slots=True)
class DaemonConfig:
    control_socket: str = setting("/run/edgeguard/control.sock",
                                  "The control socket (0660 root:admin_group).")
    state_directory: str = setting("/var/lib/edgeguard", "Persistent state (allows, blocks).")
    host_name: str | None = setting(None, "host.name in records; the system's name if unset.")
    admin_group: str | None = setting(
        "adm", "Members may run read-only control commands (status, lists); changing "
        "commands need root. Unset: root only.")
    drop_capabilities: bool = setting(
        True, "After start, keep only the capabilities actions need and set no_new_privs.")
    control: ControlConfig = setting(None, "Limits of the control socket (read at start).",
                                     factory=ControlConfig)


@dataclass(frozen=True, slots=True)
class Policy:
    version: int = setting(1, "Policy format version.", minimum=1, maximum=1)
    mode: Mode = setting(Mode.MONITOR, "monitor: decide and audit only; enforce: also act.")
    severity_actions: SeverityActions = setting(SeverityActions(), "Severity -> actions.")
    rules: tuple[RuleConfig, ...] = setting(
        (), "Per-finding rules, merged by id across layers. The most specific match wins "
        "(kind and subtype before kind alone), then the one defined last.")
    exceptions: tuple[RuleException, ...] = setting(
        (), "Per-rule exceptions with an expiry and a reason (`edgeguard net allow` writes "
        "them as drop-ins): a covered finding is recorded but only logged. Merged by id "
        "across layers; each is audited when it comes into force and when it expires.")
    exception_limits: ExceptionLimits = setting(
        None, "How wide and how long an exception may be (checked when the policy is "
        "loaded and by `edgeguard net allow`).", factory=ExceptionLimits)
    daemon: DaemonConfig = setting(None, "The daemon itself.", factory=DaemonConfig)
    media: MediaConfig = setting(None, "USB storage (LT2 §7, §3.2).", factory=MediaConfig)
    network: NetworkConfig = setting(None, "Network watch and enforcement (LT2 §2.2, §11.3).",
                                     factory=NetworkConfig)
    wifi: WifiConfig = setting(None, "Wi-Fi floor and VPN (Wigston; LT2 §5).",
                               factory=WifiConfig)
    audit: AuditConfig = setting(None, "The audit trail (LT2 §9, §2.4).", factory=AuditConfig)
    kiosk: KioskConfig = setting(None, "Kiosk lockdown: USB device classes, Bluetooth.",
                                 factory=KioskConfig)

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for index, rule in enumerate(self.rules):
            if rule.id in seen:
                raise ValueError(f"rules[{index}]: duplicate rule id {rule.id!r}")
            seen.add(rule.id)
        known = self.rule_ids()
        ids: set[str] = set()
        now = SystemClock().now()  # an expiry is capped relative to the load
        for index, exc in enumerate(self.exceptions):
            if exc.id in ids:
                raise ValueError(f"exceptions[{index}]: duplicate exception id {exc.id!r}")
            ids.add(exc.id)
            if exc.rule not in known:
                raise ValueError(f"exceptions[{index}]: no rule {exc.rule!r}"
                                 f"{suggest(exc.rule, sorted(known))}")
            problem = self.exception_limits.problem(exc, now)
            if problem is not None:
                raise ValueError(f"exceptions[{index}]: {problem}")

    def rule_ids(self) -> frozenset[str]:
        """Every rule id a finding can be decided under: the policy's rules and the
        catalogue's default rules (what an exception may name)."""
        return frozenset({rule.id for rule in self.rules}
                         | {default_rule_id(f.kind, f.subtype) for f in FINDING_TYPES})
