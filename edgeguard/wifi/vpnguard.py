"""When the kill switch should be engaged, applying that, and keeping it applied.

The wanted state is simple: engaged unless the policy does not require the VPN, or a
Wi-Fi interface is associated to an approved *trusted* network (with nothing associated
the switch stays engaged unless ``vpn.engage_without_wifi`` is false). In enforce mode
the state is applied through :class:`KillSwitch` and audited (failure unless nft
succeeded); in monitor mode the would-be change is audited and nothing is touched. The
table is re-checked on every rtnetlink change and every ``vpn.verify_interval``; a
missing table that should be there is restored and audited as tampering.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from edgeguard.actions.base import audited
from edgeguard.audit.sink import AuditSink
from edgeguard.clock import Clock
from edgeguard.events import AuditRecord, EventKind, Mode, Outcome, Scalar
from edgeguard.wifi.config import WifiConfig
from edgeguard.wifi.killswitch import FAMILY, TABLE, KillSwitch
from edgeguard.wifi.rtnl import LinkChange

__all__ = ["VpnGuard", "matches_interface"]

MIN_VERIFY_GAP = 1.0  # seconds between checks triggered by rtnetlink bursts


def matches_interface(patterns: tuple[str, ...], name: str) -> bool:
    """``wg*`` matches by prefix, anything else exactly (as nftables' oifname does)."""
    return any(name.startswith(p[:-1]) if p.endswith("*") else name == p for p in patterns)


class VpnGuard:
    def __init__(self, killswitch: KillSwitch, audit: AuditSink, config: WifiConfig,
                 mode: Mode, clock: Clock) -> None:
        self.killswitch = killswitch
        self.clock = clock
        self._last_verify = float("-inf")
        self.audit = audit
        self.config = config
        self.mode = mode
        self.applied: bool | None = None  # what we last made true (None: not yet)
        self.wanted = True
        self.reason = "starting"
        self.vpn_links: dict[str, bool] = {}
        self.changes = 0
        self.failures = 0
        self.restored = 0

    def configure(self, config: WifiConfig, mode: Mode) -> None:
        self.config, self.mode = config, mode
        self.applied = None  # re-apply under the new policy

    def want(self, trusted: bool, associated: bool) -> bool:
        vpn = self.config.vpn
        if not vpn.required:
            return False
        if trusted:
            return False
        return associated or vpn.engage_without_wifi

    def update(self, trusted: bool, associated: bool, reason: str) -> None:
        wanted = self.want(trusted, associated)
        self.wanted, self.reason = wanted, reason
        if self.applied is wanted:
            return
        self._apply(wanted, reason, restore=False)

    def verify(self, force: bool = False) -> None:
        """Make sure the kernel still holds what we applied (after a change, on a timer).

        rtnetlink changes come in bursts; they trigger at most one check a second.
        """
        if self.mode is not Mode.ENFORCE or self.applied is None:
            return
        now = self.clock.monotonic()
        if not force and now - self._last_verify < MIN_VERIFY_GAP:
            return
        self._last_verify = now
        state = self.killswitch.state()
        if state.error is None and state.engaged != self.applied:
            self.restored += 1
            self._apply(self.applied, "table changed behind edgeguard's back", restore=True)

    def on_link(self, change: LinkChange) -> None:
        name = change.ifname
        if name and matches_interface(self.config.vpn.interfaces, name):
            was = self.vpn_links.get(name)
            now = change.up and not change.removed
            if change.removed:
                self.vpn_links.pop(name, None)
            else:
                self.vpn_links[name] = now
            if (was is not None and was != now) or (was is None and now):
                self._record(f"vpn-tunnel-{'up' if now else 'down'}",
                             f"VPN interface {name} is {'up' if now else 'down'}; the kill "
                             f"switch {'stays' if self.wanted else 'is not'} engaged",
                             Outcome.SUCCESS, {"edgeguard.vpn.interface": name})
        self.verify()

    def sync_links(self, links: Mapping[str, bool]) -> None:
        """The whole link table (at start, after rtnetlink lost notifications): a VPN link
        that is gone from it is taken as removed."""
        for name in [n for n in self.vpn_links if n not in links]:
            self.on_link(LinkChange("RTM_DELLINK", name))
        for name, up in links.items():
            self.on_link(LinkChange("RTM_NEWLINK", name, up))

    def _fields(self, reason: str) -> dict[str, Scalar]:
        return {"edgeguard.vpn.table": f"{FAMILY} {TABLE}",
                "edgeguard.vpn.interfaces": self.config.vpn.interfaces,
                "edgeguard.vpn.endpoints": tuple(self.config.vpn.endpoints),
                "edgeguard.vpn.reason": reason}

    def _apply(self, engage: bool, reason: str, restore: bool) -> None:
        verb = "engage" if engage else "lift"
        action = f"vpn-kill-switch-{'restore' if restore else verb}"
        message = f"VPN kill switch {verb}{'d' if engage else 'ed'}: {reason}"
        if self.mode is not Mode.ENFORCE:
            fields = self._fields(reason)
            fields["edgeguard.would_act"] = (action,)
            self._record(action, f"(monitor) {message}", Outcome.SUCCESS, fields)
            self.applied = engage
            return
        record = AuditRecord(action=action, message=message, kind=EventKind.EVENT,
                             category=("network", "configuration"), event_type=("change",),
                             outcome=Outcome.FAILURE, mode=self.mode,
                             fields=self._fields(reason))
        cfg = self.config.vpn
        result = audited(self.audit, record,
                         lambda: self.killswitch.engage(cfg) if engage else self.killswitch.lift())
        if result.ok:
            self.applied = engage
            self.changes += int(result.changed)
        else:
            self.failures += 1

    def _record(self, action: str, message: str, outcome: Outcome,
                fields: Mapping[str, Scalar]) -> None:
        self.audit.write(AuditRecord(action=action, message=message, kind=EventKind.EVENT,
                                     category=("network",), event_type=("info",),
                                     outcome=outcome, mode=self.mode, fields=dict(fields)))

    def status(self) -> dict[str, Any]:
        state = self.killswitch.state()
        return {
            "edgeguard.vpn.kill_switch.wanted": "engaged" if self.wanted else "lifted",
            "edgeguard.vpn.kill_switch.engaged": state.engaged,
            "edgeguard.vpn.kill_switch.blocked_packets": state.blocked_packets,
            "edgeguard.vpn.kill_switch.reason": self.reason,
            "edgeguard.vpn.kill_switch.error": state.error,
            "edgeguard.vpn.table": f"{FAMILY} {TABLE}",
            "edgeguard.vpn.interfaces_up": tuple(sorted(n for n, up in self.vpn_links.items()
                                                        if up)),
            "edgeguard.mode": self.mode.value,
        }
