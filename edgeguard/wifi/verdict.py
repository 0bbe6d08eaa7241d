"""The policy's verdict on one BSS, and evil-twin findings from scan results.

An approved network (matched by SSID bytes) must come from one of its BSSIDs when any
are listed and offer at least its approved security; a BSS that fails either is refused
as a likely evil twin. Anything else is accepted only when unlisted networks are allowed,
it is not public (open, OWE) and it meets the system-wide minimum. ``unknown`` ranks
lowest and so fails every floor.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from edgeguard.events import Scalar
from edgeguard.wifi.classify import Classification
from edgeguard.wifi.config import ApprovedNetwork, WifiConfig

__all__ = ["Assessment", "ScannedBss", "WifiEvidence", "assess", "bss_fields", "rogues",
           "ssid_text"]


def ssid_text(ssid: bytes | None) -> str:
    """An SSID for people and logs: UTF-8 where it is, escapes where it is not."""
    return "" if ssid is None else ssid.decode("utf-8", "backslashreplace")


@dataclass(frozen=True, slots=True)
class ScannedBss:
    """One BSS as nl80211 reports it (a scan result or the current association)."""

    bssid: str
    ssid: bytes | None
    classification: Classification
    frequency: int | None = None
    associated: bool = False


@dataclass(frozen=True, slots=True)
class Assessment:
    allowed: bool
    subtype: str  # finding subtype when refused: below-minimum, public, unlisted, ...
    reason: str
    network: ApprovedNetwork | None = None

    @property
    def trusted(self) -> bool:
        return self.allowed and self.network is not None and self.network.trusted


def _approved(config: WifiConfig, ssid: bytes | None) -> ApprovedNetwork | None:
    for net in config.approved_networks:
        if ssid is not None and net.ssid.encode() == ssid:
            return net
    return None


def assess(bss: ScannedBss, config: WifiConfig) -> Assessment:
    cls = bss.classification
    sec = cls.security
    net = _approved(config, bss.ssid)
    if net is not None:
        return _assess_approved(bss, net)
    if not config.allow_unlisted:
        return Assessment(False, "unlisted", "not an approved network")
    if sec.public:
        return Assessment(False, "public", f"public network ({sec.value})")
    if not sec.at_least(config.minimum_security):
        return Assessment(False, "below-minimum", f"offers {sec.value}, the minimum is "
                          f"{config.minimum_security.value} ({cls.reason})")
    return Assessment(True, "meets-minimum", f"{sec.value} meets the minimum")


def _assess_approved(bss: ScannedBss, net: ApprovedNetwork) -> Assessment:
    sec = bss.classification.security
    if net.bssids and bss.bssid not in net.bssids:
        return Assessment(False, "rogue-bssid", f"BSSID {bss.bssid} is not an approved "
                          f"access point of {net.ssid!r}", net)
    if not sec.at_least(net.security):
        return Assessment(False, "weaker-than-approved", f"offers {sec.value}, "
                          f"{net.ssid!r} is approved with {net.security.value}", net)
    return Assessment(True, "approved", f"approved network {net.ssid!r}", net)


def rogues(scan: Iterable[ScannedBss], config: WifiConfig) -> list[tuple[ScannedBss, Assessment]]:
    """Scan results that carry an approved SSID but fail its profile (evil twins)."""
    out = []
    for bss in scan:
        verdict = assess(bss, config)
        if verdict.network is not None and not verdict.allowed:
            out.append((bss, verdict))
    return out


@dataclass(frozen=True, slots=True)
class WifiEvidence:
    """The facts behind a Wi-Fi finding, as ECS-dotted ``edgeguard.wifi.*`` fields."""

    interface: str
    bss: ScannedBss
    assessment: Assessment

    def ecs_fields(self) -> Mapping[str, Scalar]:
        return {"edgeguard.wifi.interface": self.interface,
                **bss_fields(self.bss, self.assessment)}


def bss_fields(bss: ScannedBss, assessment: Assessment) -> dict[str, Scalar]:
    """A BSS, its class with the element facts behind it, and the verdict, as ECS-dotted
    ``edgeguard.wifi.*`` fields (audit records, ``wifi status``, ``wifi classify``)."""
    cls = bss.classification
    fields: dict[str, Scalar] = {
        "edgeguard.wifi.ssid": ssid_text(bss.ssid),
        "edgeguard.wifi.bssid": bss.bssid,
        "edgeguard.wifi.frequency": bss.frequency,
        "edgeguard.wifi.security": cls.security.value,
        "edgeguard.wifi.classification_reason": cls.reason,
        "edgeguard.wifi.akm": cls.akms,
        "edgeguard.wifi.cipher.pairwise": cls.pairwise,
        "edgeguard.wifi.cipher.group": cls.group,
        "edgeguard.wifi.cipher.group_mgmt": cls.group_mgmt,
        "edgeguard.wifi.mfp": cls.mfp,
        "edgeguard.wifi.pmkid_count": cls.pmkids,
        "edgeguard.wifi.rsnxe": cls.rsnxe,
        "edgeguard.wifi.wpa1": cls.wpa1,
        "edgeguard.wifi.owe_transition_bssid": cls.owe_transition_bssid,
        "edgeguard.wifi.verdict": "allow" if assessment.allowed else "refuse",
        "edgeguard.wifi.reason": assessment.reason,
        "edgeguard.wifi.approved_network": (assessment.network.ssid
                                            if assessment.network else None),
    }
    return {k: v for k, v in fields.items() if v is not None and v != ()}
