"""The components the daemon runs. Each feature adds its factory here."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from edgeguard.actions.nftables.service import components as nft_components
from edgeguard.audit import service as audit_service
from edgeguard.daemon.component import Component
from edgeguard.kiosk import service as kiosk_service
from edgeguard.media import service as media_service
from edgeguard.net import service as net_service
from edgeguard.policy.model import Policy
from edgeguard.wifi import service as wifi_service

__all__ = ["FACTORIES", "build_components"]

#: ``factory(policy) -> components``; a factory returns [] when its section is disabled.
FACTORIES: Sequence[Callable[[Policy], list[Component]]] = (
    media_service.components,
    net_service.components,
    kiosk_service.components,
    wifi_service.components,
    nft_components,
    audit_service.components,
)


def build_components(policy: Policy) -> list[Component]:
    out: list[Component] = []
    for factory in FACTORIES:
        out.extend(factory(policy))
    return out
