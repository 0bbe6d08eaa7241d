"""Classify a BSS into a :class:`WifiSecurity` from its elements and Privacy bit.

The class is the *weakest* way a station could be made to join: an RSN element that
also offers PSK next to SAE is SAE transition, TKIP anywhere (group or pairwise, or a
WPA version 1 element next to RSN) makes it WPA-TKIP, a WEP cipher makes it WEP, and
OWE next to anything else is OWE (public). AKMs we do not recognise are ignored when a
known one is present and make the BSS "unknown" when none is; anything malformed is
"unknown". Unknown ranks lowest, so it fails every floor.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from edgeguard.wifi.config import WifiSecurity
from edgeguard.wifi.ie import BssElements, MalformedElement, RsnInfo, parse_elements
from edgeguard.wifi.suites import (
    AKM_NAMES,
    CIPHER_NAMES,
    AkmFamily,
    CipherStrength,
    akm_family,
    cipher_strength,
    suite_name,
)

__all__ = ["Classification", "classify", "classify_elements"]

_FAMILY_CLASS = {
    AkmFamily.OWE: WifiSecurity.OWE,
    AkmFamily.PSK: WifiSecurity.WPA2_PSK,
    AkmFamily.SAE: WifiSecurity.WPA3_SAE,
    AkmFamily.DPP: WifiSecurity.WPA3_SAE,  # a per-device credential, no offline attack
    AkmFamily.ENTERPRISE: WifiSecurity.WPA2_ENTERPRISE,
    AkmFamily.ENTERPRISE_192: WifiSecurity.WPA3_ENTERPRISE_192,
}


@dataclass(frozen=True, slots=True)
class Classification:
    """The class of one BSS and the element facts it rests on (the audit evidence)."""

    security: WifiSecurity
    reason: str
    ssid: bytes | None = None
    akms: tuple[str, ...] = ()
    pairwise: tuple[str, ...] = ()
    group: str | None = None
    group_mgmt: str | None = None
    mfp: str = "none"
    pmkids: int = 0
    rsnxe: tuple[str, ...] = ()
    owe_transition_bssid: str | None = None
    wpa1: bool = False


def classify(ies: bytes, privacy: bool) -> Classification:
    """Classify from raw elements; malformed input is "unknown", never an exception."""
    try:
        elements = parse_elements(ies)
    except MalformedElement as exc:
        return Classification(WifiSecurity.UNKNOWN, f"malformed: {exc}")
    return classify_elements(elements, privacy)


def _weakest(*classes: WifiSecurity) -> WifiSecurity:
    return min(classes, key=lambda c: c.rank)


def _ciphers(info: RsnInfo) -> tuple[WifiSecurity | None, str]:
    """The cap the ciphers put on the class, and why (None: no cap)."""
    group = cipher_strength(info.group)
    strengths = [cipher_strength(s) for s in info.pairwise]
    strengths = [group if s is CipherStrength.USE_GROUP else s for s in strengths]
    if group in (CipherStrength.UNKNOWN, CipherStrength.NOT_DATA, CipherStrength.USE_GROUP):
        return WifiSecurity.UNKNOWN, f"group cipher {info.group} is not a data cipher we know"
    usable = [s for s in strengths if s not in (CipherStrength.UNKNOWN, CipherStrength.NOT_DATA)]
    if not usable:
        return WifiSecurity.UNKNOWN, "no known pairwise cipher"
    if CipherStrength.WEP in (group, *usable):
        return WifiSecurity.WEP, "WEP cipher offered"
    if CipherStrength.TKIP in (group, *usable):
        return WifiSecurity.WPA_TKIP, "TKIP cipher offered"
    return None, ""


def _akm_class(info: RsnInfo) -> tuple[WifiSecurity, str]:
    families = {akm_family(s) for s in info.akms} - {AkmFamily.UNKNOWN, AkmFamily.OTHER}
    if not families:
        return WifiSecurity.UNKNOWN, "no AKM suite we know"
    if AkmFamily.OWE in families:
        return WifiSecurity.OWE, "OWE: encrypted, but anyone may join"
    if {AkmFamily.PSK, AkmFamily.SAE} <= families:
        families -= {AkmFamily.PSK, AkmFamily.SAE}
        classes = [WifiSecurity.SAE_TRANSITION, *(_FAMILY_CLASS[f] for f in families)]
        return _weakest(*classes), "SAE transition: PSK still offered"
    classes = [_FAMILY_CLASS[f] for f in families]
    if WifiSecurity.WPA2_ENTERPRISE in classes and info.mfp_required:
        classes = [WifiSecurity.WPA3_ENTERPRISE if c is WifiSecurity.WPA2_ENTERPRISE else c
                   for c in classes]
    if WifiSecurity.WPA3_ENTERPRISE_192 in classes and not info.mfp_required:
        classes = [WifiSecurity.WPA2_ENTERPRISE if c is WifiSecurity.WPA3_ENTERPRISE_192 else c
                   for c in classes]
    weakest = _weakest(*classes)
    return weakest, f"AKM family {weakest.value}"


def classify_elements(elements: BssElements, privacy: bool) -> Classification:
    rsn, wpa = elements.rsn, elements.wpa
    info = rsn or wpa
    base = Classification(
        WifiSecurity.UNKNOWN, "", ssid=elements.ssid,
        rsnxe=elements.rsnxe.names if elements.rsnxe else (),
        owe_transition_bssid=elements.owe_transition.bssid if elements.owe_transition else None,
        wpa1=wpa is not None,
    )
    if info is None:
        if privacy:
            return _with(base, WifiSecurity.WEP, "Privacy bit without RSN or WPA element")
        return _with(base, WifiSecurity.OPEN, "no encryption")
    base = replace(
        base, akms=tuple(suite_name(AKM_NAMES, s) for s in info.akms),
        pairwise=tuple(suite_name(CIPHER_NAMES, s) for s in info.pairwise),
        group=suite_name(CIPHER_NAMES, info.group),
        group_mgmt=suite_name(CIPHER_NAMES, info.group_mgmt) if info.group_mgmt else None,
        mfp=info.mfp if rsn else "off", pmkids=len(info.pmkids),
    )
    if rsn is None:
        if not any(s in AKM_NAMES for s in info.akms):
            return _with(base, WifiSecurity.UNKNOWN, "no WPA AKM suite we know")
        cap, why = _ciphers(info)
        security = _weakest(WifiSecurity.WPA_TKIP, cap or WifiSecurity.WPA_TKIP)
        return _with(base, security, why or "WPA version 1 element only")
    security, why = _akm_class(rsn)
    cap, cap_why = _ciphers(rsn)
    if cap is not None and cap.rank < security.rank:
        security, why = cap, cap_why
    if wpa is not None and security.rank > WifiSecurity.WPA_TKIP.rank:
        security, why = WifiSecurity.WPA_TKIP, "WPA version 1 element offered next to RSN"
    return _with(base, security, why)


def _with(base: Classification, security: WifiSecurity, reason: str,
          **facts: object) -> Classification:
    return replace(base, security=security, reason=reason)
