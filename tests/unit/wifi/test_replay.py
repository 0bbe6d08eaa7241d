"""Recorded nl80211 traffic -> classify -> verdict -> disconnect, monitor vs enforce."""

from __future__ import annotations

import dataclasses
import socket
import threading
from pathlib import Path

import pytest

from edgeguard.ecs import nest, record_fields
from edgeguard.events import Mode
from edgeguard.policy.load import load_policy
from edgeguard.wifi import nl80211
from tests.support.schema import validate_record

from . import recordings
from .harness import RECORDINGS, replay


def fields(record: object) -> dict[str, object]:
    return dict(record.fields)  # type: ignore[attr-defined]


def test_recordings_are_current() -> None:
    for name, entries in recordings.SCENARIOS.items():
        assert (RECORDINGS / f"{name}.jsonl").read_text() == recordings.render(entries), name


def test_home_wpa3_is_allowed_and_the_vpn_stays_required(tmp_path: Path) -> None:
    run = replay("home-wpa3", tmp_path)
    (assoc,) = run.actions("wifi-association")
    f = fields(assoc)
    assert f["edgeguard.wifi.security"] == "wpa3-sae"
    assert f["edgeguard.wifi.akm"] == ("sae",)
    assert f["edgeguard.wifi.mfp"] == "required"
    assert f["edgeguard.wifi.ssid"] == "home"
    assert f["edgeguard.wifi.bssid"] == recordings.HOME
    assert f["edgeguard.wifi.verdict"] == "allow"
    assert f["edgeguard.wifi.rsnxe"] == ("sae-h2e",)
    assert run.alerts() == []
    assert run.backend.sent == []
    assert run.killswitch.calls == ["engage"]  # at start; never lifted
    assert run.component.associations == {}  # the recorded DISCONNECT cleared it


def test_open_cafe_is_refused_and_refused_again(tmp_path: Path) -> None:
    run = replay("cafe-open", tmp_path)
    alerts = run.alerts()
    assert [fields(a)["edgeguard.finding.subtype"] for a in alerts] == ["public"]
    assert fields(alerts[0])["edgeguard.wifi.security"] == "open"
    disconnects = run.actions("disconnect")
    assert len(disconnects) == 2  # the pipeline's, then the repeat's
    assert all(d.outcome.value == "success" for d in disconnects)
    assert [m.cmd for m in run.backend.sent] == [nl80211.CMD_DISCONNECT] * 2
    assert run.component.refuser is not None
    assert ("wlan0", recordings.CAFE) in run.component.refuser.backoff
    assert run.component.stats["backoff_refusals"] == 1
    assert run.killswitch.calls == ["engage"]


def test_monitor_mode_decides_but_does_not_disconnect(tmp_path: Path) -> None:
    run = replay("cafe-open", tmp_path, mode="monitor")
    (alert,) = run.alerts()
    assert fields(alert)["edgeguard.would_act"] == ("disconnect",)
    assert alert.mode is Mode.MONITOR
    assert run.backend.sent == []
    assert run.actions("disconnect") == []
    assert run.killswitch.calls == []  # monitor: the switch is not touched
    assert run.actions("vpn-kill-switch-engage")[0].fields["edgeguard.would_act"] == (
        "vpn-kill-switch-engage",)


def test_trusted_network_lifts_the_switch_and_leaving_engages_it(tmp_path: Path) -> None:
    run = replay("trusted-then-leave", tmp_path)
    assert run.killswitch.calls == ["engage", "lift", "engage"]
    (assoc,) = run.actions("wifi-association")
    assert fields(assoc)["edgeguard.wifi.security"] == "wpa3-enterprise"
    assert fields(assoc)["edgeguard.wifi.approved_network"] == "trust-staff"
    lifted = run.actions("vpn-kill-switch-lift")
    assert lifted[0].outcome.value == "success"


