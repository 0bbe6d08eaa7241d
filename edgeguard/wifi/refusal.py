"""Leaving a refused BSS and staying away from it for the back-off period.

``Refuser.refuse`` asks wpa_supplicant first when its control socket exists (it will not
re-associate on its own, and ``BSSID_IGNORE`` keeps it off that access point), else sends
nl80211 DISCONNECT and waits for the kernel's acknowledgement. Either way the BSS enters
the back-off table: the component refuses any association to it until the entry expires,
whatever the BSS advertises by then. When entries expire, wpa_supplicant's ignore list
is cleared and refilled with those still in force (it has no per-entry removal).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

from edgeguard.clock import Clock
from edgeguard.events import ActionKind, ActionResult, Decision
from edgeguard.wifi.backend import BackendError, Nl80211Backend
from edgeguard.wifi.config import WifiConfig
from edgeguard.wifi.verdict import WifiEvidence
from edgeguard.wifi.wpa_ctrl import WpaCtrl, WpaCtrlError

__all__ = ["MAX_BACKOFF_ENTRIES", "DisconnectAction", "Refuser"]

#: Refused BSSs remembered for the back-off; the oldest are forgotten first.
MAX_BACKOFF_ENTRIES = 4096


class Refuser:
    def __init__(self, backend: Nl80211Backend, clock: Clock, config: WifiConfig,
                 ifindex_of: Callable[[str], int | None]) -> None:
        self.backend = backend
        self.clock = clock
        self.config = config
        self.ifindex_of = ifindex_of
        self.backoff: dict[tuple[str, str], float] = {}  # (ifname, bssid) -> until (monotonic)
        self.disconnects = 0
        self.failures = 0

    def remaining(self, ifname: str, bssid: str) -> float:
        """Seconds of back-off left for this BSS on this interface (0: none)."""
        return max(0.0, self.backoff.get((ifname, bssid), 0.0) - self.clock.monotonic())

    def clear(self) -> None:
        self.backoff.clear()

    def refuse(self, ifname: str, bssid: str) -> ActionResult:
        """Leave ``bssid`` on ``ifname`` and refuse it again for the back-off period."""
        kind = ActionKind.DISCONNECT
        key = (ifname, bssid)
        self.backoff.pop(key, None)
        self.backoff[key] = self.clock.monotonic() + self.config.backoff
        while len(self.backoff) > MAX_BACKOFF_ENTRIES:
            del self.backoff[next(iter(self.backoff))]
        notes = []
        wpa = WpaCtrl(Path(self.config.wpa_supplicant_dir), ifname)
        if wpa.available():
            try:
                wpa.ignore_bssid(bssid)
                wpa.disconnect()
            except WpaCtrlError as exc:
                notes.append(f"wpa_supplicant: {exc}")
            else:
                self.disconnects += 1
                return ActionResult(kind, ok=True, detail=f"wpa_supplicant on {ifname}: "
                                    f"BSSID_IGNORE {bssid}, DISCONNECT")
        ifindex = self.ifindex_of(ifname)
        if ifindex is None:
            self.failures += 1
            return ActionResult(kind, ok=False, detail=f"unknown interface {ifname}")
        try:
            self.backend.disconnect(ifindex)
        except BackendError as exc:
            self.failures += 1
            return ActionResult(kind, ok=False, detail="; ".join([*notes, str(exc)]))
        self.disconnects += 1
        return ActionResult(kind, ok=True, detail="; ".join(
            [*notes, f"nl80211 DISCONNECT on {ifname} ({self.backend.name})"]))

    def expire(self) -> None:
        now = self.clock.monotonic()
        for key in [k for k, until in self.backoff.items() if until <= now]:
            del self.backoff[key]
            wpa = WpaCtrl(Path(self.config.wpa_supplicant_dir), key[0])
            if wpa.available():
                with contextlib.suppress(WpaCtrlError):
                    wpa.clear_ignored()
                    for ifname, bssid in self.backoff:
                        if ifname == key[0]:
                            wpa.ignore_bssid(bssid)


class DisconnectAction:
    """The ``disconnect`` action the pipeline runs: leave the BSS a Wi-Fi finding names."""

    kind = ActionKind.DISCONNECT

    def __init__(self, refuser: Callable[[], Refuser | None]) -> None:
        self.refuser = refuser

    def apply(self, decision: Decision) -> ActionResult:
        evidence = decision.finding.evidence
        refuser = self.refuser()
        if not isinstance(evidence, WifiEvidence) or refuser is None:
            return ActionResult(self.kind, ok=False, detail="not a Wi-Fi finding")
        return refuser.refuse(evidence.interface, evidence.bss.bssid)
