"""Policy verdicts and evil-twin detection on classified BSSs."""

from __future__ import annotations

from edgeguard.policy.types import MacAddress
from edgeguard.wifi.classify import classify
from edgeguard.wifi.config import ApprovedNetwork, WifiConfig, WifiSecurity
from edgeguard.wifi.verdict import ScannedBss, WifiEvidence, assess, rogues

from .vectors import load_vectors

IES = {v.name: (v.ies, v.privacy) for v in load_vectors()}
STAFF = ApprovedNetwork(ssid="staff", bssids=(MacAddress.parse("02:00:00:00:00:01"),),
                        security=WifiSecurity.WPA2_ENTERPRISE, trusted=True)
HOME = ApprovedNetwork(ssid="home", security=WifiSecurity.WPA3_SAE)
CONFIG = WifiConfig(enabled=True, approved_networks=(STAFF, HOME))


def bss(vector: str, ssid: str, bssid: str = "02:00:00:00:00:01") -> ScannedBss:
    ies, privacy = IES[vector]
    cls = classify(ies, privacy)
    return ScannedBss(bssid, ssid.encode(), cls)


def test_approved_network_from_its_bssid_is_allowed_and_trusted() -> None:
    verdict = assess(bss("wpa3-enterprise", "staff"), CONFIG)
    assert verdict.allowed
    assert verdict.trusted


def test_approved_ssid_from_another_bssid_is_rogue() -> None:
    verdict = assess(bss("wpa3-enterprise", "staff", "02:66:66:66:66:66"), CONFIG)
    assert (verdict.allowed, verdict.subtype) == (False, "rogue-bssid")
    assert not verdict.trusted


def test_approved_ssid_with_weaker_security_is_refused() -> None:
    verdict = assess(bss("wpa2-psk", "home"), CONFIG)
    assert (verdict.allowed, verdict.subtype) == (False, "weaker-than-approved")
    assert assess(bss("sae-transition", "home"), CONFIG).subtype == "weaker-than-approved"
    assert assess(bss("wpa3-sae", "home"), CONFIG).allowed


def test_unlisted_networks_meet_the_minimum_and_are_never_public() -> None:
    assert assess(bss("wpa2-psk", "neighbour"), CONFIG).allowed
    assert assess(bss("open", "cafe"), CONFIG).subtype == "public"
    assert assess(bss("owe", "library"), CONFIG).subtype == "public"
    assert assess(bss("wep", "old"), CONFIG).subtype == "below-minimum"
    assert assess(bss("wpa1-tkip", "old"), CONFIG).subtype == "below-minimum"
    assert assess(bss("unknown-akm-only", "odd"), CONFIG).subtype == "below-minimum"
    assert not assess(bss("wpa2-psk", "neighbour"), CONFIG).trusted


def test_only_approved_networks_when_unlisted_are_refused() -> None:
    strict = WifiConfig(enabled=True, allow_unlisted=False, approved_networks=(STAFF,))
    assert assess(bss("wpa3-enterprise-192", "elsewhere"), strict).subtype == "unlisted"


def test_ssid_matching_is_by_bytes() -> None:
    assert assess(bss("open", "Staff"), CONFIG).subtype == "public"  # not "staff"


def test_rogues_in_scan_results() -> None:
    scan = [bss("wpa3-enterprise", "staff"),
            bss("wpa3-enterprise", "staff", "02:66:66:66:66:66"),
            bss("wpa2-psk", "home", "02:00:00:00:00:09"),
            bss("open", "cafe", "02:00:00:00:00:0a")]
    found = [(b.bssid, v.subtype) for b, v in rogues(scan, CONFIG)]
    assert found == [("02:66:66:66:66:66", "rogue-bssid"),
                     ("02:00:00:00:00:09", "weaker-than-approved")]


def test_evidence_fields_are_ecs_dotted_scalars() -> None:
    b = bss("wpa3-enterprise-192", "staff")
    fields = WifiEvidence("wlan0", b, assess(b, CONFIG)).ecs_fields()
    assert fields["edgeguard.wifi.security"] == "wpa3-enterprise-192"
    assert fields["edgeguard.wifi.akm"] == ("802.1x-suite-b-192",)
    assert fields["edgeguard.wifi.cipher.pairwise"] == ("gcmp-256",)
    assert fields["edgeguard.wifi.cipher.group_mgmt"] == "bip-gmac-256"
    assert fields["edgeguard.wifi.mfp"] == "required"
    assert fields["edgeguard.wifi.verdict"] == "allow"
    assert all(k.startswith("edgeguard.wifi.") for k in fields)


def test_security_order() -> None:
    order = list(WifiSecurity)
    assert order[0] is WifiSecurity.UNKNOWN
    assert WifiSecurity.OWE.rank < WifiSecurity.WEP.rank  # public ranks below any credential
    assert WifiSecurity.WPA2_PSK.rank < WifiSecurity.SAE_TRANSITION.rank < \
        WifiSecurity.WPA3_SAE.rank
    assert WifiSecurity.WPA3_ENTERPRISE_192 is order[-1]
    assert {s for s in WifiSecurity if s.public} == {WifiSecurity.OPEN, WifiSecurity.OWE}