def test_evil_twin_in_scan_results_and_on_association(tmp_path: Path) -> None:
    run = replay("evil-twin", tmp_path)
    rogue = [a for a in run.alerts() if fields(a)["edgeguard.finding.kind"] == "wifi-rogue"]
    assert [fields(a)["edgeguard.wifi.bssid"] for a in rogue] == [recordings.TWIN]
    assert fields(rogue[0])["edgeguard.wifi.reason"].startswith("BSSID")  # type: ignore[union-attr]
    refused = [a for a in run.alerts() if fields(a)["edgeguard.finding.kind"] == "wifi"]
    assert [fields(a)["edgeguard.finding.subtype"] for a in refused] == ["rogue-bssid"]
    assert len(run.backend.sent) == 1
    assert run.killswitch.calls == ["engage"]


def test_coldplug_refuses_a_wep_association(tmp_path: Path) -> None:
    run = replay("coldplug-wep", tmp_path)
    (alert,) = run.alerts()
    assert fields(alert)["edgeguard.finding.subtype"] == "below-minimum"
    assert fields(alert)["edgeguard.wifi.security"] == "wep"
    assert len(run.backend.sent) == 1


def test_malformed_input_is_counted_and_fails_closed(tmp_path: Path) -> None:
    run = replay("malformed", tmp_path)
    assert run.backend.malformed == 1
    (alert,) = run.alerts()
    f = fields(alert)
    assert f["edgeguard.wifi.security"] == "unknown"
    assert str(f["edgeguard.wifi.classification_reason"]).startswith("malformed")
    assert run.component.stats["associations"] == 1  # the failed attempt is not one


def test_backoff_refuses_even_a_good_looking_bss(tmp_path: Path) -> None:
    """Refused once, the BSS is refused for the back-off even if it changes its beacon."""
    rec = tmp_path / "flip.jsonl"
    rec.write_text(recordings.render([
        recordings.header("open, then the same BSSID offers WPA2-PSK"),
        recordings.interfaces(), recordings.scan_dump(),
        recordings.connect(recordings.CAFE),
        recordings.scan_dump(recordings.bss(recordings.CAFE, "cafe", "open", False, True)),
        recordings.connect(recordings.CAFE),
        recordings.scan_dump(recordings.bss(recordings.CAFE, "cafe", "wpa2-psk", True, True)),
        recordings.connect(recordings.CAFE),
        recordings.scan_dump(recordings.bss(recordings.CAFE, "cafe", "wpa2-psk", True, True)),
    ]))

    def later(run: object, step: int) -> None:
        if step == 2:  # after the second (refused) connect
            run.clock.advance(301)  # type: ignore[attr-defined]

    run = replay(rec, tmp_path, after_event=later)
    verdicts = [fields(a)["edgeguard.wifi.verdict"] for a in run.actions("wifi-association")]
    assert verdicts == ["refuse", "refuse", "allow"]
    # the repeat is suppressed as an alert, but still refused (and audited as a disconnect)
    reasons = [fields(a)["edgeguard.finding.subtype"] for a in run.actions("disconnect")]
    assert reasons == ["public", "backoff"]


