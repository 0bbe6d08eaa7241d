"""``edgeguard wifi status [--json]``: the current BSS, its class, the verdict, the kill switch.

``edgeguard wifi classify FILE [--json] [--policy FILE]``: every BSS in an 802.11 capture,
its security class with the element evidence, and the verdict under the policy.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edgeguard.cli._common import (
    add_policy_options,
    add_socket_option,
    call_daemon,
    command_group,
    print_json_lines,
)
from edgeguard.ecs import iso_timestamp, nest
from edgeguard.events import Scalar
from edgeguard.textsafe import escape
from edgeguard.wifi.survey import SurveyedBss
from edgeguard.wifi.verdict import bss_fields

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    _wifi, wsub = command_group(sub, "wifi", "Wi-Fi security floor and VPN kill switch",
                                "Inspect the Wi-Fi policy of the running daemon, or classify "
                                "the networks in a capture.")
    status = wsub.add_parser(
        "status", help="current association, its security class and verdict, kill switch",
        description="Show each associated Wi-Fi interface (BSS, security class, AKMs, "
                    "ciphers, verdict), the VPN kill switch and any back-off in force. "
                    "Exit 1 when an association is refused or the kill switch is not in "
                    "the state the policy wants, 3 when no daemon answers.")
    add_socket_option(status)
    status.add_argument("--json", action="store_true",
                        help="one JSON object per line with ECS field names")
    status.set_defaults(func=_status)
    classify = wsub.add_parser(
        "classify", help="classify every BSS in an 802.11 capture under the policy",
        description="Read a pcap/pcapng capture from a monitor interface (radiotap or plain "
                    "802.11 link type), take every beacon and probe response, and print one "
                    "line per BSSID: SSID (or hidden), channel, security class, the element "
                    "evidence (AKM suites, ciphers, MFP, RSNXE, OWE transition) and the "
                    "verdict under the policy. Where frames of one BSSID disagree the "
                    "weakest class counts. Exit 1 when a BSS is refused, 0 when none is, "
                    "2 for a file or policy that cannot be read or a capture with no 802.11 "
                    "frames.")
    classify.add_argument("file", type=Path, metavar="FILE.pcap[ng]")
    classify.add_argument("--json", action="store_true",
                          help="one JSON object per line with ECS field names")
    add_policy_options(classify)
    classify.set_defaults(func=_classify)


def _row(action: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """One --json line: ECS ``event`` (a state row) and the dotted fields, nested."""
    dotted = {k: v for k, v in fields.items() if v is not None}
    dotted.update({"event.kind": "state", "event.category": ["network"],
                   "event.type": ["info"], "event.action": action})
    return nest(dotted)


def _problem(status: Mapping[str, Any]) -> bool:
    refused = any(a.get("edgeguard.wifi.verdict") == "refuse" for a in status["associations"])
    ks = status["kill_switch"]
    mismatch = bool(ks) and ks.get("edgeguard.mode") == "enforce" and (
        (ks.get("edgeguard.vpn.kill_switch.wanted") == "engaged")
        != bool(ks.get("edgeguard.vpn.kill_switch.engaged")))
    return refused or mismatch


def _status(args: argparse.Namespace) -> int:
    status: dict[str, Any] = call_daemon(args, "wifi.status")
    if args.json:
        rows = [*(_row("wifi-association-state", a) for a in status["associations"]),
                _row("vpn-kill-switch-state", status["kill_switch"]),
                *(_row("wifi-backoff-state", b) for b in status["backoff"])]
        print_json_lines(rows)
        return 1 if _problem(status) else 0
    if not status["associations"]:
        print("wifi         not associated")
    for a in status["associations"]:
        g = a.get
        akm = ",".join(g("edgeguard.wifi.akm", ())) or "-"
        print(f"{g('edgeguard.wifi.interface')}        {g('edgeguard.wifi.ssid')!r} "
              f"{g('edgeguard.wifi.bssid')}  {g('edgeguard.wifi.frequency') or '?'} MHz")
        print(f"  security   {g('edgeguard.wifi.security')}  akm {akm}  "
              f"pairwise {','.join(g('edgeguard.wifi.cipher.pairwise', ())) or '-'}  "
              f"mfp {g('edgeguard.wifi.mfp', 'none')}")
        print(f"  verdict    {g('edgeguard.wifi.verdict')}: {g('edgeguard.wifi.reason')}"
              f"{'  (trusted: no VPN needed)' if g('edgeguard.wifi.trusted') else ''}")
    ks = status["kill_switch"]
    if ks:
        engaged = "engaged" if ks["edgeguard.vpn.kill_switch.engaged"] else "lifted"
        up = ", ".join(ks["edgeguard.vpn.interfaces_up"]) or "none"
        print(f"kill switch  {engaged} (policy wants {ks['edgeguard.vpn.kill_switch.wanted']}: "
              f"{ks['edgeguard.vpn.kill_switch.reason']})  mode {ks['edgeguard.mode']}")
        print(f"  table      {ks['edgeguard.vpn.table']}  blocked "
              f"{ks['edgeguard.vpn.kill_switch.blocked_packets']} packets  vpn up: {up}")
        if ks.get("edgeguard.vpn.kill_switch.error"):
            print(f"  error      {ks['edgeguard.vpn.kill_switch.error']}")
    for b in status["backoff"]:
        print(f"back-off     {b['edgeguard.wifi.interface']} {b['edgeguard.wifi.bssid']}  "
              f"{b['edgeguard.wifi.backoff_remaining_s']:.0f}s left")
    watcher = status["watcher"]
    if watcher.get("error"):
        print(f"watcher      {watcher['backend']}: {watcher['error']}")
    return 1 if _problem(status) else 0


def _survey_row(path: Path, s: SurveyedBss) -> dict[str, Any]:
    fields: dict[str, Scalar] = {
        **bss_fields(s.bss, s.assessment),
        "@timestamp": iso_timestamp(s.last_seen),
        "event.start": iso_timestamp(s.first_seen),
        "event.end": iso_timestamp(s.last_seen),
        "file.path": str(path),
        "edgeguard.wifi.hidden": s.hidden,
        "edgeguard.wifi.channel": s.channel,
        "edgeguard.wifi.frames.beacon": s.beacons,
        "edgeguard.wifi.frames.probe_response": s.probe_responses,
        "edgeguard.wifi.classes_seen": tuple(c.value for c in s.classes_seen),
    }
    if s.hidden and not s.bss.ssid:
        fields.pop("edgeguard.wifi.ssid", None)  # hidden and never named by a probe
    row = _row("wifi-bss-classified", fields)
    row["event"]["outcome"] = "success"
    return row


def _evidence(s: SurveyedBss) -> str:
    c = s.bss.classification
    parts = ["hidden SSID" if s.hidden else "",
             f"akm {','.join(c.akms)}" if c.akms else "",
             f"pairwise {','.join(c.pairwise)}" if c.pairwise else "",
             f"group {c.group}" if c.group else "",
             f"mfp {c.mfp}" if c.akms else "",
             f"rsnxe {','.join(c.rsnxe)}" if c.rsnxe else "",
             f"owe-transition {c.owe_transition_bssid}" if c.owe_transition_bssid else "",
             "wpa1" if c.wpa1 else "",
             f"seen as {'/'.join(x.value for x in s.classes_seen)}"
             if len(s.classes_seen) > 1 else ""]
    return "; ".join(p for p in parts if p) or c.reason


def _classify(args: argparse.Namespace) -> int:
    from edgeguard.net.pcapfile import CaptureFormatError  # noqa: PLC0415
    from edgeguard.policy.load import PolicyError, load_policy  # noqa: PLC0415
    from edgeguard.wifi.survey import SurveyCounters, survey_capture  # noqa: PLC0415
    from edgeguard.wifi.verdict import ssid_text  # noqa: PLC0415

    try:
        config = load_policy(list(args.policy), args.profile).policy.wifi
    except PolicyError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        return 2
    counters = SurveyCounters()
    try:
        found = survey_capture(args.file, config, counters)
    except (CaptureFormatError, OSError) as exc:
        print(f"edgeguard wifi classify: {exc}", file=sys.stderr)
        return 2
    if counters.frames == 0:
        print(f"edgeguard wifi classify: {args.file}: no 802.11 frames (a monitor-mode "
              f"capture has link type 127 or 105; {counters.other_linktype} frames of other "
              f"link types)", file=sys.stderr)
        return 2
    if args.json:
        print_json_lines(_survey_row(args.file, s) for s in found)
    else:
        print(f"{'BSSID':17}  {'SSID':32} {'CH':>3}  {'SECURITY':19} {'VERDICT':7} EVIDENCE")
        for s in found:
            name = "(hidden)" if s.hidden and not s.bss.ssid else escape(ssid_text(s.bss.ssid))
            verdict = "allow" if s.assessment.allowed else "refuse"
            print(f"{s.bss.bssid}  {name[:32]:32} {s.channel or '?':>3}  "
                  f"{s.bss.classification.security.value:19} {verdict:7} {_evidence(s)}")
            if not s.assessment.allowed:
                print(f"{'':19}refused: {s.assessment.reason}")
    print(f"{len(found)} BSS from {counters.management} beacons/probe responses; "
          f"{counters.malformed} malformed and {counters.bad_fcs} bad-FCS frames skipped",
          file=sys.stderr)
    return 1 if any(not s.assessment.allowed for s in found) else 0
