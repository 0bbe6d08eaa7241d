"""The media component of the daemon: udev monitor -> engine -> kernel flags -> audit.

Started with the daemon's :class:`~edgeguard.daemon.component.Context`: it registers
the udev monitor's descriptor on the event loop (``add_reader``), handles the devices
already present (coldplug), re-judges every present device on a policy reload and when
a temporary allow lapses, and serves ``media.list`` / ``media.allow`` on the control
socket.
"""

from __future__ import annotations

import asyncio
import pwd
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from edgeguard.actions.base import Action
from edgeguard.daemon.component import (
    Command,
    Component,
    Context,
    Peer,
    changing,
    read_only,
)
from edgeguard.decision import effective_mode
from edgeguard.events import ActionKind, Mode
from edgeguard.findings import Area
from edgeguard.media.actions import media_actions
from edgeguard.media.allow import AllowError, AllowStore
from edgeguard.media.block import BlockLayer, KernelBlockLayer
from edgeguard.media.catalogue import CatalogueError, HardwareCatalogue, shipped_catalogue_path
from edgeguard.media.config import MediaConfig
from edgeguard.media.engine import MediaEngine
from edgeguard.media.evidence import MediaEvidence
from edgeguard.media.mount import Mounter
from edgeguard.media.source import MediaSource, UdevSource
from edgeguard.policy.model import Policy

__all__ = ["ALLOW_FILE", "MediaComponent", "components", "load_catalogue"]

ALLOW_FILE = "media-allows.json"
#: Re-check allow expiry at least this often (seconds), whatever the next expiry says.
_TICK_MAX = 60.0


def load_catalogue(config: MediaConfig) -> tuple[HardwareCatalogue, str | None]:
    """The hardware catalogue, or an empty one and the error (fail closed)."""
    path = Path(config.hardware_catalogue) if config.hardware_catalogue else (
        shipped_catalogue_path())
    try:
        return HardwareCatalogue.load(path), None
    except CatalogueError as exc:
        return HardwareCatalogue(), str(exc)


def _mode(policy: Policy) -> Mode:
    return effective_mode(policy, Area.MEDIA)


