"""Per-rule exceptions: "do not act on rule R for host H until T, because ...".

Unlike ``network.allowlist`` (never reported, never blocked, for ever), an exception is
narrow and temporary: it names one rule, one host or network, an expiry and a reason.
A finding the exception covers is still decided and recorded (``edgeguard.exception.*``
in its alert), but only logged: no block, no flow drop, no rate limit. The decision
engine (:mod:`edgeguard.decision`) honours them and audits each one when it comes into
force and when it expires or is removed (:class:`ExceptionBook`).

Exceptions live in the top-level ``exceptions:`` list of the policy; entries merge by
``id`` across layers like ``rules``, so ``edgeguard net allow`` adds one as its own
drop-in under ``/etc/edgeguard/policy.d/`` without touching the rest.

An exception is capped (:class:`ExceptionLimits`, the policy's ``exception_limits``):
no network wider than an IPv4 /16 or an IPv6 /48 and no expiry more than 90 days
ahead, by default, unless the entry says ``override_limits: true`` (what
``edgeguard net allow --force`` writes). The loader refuses an entry beyond them at its
file and line, whoever wrote it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from edgeguard.events import Finding
from edgeguard.policy.types import Duration, IPNetwork, Timestamp, setting

__all__ = ["ExceptionBook", "ExceptionChange", "ExceptionLimits", "RuleException"]


@dataclass(frozen=True, slots=True)
class RuleException:
    """One exception: findings of rule ``rule`` whose source is in ``address`` are only
    logged, not acted on, until ``until``."""

    id: str = setting(None, "Exception id, unique; layers merge exceptions by id.")
    rule: str = setting(None, "The rule (rules[].id, or a default rule id such as "
                        "default-scan) the exception applies to.")
    address: IPNetwork = setting(None, "The host (10.0.0.7) or network (10.0.0.0/24) whose "
                                 "findings of that rule are only logged.")
    until: Timestamp = setting(None, "When the exception expires, ISO 8601 with a zone "
                               "(2026-12-14T19:00:00Z); it is audited when it does.")
    reason: str = setting(None, "Why it was made (audited, shown by `edgeguard net allow`).")
    override_limits: bool = setting(
        False, "Allow a network wider or an expiry further ahead than `exception_limits` "
        "(written by `edgeguard net allow --force`; say why in the reason).")

    def __post_init__(self) -> None:
        if None in (self.id, self.rule, self.address, self.until, self.reason):
            raise ValueError("an exception needs 'id', 'rule', 'address', 'until' and "
                             "'reason'")

    def covers(self, rule_id: str, finding: Finding) -> bool:
        """Whether the exception names ``rule_id`` and the finding's source address."""
        if rule_id != self.rule or finding.source is None or finding.source.ip is None:
            return False
        try:
            ip = ipaddress.ip_address(finding.source.ip)
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return ip.version == self.address.version and ip in self.address


@dataclass(frozen=True, slots=True)
class ExceptionLimits:
    """How wide and how long a per-rule exception may be (an entry with
    `override_limits: true` may go beyond them)."""

    widest_ipv4_prefix: int = setting(
        16, "The widest IPv4 network an exception may name (prefix length; /16 = 65536 "
        "hosts).", minimum=0, maximum=32)
    widest_ipv6_prefix: int = setting(
        48, "The widest IPv6 network an exception may name (prefix length).",
        minimum=0, maximum=128)
    longest: Duration = setting(
        Duration(90 * 86400), "How far ahead of now an exception's `until` may be.",
        unit="duration", minimum=0)

    def problem(self, exc: RuleException, now: float) -> str | None:
        """Why ``exc`` goes beyond the limits at ``now`` (None: it does not, or it says
        ``override_limits``)."""
        if exc.override_limits:
            return None
        return self.network_problem(exc.address) or self.duration_problem(
            float(exc.until) - now)

    def network_problem(self, address: IPNetwork) -> str | None:
        widest = self.widest_ipv4_prefix if address.version == 4 else self.widest_ipv6_prefix
        if address.prefixlen < widest:
            return (f"{address} is wider than /{widest} (exception_limits."
                    f"widest_ipv{address.version}_prefix); name a narrower network, or "
                    "set override_limits: true (net allow --force) if it must be")
        return None

    def duration_problem(self, seconds: float) -> str | None:
        if seconds > self.longest:
            return (f"expires {seconds / 86400:.1f} days from now, more than "
                    f"exception_limits.longest ({self.longest / 86400:g} days); shorten it, "
                    "or set override_limits: true (net allow --force) if it must be")
        return None


@dataclass(frozen=True, slots=True)
class ExceptionChange:
    """An exception that came into force (``added``), expired, or was removed from the
    policy before its expiry (``removed``)."""

    exception: RuleException
    change: str  # "added" | "expired" | "removed"


class ExceptionBook:
    """The exceptions in force, by id, with what changed since the last look."""

    def __init__(self) -> None:
        self._active: dict[str, RuleException] = {}
        self._expired: set[str] = set()

    def update(self, exceptions: Iterable[RuleException], now: float) -> list[ExceptionChange]:
        """Take the policy's exceptions (a load or reload); return what changed. An
        exception already past its expiry when loaded is reported expired once, never
        added."""
        wanted = {e.id: e for e in exceptions}
        changes = [ExceptionChange(old, "removed") for key, old in self._active.items()
                   if wanted.get(key) != old]
        self._active = {k: v for k, v in self._active.items() if wanted.get(k) == v}
        self._expired &= set(wanted)
        for key, exc in wanted.items():
            if key in self._active:
                continue
            if exc.until <= now:
                if key not in self._expired:
                    self._expired.add(key)
                    changes.append(ExceptionChange(exc, "expired"))
                continue
            self._active[key] = exc
            self._expired.discard(key)
            changes.append(ExceptionChange(exc, "added"))
        return changes + self.expire(now)

    def expire(self, now: float) -> list[ExceptionChange]:
        """Drop (and return) the exceptions whose expiry has passed."""
        gone = [e for e in self._active.values() if e.until <= now]
        for exc in gone:
            del self._active[exc.id]
            self._expired.add(exc.id)
        return [ExceptionChange(e, "expired") for e in gone]

    def match(self, rule_id: str, finding: Finding, now: float) -> RuleException | None:
        """The exception in force that covers the finding, if any (an expired one never
        does, even before :meth:`expire` has run)."""
        for exc in self._active.values():
            if exc.until > now and exc.covers(rule_id, finding):
                return exc
        return None

    @property
    def active(self) -> tuple[RuleException, ...]:
        return tuple(self._active.values())
