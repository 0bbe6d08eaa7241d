"""``edgeguard wifi classify``: 802.11 captures to one classified line per BSSID.

The elements are the lab's real hostapd beacons and probe responses; the real capture
tcpdump wrote on hwsim0 is classified as a whole where the lab has recorded it.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeguard.wifi.config import WifiConfig, WifiSecurity
from edgeguard.wifi.dot11 import (
    LINKTYPE_IEEE802_11,
    MalformedFrame,
    channel_of,
    parse_frame,
    parse_radiotap,
)
from edgeguard.wifi.survey import SurveyCounters, survey_capture
from tests.conftest import run_edgeguard
from tests.support.schema import validate_lines

from .dot11_build import BEACONS, frame_of, mgmt, pcap, pcapng, radiotap, recorded

RECORDED = recorded()
HWSIM = BEACONS / "hwsim0.pcap"


def _write(tmp_path: Path, data: bytes, name: str = "cap.pcap") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _by_bssid(path: Path, config: WifiConfig | None = None,
              counters: SurveyCounters | None = None) -> dict[str, object]:
    found = survey_capture(path, config or WifiConfig(), counters)
    return {s.bss.bssid: s for s in found}


@pytest.mark.parametrize("item", RECORDED, ids=[r.name for r in RECORDED])
def test_every_recorded_class_is_classified_from_a_capture(tmp_path: Path, item) -> None:  # type: ignore[no-untyped-def]
    path = _write(tmp_path, pcap([frame_of(item)]))
    (got,) = survey_capture(path, WifiConfig())
    assert got.bss.bssid == item.label["bssid"]
    assert got.bss.classification.security.value == item.label["class"]
    assert got.channel == item.label["channel"]
    assert got.hidden == (item.label["frame"] == "beacon" and "hidden" in item.name)


@pytest.mark.skipif(not HWSIM.exists(), reason="lab capture not recorded yet")
def test_the_real_hwsim_capture_gives_every_label() -> None:
    counters = SurveyCounters()
    got = _by_bssid(HWSIM, counters=counters)
    labels = {r.label["bssid"]: r.label for r in RECORDED}
    assert set(got) == set(labels)
    for bssid, label in labels.items():
        s = got[bssid]
        assert s.bss.classification.security.value == label["class"], bssid  # type: ignore[attr-defined]
        assert s.classes_seen == (WifiSecurity(label["class"]),)  # type: ignore[attr-defined]
    assert counters.frames > counters.management  # probe requests etc. were read and skipped
    assert counters.malformed == 0


def test_radiotap_variants_and_bare_80211_read_alike(tmp_path: Path) -> None:
    item = next(r for r in RECORDED if r.name == "wpa3-sae.beacon")
    variants = {
        "fcs": pcap([frame_of(item, fcs=True)]),
        "tsft": pcap([frame_of(item, tsft=True)]),
        "extended": pcap([frame_of(item, extended=True, tsft=True)]),
        "pcapng": pcapng([frame_of(item)]),
        "bare": pcap([mgmt(8, item.label["bssid"], item.label["capability"], item.ies)],
                     linktype=LINKTYPE_IEEE802_11),
    }
    for name, data in variants.items():
        (got,) = survey_capture(_write(tmp_path, data, name), WifiConfig())
        assert got.bss.classification.security is WifiSecurity.WPA3_SAE, name
        assert got.bss.classification.mfp == "required", name
        # bare 802.11 has no radiotap frequency: the DS element still gives the channel
        assert got.channel == item.label["channel"], name


def test_radiotap_fields_are_read_at_their_aligned_offsets() -> None:
    rt = parse_radiotap(radiotap(5180, fcs=True, tsft=True, extended=True))
    assert (rt.fcs, rt.bad_fcs, rt.freq_mhz) == (True, False, 5180)
    assert channel_of(5180) == 36
    assert channel_of(2484) == 14
    assert channel_of(5975) == 5  # 6 GHz
    assert channel_of(900) is None


def test_bad_fcs_and_malformed_frames_are_counted_and_skipped(tmp_path: Path) -> None:
    good = next(r for r in RECORDED if r.name == "wpa2-psk.beacon")
    frames = [
        frame_of(good, fcs=True, bad_fcs=True),  # the radio says the checksum failed
        radiotap()[:6],  # radiotap cut short
        b"\x01\x00\x08\x00\x00\x00\x00\x00",  # radiotap version 1
        radiotap() + b"\x80\x00" + b"\x00" * 20,  # a beacon cut inside its header
        radiotap() + mgmt(4, "02:00:00:00:99:00", 0, b""),  # probe request: not used
        frame_of(good),
    ]
    counters = SurveyCounters()
    got = _by_bssid(_write(tmp_path, pcap(frames)), counters=counters)
    assert list(got) == [good.label["bssid"]]
    assert (counters.frames, counters.management, counters.bad_fcs, counters.malformed) == (
        6, 1, 1, 3)


def test_malformed_elements_fail_closed(tmp_path: Path) -> None:
    good = next(r for r in RECORDED if r.name == "wpa3-sae.beacon")
    broken = good.ies + b"\x30\x40\x01\x00"  # an RSN element claiming 64 bytes, 2 present
    frame = radiotap() + mgmt(8, "02:00:00:00:77:00", 0x0411, broken)
    (got,) = survey_capture(_write(tmp_path, pcap([frame])), WifiConfig())
    assert got.bss.classification.security is WifiSecurity.UNKNOWN
    assert got.bss.classification.reason.startswith("malformed")
    assert not got.assessment.allowed


def test_one_bssid_with_disagreeing_frames_counts_as_its_weakest(tmp_path: Path) -> None:
    sae = next(r for r in RECORDED if r.name == "wpa3-sae.beacon")
    tkip = next(r for r in RECORDED if r.name == "wpa-tkip.beacon")
    spoof = radiotap() + mgmt(8, sae.label["bssid"], tkip.label["capability"], tkip.ies)
    (got,) = survey_capture(_write(tmp_path, pcap([frame_of(sae), spoof, frame_of(sae)])),
                            WifiConfig())
    assert got.bss.classification.security is WifiSecurity.WPA_TKIP
    assert got.classes_seen == (WifiSecurity.WPA_TKIP, WifiSecurity.WPA3_SAE)
    assert got.beacons == 3
    assert not got.assessment.allowed


def test_a_hidden_ssid_is_named_by_its_probe_response(tmp_path: Path) -> None:
    beacon = next(r for r in RECORDED if r.name == "owe-transition-hidden-owe.beacon")
    probe = next(r for r in RECORDED if r.name == "owe-transition-hidden-owe.probe-resp")
    (alone,) = survey_capture(_write(tmp_path, pcap([frame_of(beacon)]), "a"), WifiConfig())
    assert alone.hidden
    assert not alone.bss.ssid
    (both,) = survey_capture(_write(tmp_path, pcap([frame_of(beacon), frame_of(probe)]), "b"),
                             WifiConfig())
    assert both.hidden
    assert both.bss.ssid == b"eglab-owe-transition-owe"
    assert (both.beacons, both.probe_responses) == (1, 1)


@settings(max_examples=3000, deadline=None)
@given(st.binary(max_size=120), st.sampled_from([105, 127]))
def test_parse_frame_never_raises_anything_but_malformed(data: bytes, linktype: int) -> None:
    try:
        got = parse_frame(data, linktype)
    except MalformedFrame:
        return
    if got is not None:
        assert len(got.bssid) == 17


# --- the command -------------------------------------------------------------------

def _capture_of_all(tmp_path: Path) -> Path:
    return _write(tmp_path, pcap([frame_of(r) for r in RECORDED]))


def test_cli_json_rows_validate_and_carry_the_evidence(tmp_path: Path) -> None:
    path = HWSIM if HWSIM.exists() else _capture_of_all(tmp_path)
    done = run_edgeguard(["wifi", "classify", "--json", str(path)])
    assert done.returncode == 1  # open, WEP, TKIP and OWE networks are refused by default
    rows = validate_lines(done.stdout)
    by_bssid = {r["edgeguard"]["wifi"]["bssid"]: r for r in rows}
    labels = {r.label["bssid"]: r.label for r in RECORDED}
    assert set(by_bssid) == set(labels)
    for bssid, row in by_bssid.items():
        wifi = row["edgeguard"]["wifi"]
        assert row["event"]["action"] == "wifi-bss-classified"
        assert wifi["security"] == labels[bssid]["class"]
        assert wifi["channel"] == labels[bssid]["channel"]
        assert wifi["verdict"] in ("allow", "refuse")
        assert row["file"]["path"] == str(path)
    sae = by_bssid[next(b for b, lab in labels.items() if lab["ap_class"] == "wpa3-sae-h2e")]
    assert sae["edgeguard"]["wifi"]["akm"] == ["sae"]
    assert sae["edgeguard"]["wifi"]["mfp"] == "required"
    assert sae["edgeguard"]["wifi"]["rsnxe"] == ["sae-h2e"]
    assert sae["edgeguard"]["wifi"]["verdict"] == "allow"
    hidden = next(r for r in rows if r["edgeguard"]["wifi"]["hidden"])
    assert hidden["edgeguard"]["wifi"]["owe_transition_bssid"]
    assert f"{len(labels)} BSS from" in done.stderr


def test_cli_table_and_policy_verdicts(tmp_path: Path) -> None:
    item = next(r for r in RECORDED if r.name == "wpa2-psk.beacon")
    path = _write(tmp_path, pcap([frame_of(item)]))
    ok = run_edgeguard(["wifi", "classify", str(path)])
    assert ok.returncode == 0
    assert item.label["bssid"] in ok.stdout
    assert "wpa2-psk" in ok.stdout
    assert "allow" in ok.stdout
    policy = tmp_path / "p.yaml"
    policy.write_text("wifi:\n  minimum_security: wpa3-sae\n  approved_networks:\n"
                      f"    - ssid: {item.label['ssid']}\n      security: wpa3-sae\n")
    refused = run_edgeguard(["wifi", "classify", "--json", "--policy", str(policy), str(path)])
    assert refused.returncode == 1
    (row,) = validate_lines(refused.stdout)
    assert row["edgeguard"]["wifi"]["verdict"] == "refuse"
    assert row["edgeguard"]["wifi"]["approved_network"] == item.label["ssid"]
    assert "approved with wpa3-sae" in row["edgeguard"]["wifi"]["reason"]


def test_cli_input_errors_exit_2(tmp_path: Path) -> None:
    garbage = _write(tmp_path, b"not a capture at all", "g.pcap")
    done = run_edgeguard(["wifi", "classify", str(garbage)])
    assert done.returncode == 2
    assert "not a pcap or pcapng file" in done.stderr
    ethernet = _write(tmp_path, pcap([b"\x00" * 60], linktype=1), "e.pcap")
    done = run_edgeguard(["wifi", "classify", str(ethernet)])
    assert done.returncode == 2
    assert "no 802.11 frames" in done.stderr
    assert run_edgeguard(["wifi", "classify", str(tmp_path / "missing.pcap")]).returncode == 2
    bad_policy = tmp_path / "bad.yaml"
    bad_policy.write_text("wifi:\n  minimum_security: wpa9\n")
    done = run_edgeguard(["wifi", "classify", "--policy", str(bad_policy),
                          str(_capture_of_all(tmp_path))])
    assert done.returncode == 2
    assert "bad.yaml:2" in done.stderr


def test_truncated_capture_keeps_what_it_read(tmp_path: Path) -> None:
    items = [r for r in RECORDED if r.label["frame"] == "beacon"][:3]
    data = pcap([frame_of(r) for r in items])
    path = _write(tmp_path, data[:-10])  # the last record cut short
    done = run_edgeguard(["wifi", "classify", "--json", str(path)])
    rows = [orjson.loads(line) for line in done.stdout.splitlines()]
    assert len(rows) == 2
    assert "1 malformed" in done.stderr
