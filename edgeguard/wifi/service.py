"""The Wi-Fi component: association -> classify -> verdict -> disconnect, and the VPN switch.

Sources: nl80211 (``mlme`` and ``scan`` groups, through a :class:`Nl80211Backend`) and
rtnetlink. On CONNECT/ROAM the interface's scan table is dumped, the BSS classified from
its raw elements and judged against the policy; a refusal is a ``wifi`` finding that
the pipeline decides on, and in enforce mode its ``disconnect`` action (provided here)
leaves the BSS through wpa_supplicant when it runs, else nl80211, and starts a back-off
during which every re-association to that BSS is refused again at once. Scan results
feed the evil-twin check (``wifi-rogue`` findings). Every association is audited with
its element evidence. The kill switch follows the associations (see :mod:`vpnguard`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
from collections.abc import Callable, Mapping
from typing import Any

from edgeguard.actions.base import Action
from edgeguard.daemon.component import Command, Component, Context, Peer, read_only
from edgeguard.decision import effective_mode
from edgeguard.events import (
    ActionKind,
    Finding,
    Mode,
    Severity,
)
from edgeguard.findings import Area
from edgeguard.policy.model import Policy
from edgeguard.wifi import nl80211
from edgeguard.wifi.backend import BackendError, LiveBackend, Nl80211Backend
from edgeguard.wifi.classify import Classification, classify
from edgeguard.wifi.config import WifiConfig, WifiSecurity
from edgeguard.wifi.killswitch import KillSwitch
from edgeguard.wifi.nl80211 import BssInfo, Nl80211Message
from edgeguard.wifi.records import (
    association_record,
    link_record,
    pipeline_error,
    rtnl_restart_record,
)
from edgeguard.wifi.refusal import DisconnectAction, Refuser
from edgeguard.wifi.rtnl import KernelSocket, NetlinkSocket, RtnlRestart, RtnlWatcher
from edgeguard.wifi.verdict import Assessment, ScannedBss, WifiEvidence, assess, rogues
from edgeguard.wifi.vpnguard import VpnGuard

__all__ = ["WifiComponent", "components", "scanned"]

#: nl80211 events waiting to be handled; beyond this they are counted and dropped (a
#: radio does not produce events this fast; a stuck handler must not grow memory).
MAX_QUEUED_EVENTS = 1024


def scanned(entry: BssInfo | None, bssid: str) -> ScannedBss:
    """Classify one scan-table entry; a BSS the kernel cannot show us is "unknown"."""
    ies = None if entry is None else entry.ies if entry.ies is not None else entry.beacon_ies
    if entry is None or ies is None:
        why = "BSS not in the scan table" if entry is None else "BSS without elements"
        return ScannedBss(bssid, None, Classification(WifiSecurity.UNKNOWN, why))
    cls = classify(ies, entry.privacy)
    return ScannedBss(entry.bssid, cls.ssid, cls, entry.frequency, entry.associated)


@dataclasses.dataclass(slots=True)
class Association:
    ifindex: int
    ifname: str
    bss: ScannedBss
    assessment: Assessment


class WifiComponent:
    name = "wifi"
    area = Area.WIFI

    def __init__(self, policy: Policy, backend: Nl80211Backend | None = None,
                 killswitch: KillSwitch | None = None, watch_links: bool = True,
                 rtnl_opener: Callable[[int], NetlinkSocket] = KernelSocket) -> None:
        self.policy = policy
        self.config: WifiConfig = policy.wifi
        self.backend: Nl80211Backend = backend or LiveBackend()
        self.killswitch = killswitch or KillSwitch()
        self.watch_links = watch_links
        self.rtnl_opener = rtnl_opener  # tests give a scripted kernel
        self.ctx: Context | None = None
        self.guard: VpnGuard | None = None
        self.associations: dict[int, Association] = {}
        self.ifnames: dict[int, str] = {}
        self.refuser: Refuser | None = None
        self.watcher_error: str | None = None
        self.stats = dict.fromkeys((
            "events", "associations", "association_failures", "disassociations", "refused",
            "backoff_refusals", "rogue_findings", "scan_errors", "events_dropped"), 0)
        self._queue: asyncio.Queue[Nl80211Message] = asyncio.Queue(MAX_QUEUED_EVENTS)
        self._tasks: list[asyncio.Task[None]] = []
        self._rtnl: RtnlWatcher | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.ready = asyncio.Event()  # set once coldplug is done (or the watcher gave up)

    # -- lifecycle ----------------------------------------------------------------------
    @property
    def mode(self) -> Mode:
        return effective_mode(self.policy, Area.WIFI)

    def start(self, ctx: Context) -> None:
        self.ctx = ctx
        self.refuser = Refuser(self.backend, ctx.clock, self.config, self.ifindex_of)
        self.guard = VpnGuard(self.killswitch, ctx.audit, self.config, self.mode, ctx.clock)
        # The switch first, before any source is open: fail closed.
        self.guard.update(trusted=False, associated=False, reason="edgeguard started")
        self._tasks.append(ctx.loop.create_task(self._watch()))
        if self.watch_links:
            self._rtnl = RtnlWatcher(self.guard.on_link, self.guard.sync_links,
                                     self._rtnl_restarted, opener=self.rtnl_opener)
            self._tasks.append(ctx.loop.create_task(self._rtnl_task(self._rtnl)))
        self._schedule_verify()

    def reload(self, policy: Policy) -> None:
        self.policy, self.config = policy, policy.wifi
        if self.refuser is not None:
            self.refuser.config = self.config
            if self.mode is not Mode.ENFORCE:
                self.refuser.clear()
        if self.guard is not None:
            self.guard.configure(self.config, self.mode)
        for assoc in list(self.associations.values()):
            assoc.assessment = self._assess(assoc.ifname, assoc.bss)
            if not assoc.assessment.allowed:
                self._refused(assoc, "policy reloaded")
        self._update_vpn("policy reloaded")

    def stop(self) -> None:
        # The kill switch is deliberately left as it is: it must hold without us.
        for task in self._tasks:
            task.cancel()
        if self._timer is not None:
            self._timer.cancel()
        if self._rtnl is not None:
            self._rtnl.close()
        self.backend.close()

    def counters(self) -> Mapping[str, int]:
        out = dict(self.stats)
        out["malformed"] = self.backend.malformed
        out["nl80211_foreign"] = self.backend.foreign
        if self.refuser is not None:
            out.update(disconnects=self.refuser.disconnects,
                       disconnect_failures=self.refuser.failures)
        if self.guard is not None:
            out.update(kill_switch_changes=self.guard.changes,
                       kill_switch_failures=self.guard.failures,
                       kill_switch_restored=self.guard.restored)
        if self._rtnl is not None:
            out.update(rtnl_events=self._rtnl.events, rtnl_errors=self._rtnl.errors,
                       rtnl_foreign=self._rtnl.foreign, rtnl_restarts=self._rtnl.restarts)
        return out

    def commands(self) -> Mapping[str, Command]:
        return {"wifi.status": read_only(self._status_cmd)}

    def actions(self) -> Mapping[ActionKind, Action]:
        return {ActionKind.DISCONNECT: DisconnectAction(lambda: self.refuser)}

    # -- sources ------------------------------------------------------------------------
    def enqueue(self, message: Nl80211Message) -> None:
        self.stats["events"] += 1
        try:
            self._queue.put_nowait(message)
        except asyncio.QueueFull:
            self.stats["events_dropped"] += 1

    async def drain(self) -> None:
        """Wait until every queued nl80211 message is handled (replay and tests)."""
        await self._queue.join()

    async def _watch(self) -> None:
        try:
            await self.backend.open(self.enqueue)
            await self.coldplug()
        except Exception as exc:  # noqa: BLE001 - no Wi-Fi stack: the kill switch still runs
            self.watcher_error = f"{type(exc).__name__}: {exc}"
            self._pipeline_error("wifi-watcher-unavailable",
                                 f"nl80211 is not available ({self.watcher_error}); the VPN "
                                 "kill switch keeps running")
            self.ready.set()
            return
        self.ready.set()
        while True:
            message = await self._queue.get()
            try:
                await self.handle(message)
            except Exception as exc:  # noqa: BLE001 - one bad event must not end the watch
                self._pipeline_error("wifi-event-failed", f"{message.name}: {exc}")
            finally:
                self._queue.task_done()

    async def _rtnl_task(self, watcher: RtnlWatcher) -> None:
        try:
            await watcher.run()  # reopens by itself once started
        except Exception as exc:  # noqa: BLE001 - no rtnetlink: the timer still verifies
            self._pipeline_error("rtnl-unavailable", f"rtnetlink watch stopped: {exc}")

    def _rtnl_restarted(self, restart: RtnlRestart) -> None:
        if self.ctx is not None:
            with contextlib.suppress(OSError):
                self.ctx.audit.write(rtnl_restart_record(restart, self.mode))

    def _schedule_verify(self) -> None:
        if self.ctx is None or self.guard is None:
            return
        guard = self.guard

        def tick() -> None:
            guard.verify(force=True)
            if self.refuser is not None:
                self.refuser.expire()
            self._schedule_verify()

        self._timer = self.ctx.loop.call_later(self.config.vpn.verify_interval, tick)

    async def coldplug(self) -> None:
        for iface in await self.backend.interfaces():
            assert iface.ifindex is not None
            if iface.ifname:
                self.ifnames[iface.ifindex] = iface.ifname
            current = [b for b in await self.backend.scan(iface.ifindex) if b.associated]
            if current:
                await self.associated(iface.ifindex, current[0].bssid, "coldplug")
        self._update_vpn("coldplug")

    async def handle(self, msg: Nl80211Message) -> None:
        if msg.ifindex is None:
            return
        if msg.ifname:
            self.ifnames[msg.ifindex] = msg.ifname
        if msg.cmd in (nl80211.CMD_CONNECT, nl80211.CMD_ROAM):
            if msg.status_code not in (None, 0) or msg.mac is None:
                self.stats["association_failures"] += 1  # nothing associated
                self._audit_link(msg)
                return
            await self.associated(msg.ifindex, msg.mac, msg.name)
        elif msg.cmd == nl80211.CMD_DISCONNECT:
            gone = self.associations.pop(msg.ifindex, None)
            if gone is not None:
                self.stats["disassociations"] += 1
                self._audit_link(dataclasses.replace(msg, mac=msg.mac or gone.bss.bssid))
                self._update_vpn(f"{gone.ifname} disconnected")
        elif msg.cmd == nl80211.CMD_NEW_SCAN_RESULTS and self.config.rogue_detection:
            await self.scan_results(msg.ifindex)

    # -- decisions ----------------------------------------------------------------------
    def ifname(self, ifindex: int) -> str:
        if ifindex not in self.ifnames:
            names = self.backend.interface_names
            try:
                self.ifnames[ifindex] = names.get(ifindex) or socket.if_indextoname(ifindex)
            except OSError:
                return f"if{ifindex}"
        return self.ifnames[ifindex]

    def ifindex_of(self, ifname: str) -> int | None:
        return next((i for i, n in self.ifnames.items() if n == ifname), None)

    def _watched(self, ifname: str) -> bool:
        return not self.config.interfaces or ifname in self.config.interfaces

    async def associated(self, ifindex: int, bssid: str, how: str) -> None:
        ifname = self.ifname(ifindex)
        if not self._watched(ifname):
            return
        self.stats["associations"] += 1
        try:
            table = await self.backend.scan(ifindex)
        except BackendError:
            self.stats["scan_errors"] += 1
            table = []
        entry = next((b for b in table if b.bssid == bssid), None)
        bss = await self._named(ifindex, scanned(entry, bssid))
        assoc = Association(ifindex, ifname, bss, self._assess(ifname, bss))
        self.associations[ifindex] = assoc
        self._audit_association(assoc, how)
        if not assoc.assessment.allowed:
            self._refused(assoc, how)
        self._update_vpn(f"{ifname} {how} {bssid}")

    async def _named(self, ifindex: int, bss: ScannedBss) -> ScannedBss:
        """A hidden network's elements carry no SSID; the interface's own record does."""
        if bss.ssid is None or bss.ssid.strip(b"\0"):
            return bss
        try:
            iface = [i for i in await self.backend.interfaces() if i.ifindex == ifindex]
        except BackendError:
            return bss
        if iface and iface[0].ssid:
            return dataclasses.replace(bss, ssid=iface[0].ssid)
        return bss

    def _assess(self, ifname: str, bss: ScannedBss) -> Assessment:
        verdict = assess(bss, self.config)
        left = self.refuser.remaining(ifname, bss.bssid) if self.refuser else 0.0
        if verdict.allowed and left > 0:
            return Assessment(False, "backoff", f"refused earlier; back-off for another "
                              f"{left:.0f}s", verdict.network)
        return verdict

    def _refused(self, assoc: Association, how: str) -> None:
        assert self.ctx is not None
        self.stats["refused"] += 1
        evidence = WifiEvidence(assoc.ifname, assoc.bss, assoc.assessment)
        now = self.ctx.clock.now()
        finding = Finding(
            kind="wifi", subtype=assoc.assessment.subtype,
            message=f"{assoc.ifname}: {how} to {evidence.ecs_fields().get('edgeguard.wifi.ssid')!r}"
                    f" refused: {assoc.assessment.reason}",
            identifier=f"{assoc.ifname}/{assoc.bss.bssid}", severity=Severity.MODERATE,
            first_seen=now, last_seen=now, evidence=evidence,
        )
        # The pipeline disconnects (DisconnectAction), on a repeat too: the catalogue
        # marks Wi-Fi refusals "reapply on repeat".
        decision = self.ctx.submit(finding)
        if decision.suppressed and decision.enforcing and \
                ActionKind.DISCONNECT in decision.actions:
            self.stats["backoff_refusals"] += 1

    async def scan_results(self, ifindex: int) -> None:
        assert self.ctx is not None
        ifname = self.ifname(ifindex)
        if not self._watched(ifname):
            return
        try:
            table = await self.backend.scan(ifindex)
        except BackendError:
            self.stats["scan_errors"] += 1
            return
        now = self.ctx.clock.now()
        for bss, verdict in rogues((scanned(b, b.bssid) for b in table), self.config):
            self.stats["rogue_findings"] += 1
            evidence = WifiEvidence(ifname, bss, verdict)
            self.ctx.submit(Finding(
                kind="wifi-rogue", subtype="evil-twin", severity=Severity.MODERATE,
                message=f"possible evil twin of {verdict.network.ssid if verdict.network else ''!r}"
                        f" at {bss.bssid}: {verdict.reason}",
                identifier=f"{ifname}/{bss.bssid}", first_seen=now, last_seen=now,
                evidence=evidence,
            ))

    # -- kill switch and audit ----------------------------------------------------------
    def _update_vpn(self, reason: str) -> None:
        if self.guard is None:
            return
        assocs = list(self.associations.values())
        trusted = bool(assocs) and all(a.assessment.trusted for a in assocs)
        self.guard.update(trusted=trusted, associated=bool(assocs), reason=reason)

    def _audit_association(self, assoc: Association, how: str) -> None:
        assert self.ctx is not None
        evidence = WifiEvidence(assoc.ifname, assoc.bss, assoc.assessment)
        self.ctx.audit.write(association_record(evidence, how, self.mode))

    def _audit_link(self, msg: Nl80211Message) -> None:
        assert msg.ifindex is not None
        ifname = self.ifname(msg.ifindex)
        if self.ctx is not None and self._watched(ifname):
            self.ctx.audit.write(link_record(ifname, msg, self.mode))

    def _pipeline_error(self, action: str, message: str) -> None:
        if self.ctx is not None:
            with contextlib.suppress(OSError):
                self.ctx.audit.write(pipeline_error(action, message))

    # -- control ------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        rows = []
        for assoc in self.associations.values():
            fields = dict(WifiEvidence(assoc.ifname, assoc.bss, assoc.assessment).ecs_fields())
            fields["edgeguard.wifi.trusted"] = assoc.assessment.trusted
            rows.append(fields)
        mono = self.ctx.clock.monotonic() if self.ctx else 0.0
        backoff = self.refuser.backoff if self.refuser else {}
        return {
            "associations": rows,
            "kill_switch": self.guard.status() if self.guard else {},
            "backoff": [{"edgeguard.wifi.interface": i, "edgeguard.wifi.bssid": b,
                         "edgeguard.wifi.backoff_remaining_s": round(until - mono, 1)}
                        for (i, b), until in backoff.items() if until > mono],
            "watcher": {"backend": self.backend.name, "error": self.watcher_error},
            "counters": dict(self.counters()),
        }

    async def _status_cmd(self, peer: Peer, args: Mapping[str, Any]) -> dict[str, Any]:
        return self.status()


def components(policy: Policy) -> list[Component]:
    """The daemon's factory: one Wi-Fi component when the section is enabled."""
    return [WifiComponent(policy)] if policy.wifi.enabled else []
