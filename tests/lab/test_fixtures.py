"""The recorded fixtures: the committed ones are well-formed and say what they are, and the
lab reproduces them from the recipe (so a fixture is never an unexplained blob)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from edgelab import record, wifi
from edgelab.vm import LabVM

ROOT = Path(__file__).resolve().parents[2]
BEACONS = ROOT / "tests" / "data" / "wifi" / "beacons"
UEVENTS = ROOT / "tests" / "data" / "uevents" / "lab"
RSN, VENDOR, RSNXE = 48, 221, 244
WPA_OUI_TYPE = bytes.fromhex("0050f201")
OWE_TRANSITION = bytes.fromhex("506f9a1c")
RSN_CLASSES = {"wpa2-psk", "sae-transition", "wpa3-sae", "owe", "wpa2-enterprise",
               "wpa3-enterprise", "wpa3-enterprise-192"}


def elements(ies: bytes) -> list[tuple[int, bytes]]:
    """A plain TLV walk (the real parser is edgeguard.wifi's; this only checks framing)."""
    out, i = [], 0
    while i < len(ies):
        assert i + 2 <= len(ies), "truncated element header"
        eid, length = ies[i], ies[i + 1]
        assert i + 2 + length <= len(ies), f"element {eid} overruns the frame"
        out.append((eid, ies[i + 2:i + 2 + length]))
        i += 2 + length
    return out


def rsn_akms(body: bytes) -> list[int]:
    """AKM suite types (00-0F-AC OUI) of an RSN element body."""
    off = 2 + 4  # version, group cipher
    (npair,) = struct.unpack_from("<H", body, off)
    off += 2 + 4 * npair
    (nakm,) = struct.unpack_from("<H", body, off)
    off += 2
    suites = [body[off + 4 * k:off + 4 * k + 4] for k in range(nakm)]
    assert all(s[:3] == b"\x00\x0f\xac" for s in suites)
    return sorted(s[3] for s in suites)


def labels() -> list[Path]:
    return sorted(BEACONS.glob("*.json"))


def test_every_security_class_has_a_beacon_fixture() -> None:
    classes = {json.loads(p.read_text())["class"] for p in labels() if p.name != "skipped.json"}
    assert {"open", "wep", "wpa-tkip", "wpa2-psk", "wpa3-sae", "sae-transition", "owe",
            "wpa2-enterprise", "wpa3-enterprise", "wpa3-enterprise-192"} <= classes


@pytest.mark.parametrize("label_path", [p for p in labels() if p.name != "skipped.json"],
                         ids=lambda p: p.stem)
def test_beacon_fixture_matches_its_label(label_path: Path) -> None:
    label = json.loads(label_path.read_text())
    ies = bytes.fromhex((BEACONS / label["ies_file"]).read_text().strip())
    assert len(ies) == label["ies_len"]
    elems = elements(ies)
    ssid = next(body for eid, body in elems if eid == 0)
    hidden = label["ap_class"] == "owe-transition" and label["class"] == "owe"
    assert ssid == (b"" if hidden and label["frame"] == "beacon" else label["ssid"].encode())
    rsn = [body for eid, body in elems if eid == RSN]
    wpa = [body for eid, body in elems if eid == VENDOR and body[:4] == WPA_OUI_TYPE]
    assert bool(rsn) == (label["class"] in RSN_CLASSES or label["ap_class"] == "wpa-wpa2-mixed")
    if rsn:
        assert rsn_akms(rsn[0]) == sorted(label["akm_suites"])
    assert bool(wpa) == (label["class"] == "wpa-tkip")
    assert label["privacy"] == (label["class"] not in {"open"})
    if label["ap_class"] == "owe-transition":
        assert any(eid == VENDOR and body[:4] == OWE_TRANSITION for eid, body in elems)
    if label["ap_class"] == "wpa3-sae-h2e":
        assert any(eid == RSNXE for eid, _ in elems)  # SAE hash-to-element advertised


@pytest.mark.lab
def test_lab_reproduces_the_beacon_fixtures(lab: LabVM, tmp_path: Path) -> None:
    got = record.record_beacons(lab, tmp_path)
    committed = {p.stem: json.loads(p.read_text()) for p in labels() if p.name != "skipped.json"}
    assert set(got) == set(committed)
    for stem, label in got.items():
        assert label["class"] == committed[stem]["class"]
        new = dict(elements(bytes.fromhex((tmp_path / label["ies_file"]).read_text())))
        old = dict(elements(bytes.fromhex((BEACONS / label["ies_file"]).read_text())))
        assert new.keys() == old.keys(), stem
        assert new.get(RSN) == old.get(RSN), stem  # security advertisement is deterministic


def test_uevent_fixtures_are_usb_block_sequences() -> None:
    files = sorted(UEVENTS.glob("*.json"))
    assert len(files) >= 4
    for path in files:
        rec = json.loads(path.read_text())
        block = [e["properties"] for e in rec["events"]
                 if e["properties"]["SUBSYSTEM"] == "block"]
        assert block, path.name
        # the add events carry the USB identity; a change/remove racing the unplug may
        # not (pull-during-add: udev reads ID_BUS=scsi once the USB parent is gone)
        adds = [p for p in block if p["ACTION"] == "add" and "ID_SERIAL_SHORT" in p]
        assert adds, path.name
        assert all(p["ID_BUS"] == "usb" for p in adds), path.name
        disk = next(p["DEVNAME"] for p in adds if p["DEVTYPE"] == "disk")
        actions = [(p["ACTION"], p["DEVTYPE"]) for p in block
                   if p["DEVNAME"].startswith(disk)]
        assert actions[0] == ("add", "disk"), path.name
        assert ("remove", "disk") in actions, path.name
        times = [e["t"] for e in rec["events"]]
        assert times == sorted(times)


@pytest.mark.lab
@pytest.mark.parametrize("scenario", [s for s in record.UEVENT_SCENARIOS
                                      if s.name in ("vfat-mbr", "luks-plus-plain")],
                         ids=lambda s: s.name)
def test_lab_reproduces_the_uevent_fixtures(lab: LabVM, tmp_path: Path,
                                            scenario: record.UeventScenario) -> None:
    got = record.record_uevent_scenario(lab, scenario, tmp_path)
    committed = json.loads((UEVENTS / f"{scenario.name}.json").read_text())

    def block_shape(rec: dict) -> dict[tuple[str, str], list[tuple[str, str]]]:
        """Per device role (disk, partition N, dm), its add/remove sequence: kernel names
        depend on what was plugged before, and events of different devices may
        interleave differently from run to run."""
        shape: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for p in (e["properties"] for e in rec["events"]):
            if p["SUBSYSTEM"] != "block" or p["ACTION"] not in ("add", "remove"):
                continue
            role = ("dm", "") if p["DEVNAME"].startswith("/dev/dm-") else (
                p.get("DEVTYPE", ""), p.get("ID_PART_ENTRY_NUMBER", ""))
            seq = shape.setdefault(role, [])
            step = (p["ACTION"], p.get("ID_FS_TYPE", ""))
            if not seq or seq[-1] != step:  # dm may repeat its remove
                seq.append(step)
        return shape

    assert block_shape(got) == block_shape(committed)


def test_ap_classes_cover_the_wifi_security_names() -> None:
    names = {c.security for c in wifi.AP_CLASSES}
    assert names == {"open", "wep", "wpa-tkip", "wpa2-psk", "wpa3-sae", "sae-transition",
                     "owe", "wpa2-enterprise", "wpa3-enterprise", "wpa3-enterprise-192"}
