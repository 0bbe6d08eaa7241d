"""Real beacons and probe responses recorded in the VM lab (hostapd + mac80211_hwsim).

The lab writes ``tests/data/wifi/beacons/<name>.<frame>.json`` (the class the AP was
configured for, the Privacy bit, the hostapd configuration) beside the element bytes in
``<name>.<frame>.hex``. Every one must classify as the class it was configured for.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgeguard.wifi.classify import classify

from .vectors import DATA

BEACONS = DATA / "beacons"
RECORDS = sorted(p for p in BEACONS.glob("*.json") if p.name != "skipped.json") \
    if BEACONS.is_dir() else []


def load(path: Path) -> tuple[dict[str, object], bytes]:
    meta = json.loads(path.read_text())
    ies = bytes.fromhex((path.parent / str(meta["ies_file"])).read_text().strip())
    return meta, ies


@pytest.mark.skipif(not RECORDS, reason="no lab recordings merged yet")
@pytest.mark.parametrize("path", RECORDS, ids=[p.stem for p in RECORDS])
def test_recorded_frame_classifies_as_configured(path: Path) -> None:
    meta, ies = load(path)
    got = classify(ies, bool(meta["privacy"]))
    assert got.security.value == meta["class"], (path.name, got.reason)
    ssid = meta.get("ssid")
    if ssid and got.ssid:
        assert got.ssid.decode() == ssid
