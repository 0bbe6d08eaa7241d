"""The audit records the Wi-Fi component writes itself (findings go through the pipeline).

Every association is recorded with its element evidence, every failed attempt and every
departure too ("All connection attempts are logged", LT2 §2.4).
"""

from __future__ import annotations

from edgeguard.events import AuditRecord, EventKind, Mode, Outcome, Scalar
from edgeguard.wifi.nl80211 import CMD_DISCONNECT, Nl80211Message
from edgeguard.wifi.rtnl import RtnlRestart
from edgeguard.wifi.verdict import WifiEvidence

__all__ = ["RTNL_RESTART", "association_record", "link_record", "pipeline_error",
           "rtnl_restart_record"]

RTNL_RESTART = "rtnl-restart"


def association_record(evidence: WifiEvidence, how: str, mode: Mode) -> AuditRecord:
    allowed = evidence.assessment.allowed
    bss = evidence.bss
    return AuditRecord(
        action="wifi-association", kind=EventKind.EVENT, category=("network",),
        # the association happened: whether it is refused is the finding's, and what was
        # done about it the disconnect's (issue 22: never "denied" when nothing was)
        event_type=("connection", "start"),
        message=f"{evidence.interface} {how} {bss.bssid}: "
                f"{bss.classification.security.value}, "
                f"{'allowed' if allowed else 'refused'} ({evidence.assessment.reason})",
        outcome=Outcome.SUCCESS, mode=mode, fields=dict(evidence.ecs_fields()),
    )


def link_record(ifname: str, msg: Nl80211Message, mode: Mode) -> AuditRecord:
    """A failed association attempt (CONNECT with a status) or a departure (DISCONNECT)."""
    left = msg.cmd == CMD_DISCONNECT
    fields: dict[str, Scalar] = {"edgeguard.wifi.interface": ifname}
    if msg.mac:
        fields["edgeguard.wifi.bssid"] = msg.mac
    if msg.status_code is not None:
        fields["edgeguard.wifi.status_code"] = msg.status_code
    if msg.reason_code is not None:
        fields["edgeguard.wifi.reason_code"] = msg.reason_code
    if left:
        what = (f"left the network (reason {msg.reason_code}"
                f"{', by the access point' if msg.by_ap else ''})")
        return AuditRecord(action="wifi-disassociation", message=f"{ifname}: {what}",
                           kind=EventKind.EVENT, category=("network",),
                           event_type=("connection", "end"), outcome=Outcome.SUCCESS,
                           mode=mode, fields=fields)
    return AuditRecord(action="wifi-association-failed",
                       message=f"{ifname}: association to {msg.mac or '?'} failed "
                               f"(status {msg.status_code})",
                       kind=EventKind.EVENT, category=("network",),
                       event_type=("connection", "start"), outcome=Outcome.FAILURE,
                       mode=mode, fields=fields)


def pipeline_error(action: str, message: str) -> AuditRecord:
    return AuditRecord(action=action, message=message, kind=EventKind.PIPELINE_ERROR,
                       category=("network",), event_type=("error",), outcome=Outcome.FAILURE)


def rtnl_restart_record(restart: RtnlRestart, mode: Mode) -> AuditRecord:
    """The rtnetlink socket failed (ENOBUFS: notifications were lost) and was reopened,
    the links re-read; failure when the reopen failed too (the next one is on its way)."""
    fields: dict[str, Scalar] = {"edgeguard.rtnl.reason": restart.reason,
                                 "edgeguard.rtnl.restarts": restart.attempt,
                                 "edgeguard.rtnl.backoff_s": round(restart.waited, 3)}
    if restart.error is None:
        message = (f"rtnetlink watch reopened after {restart.reason}; links re-read "
                   f"(restart {restart.attempt})")
    else:
        fields["error.message"] = restart.error
        message = (f"rtnetlink watch could not be reopened after {restart.reason}: "
                   f"{restart.error} (restart {restart.attempt}; trying again)")
    return AuditRecord(action=RTNL_RESTART, message=message, kind=EventKind.PIPELINE_ERROR,
                       category=("network",), event_type=("error",),
                       outcome=Outcome.SUCCESS if restart.error is None else Outcome.FAILURE,
                       mode=mode, fields=fields)