def test_wpa_supplicant_is_asked_first(tmp_path: Path) -> None:
    wpa_dir = tmp_path / "wpa"
    wpa_dir.mkdir()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(wpa_dir / "wlan0"))
    server.settimeout(5)
    got: list[str] = []

    def serve() -> None:
        while len(got) < 2:
            data, peer = server.recvfrom(4096)
            got.append(data.decode())
            server.sendto(b"OK\n", peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        run = replay("coldplug-wep", tmp_path)
    finally:
        thread.join(5)
        server.close()
    assert got == [f"BSSID_IGNORE {recordings.OLD}", "DISCONNECT"]
    assert run.backend.sent == []
    (action,) = run.actions("disconnect")
    assert "wpa_supplicant" in str(fields(action)["edgeguard.action.detail"])


def test_status_command(tmp_path: Path) -> None:
    run = replay("cafe-open", tmp_path)
    status = run.component.status()
    assert status["kill_switch"]["edgeguard.vpn.kill_switch.wanted"] == "engaged"
    assert status["backoff"][0]["edgeguard.wifi.bssid"] == recordings.CAFE
    assert status["counters"]["disconnects"] == 2


def test_reload_that_distrusts_the_network_engages_the_switch(tmp_path: Path) -> None:
    stricter = tmp_path / "stricter.yaml"
    stricter.write_text("mode: enforce\nwifi:\n  enabled: true\n  approved_networks:\n"
                        "    - ssid: trust-staff\n      security: wpa3-enterprise-192\n")

    def reload_after_connect(run: object, step: int) -> None:
        if step == 1:
            run.component.reload(load_policy([stricter]).policy)  # type: ignore[attr-defined]

    run = replay("trusted-then-leave", tmp_path, after_event=reload_after_connect)
    assert run.killswitch.calls == ["engage", "lift", "engage"]
    (alert,) = run.alerts()
    assert fields(alert)["edgeguard.finding.subtype"] == "weaker-than-approved"
    assert len(run.backend.sent) == 1  # refused after the reload, in enforce mode


def test_failed_attempts_and_departures_are_audited(tmp_path: Path) -> None:
    run = replay("home-wpa3", tmp_path)
    (left,) = run.actions("wifi-disassociation")
    assert fields(left)["edgeguard.wifi.bssid"] == recordings.HOME
    assert fields(left)["edgeguard.wifi.reason_code"] == 3
    run = replay("malformed", tmp_path)
    (failed,) = run.actions("wifi-association-failed")
    assert failed.outcome.value == "failure"
    assert fields(failed)["edgeguard.wifi.status_code"] == 1


def test_hidden_network_is_named_by_the_interface(tmp_path: Path) -> None:
    """A hidden SSID's elements carry a zeroed SSID; the interface record names it."""
    hidden = recordings.bss(recordings.TRUST, "trust-staff", "wpa3-enterprise", True, True)
    assert hidden.ies is not None
    blank = bytes([0, 11]) + b"\0" * 11 + hidden.ies[2 + 11:]
    entry = dataclasses.replace(hidden, ies=blank)
    iface = recordings.interfaces()
    named = nl80211.encode(recordings.FAMILY, nl80211.CMD_NEW_INTERFACE, [
        recordings.u32(nl80211.ATTR_IFINDEX, recordings.WLAN0),
        nl80211.attr(nl80211.ATTR_IFNAME, b"wlan0\0"),
        recordings.u32(nl80211.ATTR_IFTYPE, nl80211.IFTYPE_STATION),
        nl80211.attr(nl80211.ATTR_SSID, b"trust-staff")], flags=2)
    rec = tmp_path / "hidden.jsonl"
    rec.write_text(recordings.render([
        recordings.header("hidden trust-staff"), iface, recordings.scan_dump(),
        recordings.connect(recordings.TRUST), recordings.scan_dump(entry),
        {"type": "dump", "request": "get_interface",
         "data": [named.hex(), nl80211.encode_done(0).hex()]},
    ]))
    run = replay(rec, tmp_path)
    (assoc,) = run.actions("wifi-association")
    assert fields(assoc)["edgeguard.wifi.ssid"] == "trust-staff"
    assert fields(assoc)["edgeguard.wifi.verdict"] == "allow"
    assert run.killswitch.calls == ["engage", "lift"]


@pytest.mark.parametrize("scenario", sorted(recordings.SCENARIOS))
def test_every_record_fits_the_ecs_schema(scenario: str, tmp_path: Path) -> None:
    run = replay(scenario, tmp_path)
    assert run.sink.records
    for seq, record in enumerate(run.sink.records, 1):
        obj = nest(record_fields(record, run.clock.now(), "kiosk"))
        obj["event"].update(sequence=seq, hash="0" * 64)
        obj.setdefault("edgeguard", {})["chain_id"] = "test"
        validate_record(obj)
