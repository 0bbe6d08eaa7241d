"""Repeat offenders: a host blocked again soon after its last block is blocked for longer.

fail2ban's ``bantime.increment``: each block of the same address that starts within
``network.enforcement.repeat_block_window`` of the end of its previous block lasts
``repeat_block_factor`` times as long as that one, up to ``repeat_block_max``. A host
that stays quiet for longer than the window starts again from ``network.block_duration``.
``edgeguard net unblock`` forgets the address (a false alarm is no offence), and so
does a restart of the daemon (the history is kept in memory, bounded).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from edgeguard.actions.nftables.config import EnforcementConfig

__all__ = ["MAX_OFFENDERS", "Offence", "RepeatOffenders"]

#: Cap on remembered addresses; the least recently blocked are forgotten first.
MAX_OFFENDERS = 65536


@dataclass(frozen=True, slots=True)
class Offence:
    """One block of one address: how many blocks in a row (1 = first), when it started
    (monotonic), and for how long."""

    count: int
    start: float
    timeout: float


class RepeatOffenders:
    def __init__(self, cap: int = MAX_OFFENDERS) -> None:
        self.cap = cap
        self._last: OrderedDict[str, Offence] = OrderedDict()
        self.forgotten = 0

    def next_block(self, address: str, base: float, config: EnforcementConfig,
                   now: float) -> Offence:
        """The block ``address`` would get now: ``base`` for a first offence, grown for a
        repeat within the window, never above the cap (nor below ``base``)."""
        last = self._last.get(address)
        if last is None or now - (last.start + last.timeout) > config.repeat_block_window:
            return Offence(1, now, base)
        grown = last.timeout * config.repeat_block_factor
        return Offence(last.count + 1, now, max(base, min(grown, config.repeat_block_max)))

    def note(self, address: str, offence: Offence) -> None:
        """Remember a block that was made."""
        self._last[address] = offence
        self._last.move_to_end(address)
        while len(self._last) > self.cap:
            self._last.popitem(last=False)
            self.forgotten += 1

    def forget(self, address: str) -> None:
        self._last.pop(address, None)

    def __len__(self) -> int:
        return len(self._last)
