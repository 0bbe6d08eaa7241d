"""The ``daemon.control:`` section of the policy: limits of the control socket.

Each limit is what keeps one peer from starving the others (issue 16 §2): connections
are capped globally and per peer uid, a few slots are kept for root alone, an idle
connection is closed after a short time, a request line has a size cap, and refusals
are audited once per peer uid and window, never one record per request.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgeguard.policy.types import ByteSize, Duration, setting

__all__ = ["ControlConfig"]


@dataclass(frozen=True, slots=True)
class ControlConfig:
    max_connections: int = setting(
        64, "Control connections served at once, all peers together (root included).",
        unit="connections", minimum=2, maximum=4096)
    max_per_uid: int = setting(
        8, "Connections served at once for one non-root peer uid; more are answered "
        "with an error and closed at once.", unit="connections", minimum=1, maximum=4096)
    root_reserve: int = setting(
        8, "Of max_connections, slots only root may take: a flood by non-root peers "
        "can never lock root out.", unit="connections", minimum=1, maximum=4096)
    idle_timeout: Duration = setting(
        Duration(2), "A connection that sends no complete request line within this "
        "time is closed.", unit="duration", minimum=0.1, maximum=60)
    max_request: ByteSize = setting(
        ByteSize(64 * 1024), "Longest request line; a longer one is refused with an "
        "error and the connection closed.", unit="bytes", minimum=256, maximum=16 * 1024 * 1024)
    audit_window: Duration = setting(
        Duration(60), "Refused connections, refused commands and bad requests are "
        "counted per peer uid and written as one summary record per window (the first "
        "refusal of each command in a window is also audited on its own).",
        unit="duration", minimum=1, maximum=3600)

    def __post_init__(self) -> None:
        if self.root_reserve >= self.max_connections:
            raise ValueError("root_reserve must be below max_connections")
