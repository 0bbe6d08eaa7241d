"""Link and route changes from rtnetlink (pyroute2), for the kill switch and status.

The kill switch itself does not need them (its rules name interfaces, so they hold
whether the tunnel exists or not); the watcher uses them to know when the VPN link comes
and goes (an audit record, ``wifi status``) and to re-check that the table is still in
place after every change to the network.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pyroute2 import AsyncIPRoute
from pyroute2.netlink.rtnl import (
    RTMGRP_IPV4_IFADDR,
    RTMGRP_IPV4_ROUTE,
    RTMGRP_IPV6_IFADDR,
    RTMGRP_IPV6_ROUTE,
    RTMGRP_LINK,
)

__all__ = ["LinkChange", "RtnlWatcher"]

GROUPS = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR | RTMGRP_IPV4_ROUTE \
    | RTMGRP_IPV6_ROUTE
IFF_UP = 0x1
IFF_LOWER_UP = 0x10000


@dataclass(frozen=True, slots=True)
class LinkChange:
    """One rtnetlink notification, reduced to what the Wi-Fi component uses."""

    event: str  # RTM_NEWLINK, RTM_DELLINK, RTM_NEWROUTE, RTM_NEWADDR, ...
    ifname: str | None = None
    up: bool = False  # administratively up with carrier

    @property
    def removed(self) -> bool:
        return self.event == "RTM_DELLINK"


def _change(msg: Any) -> LinkChange:
    event = str(msg.get("event", "unknown"))
    name = msg.get_attr("IFLA_IFNAME") if event.endswith("LINK") else None
    flags = int(msg.get("flags", 0) or 0)
    up = event == "RTM_NEWLINK" and bool(flags & IFF_UP) and bool(flags & IFF_LOWER_UP)
    return LinkChange(event, name, up)


class RtnlWatcher:
    def __init__(self, on_change: Callable[[LinkChange], None]) -> None:
        self.on_change = on_change
        self.events = 0
        self.errors = 0
        self._ipr: Any = None

    async def links(self) -> dict[str, bool]:
        """Every link now: name -> up (with carrier)."""
        ipr = AsyncIPRoute()
        try:
            out = {}
            async for msg in await ipr.link("dump"):
                change = _change(msg)
                if change.ifname:
                    out[change.ifname] = change.up
            return out
        finally:
            ipr.close()

    async def run(self) -> None:
        self._ipr = AsyncIPRoute()
        await self._ipr.bind(groups=GROUPS)
        try:
            while True:
                async for msg in self._ipr.get():
                    self.events += 1
                    try:
                        self.on_change(_change(msg))
                    except Exception:  # noqa: BLE001 - a bad message must not end the watch
                        self.errors += 1
        finally:
            self.close()

    def close(self) -> None:
        if self._ipr is not None:
            with contextlib.suppress(Exception):
                self._ipr.close()
            self._ipr = None