class MediaComponent:
    name = "media"
    area = Area.MEDIA

    def __init__(self, source_factory: Callable[[], MediaSource] = UdevSource,
                 block: BlockLayer | None = None) -> None:
        self._source_factory = source_factory
        self._block: BlockLayer = block if block is not None else KernelBlockLayer()
        self._source: MediaSource | None = None
        self._ctx: Context | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.engine: MediaEngine | None = None
        self._mounter: Mounter | None = None
        self.catalogue_error: str | None = None

    # -- Component ---------------------------------------------------------------------
    def start(self, ctx: Context) -> None:
        self._ctx = ctx
        config = ctx.policy.media
        catalogue, self.catalogue_error = load_catalogue(config)
        self._mounter = mounter = Mounter(Path(config.mount_root), enabled=config.mount)
        self.engine = MediaEngine(
            config=config, mode=_mode(ctx.policy), catalogue=catalogue,
            allows=AllowStore(ctx.state_dir / ALLOW_FILE, ctx.clock), block=self._block,
            audit=ctx.audit, clock=ctx.clock,
            mount=mounter.mount, unmount=mounter.unmount, revoke=mounter.revoke,
            decisions=ctx.decider, submit=ctx.submit)
        self._source = self._source_factory()
        fd = self._source.fileno()
        if fd is not None:
            ctx.loop.add_reader(fd, self.poll)
        for props in self._source.coldplug():
            self.engine.handle_properties(props)
        self._schedule()

    def reload(self, policy: Policy) -> None:
        if self.engine is None:
            return
        catalogue, self.catalogue_error = load_catalogue(policy.media)
        if self._mounter is not None:
            self._mounter.enabled = policy.media.mount
            self._mounter.root = Path(policy.media.mount_root)
        self.engine.reconfigure(policy.media, _mode(policy), catalogue)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._source is not None and self._ctx is not None:
            fd = self._source.fileno()
            if fd is not None:
                self._ctx.loop.remove_reader(fd)
            self._source.close()
        self._source = None

    def counters(self) -> Mapping[str, int]:
        if self.engine is None:
            return {}
        counters = self.engine.counters.as_dict()
        counters["devices"] = sum(1 for _ in self.engine.devices())
        counters["catalogue_models"] = len(self.engine.catalogue)
        if self._mounter is not None:
            counters["mounted"] = len(self._mounter.mounted)
            counters["mount_failures"] = self._mounter.failures
        return counters

    def commands(self) -> Mapping[str, Command]:
        return {"media.list": read_only(self.cmd_list),
                "media.allow": changing(self.cmd_allow)}

    def actions(self) -> Mapping[ActionKind, Action]:
        """``read-only`` and ``deauthorize`` for rules on ``usb`` findings (ActionProvider)."""
        return media_actions(self._block)

    # -- event loop callbacks ----------------------------------------------------------
    def poll(self) -> None:
        """Drain the monitor; called by the loop when its descriptor is readable."""
        if self._source is None or self.engine is None:
            return
        for props in self._source.read():
            self.engine.handle_properties(props)

    def tick(self) -> None:
        """Expire lapsed allows and re-arm the timer."""
        if self.engine is not None:
            self.engine.expire_allows()
        self._schedule()

    def _schedule(self) -> None:
        if self._ctx is None or self.engine is None:
            return
        if self._timer is not None:
            self._timer.cancel()
        delay = _TICK_MAX
        nxt = self.engine.allows.next_expiry()
        if nxt is not None:
            delay = min(delay, max(0.0, nxt - self._ctx.clock.now()) + 0.01)
        self._timer = self._ctx.loop.call_later(delay, self.tick)

    # -- control commands --------------------------------------------------------------
    async def cmd_list(self, peer: Peer, args: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Every present USB storage node: identity, encryption, verdict and why."""
        if self.engine is None:
            return []
        rows = []
        for assessment in self.engine.devices():
            try:
                writable = not self.engine.block.read_only(assessment.device.name)
            except OSError:
                writable = False
            rows.append(dict(MediaEvidence(assessment, writable).ecs_fields()))
        # devices whose uevents were refused: listed with what is known, escaped
        rows.extend(dict(m.ecs_fields()) for m in self.engine.malformed_devices())
        return rows

    async def cmd_allow(self, peer: Peer, args: Mapping[str, Any]) -> dict[str, Any]:
        """Grant a temporary write allow: ``{"device", "seconds", "reason"}``. Root only."""
        if self.engine is None:
            raise PermissionError("media component not running")
        if peer.uid != 0:
            raise PermissionError("only root may grant a temporary allow")
        device_name = str(args.get("device", ""))
        seconds = float(args.get("seconds", 0))
        reason = str(args.get("reason", ""))
        config = self.engine.config
        if not 0 < seconds <= config.allow_max_duration:
            raise AllowError(f"duration must be between 0 and {config.allow_max_duration:.0f}s "
                             "(media.allow_max_duration)")
        device = self.engine.find(device_name)
        if device is None:
            raise AllowError(f"{device_name} is not a present USB storage device")
        head, _ = self.engine.group(device.disk)
        try:
            who = pwd.getpwuid(peer.uid).pw_name
        except KeyError:
            who = f"uid {peer.uid}"
        claimed = args.get("requested_by")
        if isinstance(claimed, str) and claimed and claimed != who:
            who = f"{who} (for {claimed[:64]})"
        allow = self.engine.allows.grant(head.identity or (head.vendor_id, head.product_id,
                                                           head.serial),
                                         head.devnode, seconds, who, reason)
        self.engine.reevaluate_all()
        self._schedule()
        return {"device": head.devnode, "until": allow.until_text, "by": allow.by,
                "reason": allow.reason}


def components(policy: Policy) -> list[Component]:
    return [MediaComponent()] if policy.media.enabled else []
