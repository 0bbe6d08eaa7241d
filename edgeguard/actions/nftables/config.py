"""The ``network.enforcement`` policy section: how decisions become nftables state.

The time a blocked source stays blocked is ``network.block_duration`` (the section
above); everything specific to the nftables table lives here.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgeguard.policy.types import Duration, MacAddress, Rate, setting
from edgeguard.valuetype import ValueType

__all__ = ["EnforcementConfig"]


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class EnforcementConfig(ValueType):
    """How enforcing decisions become nftables state: set sizes, how long drops and rate
    limits last, and how repeated blocks grow."""

    set_size: int = setting(
        65536, "Cap on elements in each block/flow/rate-limit set (per address family). "
        "A full set refuses new entries (counted and audited) instead of growing.",
        unit="elements", minimum=16, maximum=1048576)
    keep_table_on_stop: bool = setting(
        True, "Leave the `inet edgeguard` table (and its timed blocks) in the kernel when the "
        "daemon stops, so enforcement survives a stop or crash; false removes it at stop.")
    flow_duration: Duration = setting(
        Duration(3600), "How long a dropped flow (5-tuple) stays dropped.", unit="duration",
        minimum=1)
    rate_limit_duration: Duration = setting(
        Duration(600), "How long a flooding source stays rate-limited.", unit="duration",
        minimum=1)
    rate_limit: Rate = setting(
        Rate(100), "Packets per second a rate-limited source may send; the excess is dropped.",
        unit="packets/s", minimum=1)
    rate_limit_burst: int = setting(
        50, "Packets a rate-limited source may send above the rate in one burst.",
        unit="packets", minimum=1, maximum=100000)
    mac_block_kinds: tuple[str, ...] = setting(
        ("arp-spoof",), "Finding kinds whose actor is blocked by its MAC address, not its "
        "IP (the IP of a spoofing finding is the forged one).")
    mac_allowlist: tuple[MacAddress, ...] = setting(
        (), "MAC addresses never blocked (the upstream router, management hosts).")
    expiry_poll_interval: Duration = setting(
        Duration(2), "How often edgeguard checks whether a block is due to expire; the kernel "
        "sets are read back (and each expiry audited) only when one is due.",
        unit="duration", minimum=0.1, maximum=60)
    reconcile_interval: Duration = setting(
        Duration(60), "How often the sets are read back even when no expiry is due, to notice "
        "elements removed outside edgeguard (reading a full set is costly: ~1.6 s for 65536 "
        "elements).", unit="duration", minimum=1, maximum=3600)

    repeat_block_factor: float = setting(
        2.0, "A host blocked again within repeat_block_window after its previous block "
        "ended is blocked this many times as long as last time (fail2ban's "
        "bantime.increment); 1 turns the growth off.", unit="factor", minimum=1,
        maximum=100)
    repeat_block_window: Duration = setting(
        Duration(86400), "How soon after a block ends a new block of the same host counts "
        "as a repeat (and grows); quieter than this, the host starts again from "
        "network.block_duration.", unit="duration", minimum=0)
    repeat_block_max: Duration = setting(
        Duration(7 * 86400), "The longest a grown block lasts.", unit="duration",
        minimum=1)

    def __post_init__(self) -> None:
        if not float(self.rate_limit).is_integer():
            raise ValueError("rate_limit: nftables limits take whole packets per second")
