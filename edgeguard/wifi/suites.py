"""Cipher and AKM suite selectors (IEEE 802.11-2020 Tables 9-149 and 9-151, WPA, WFA).

A suite is an OUI plus a type octet, written ``00-0F-AC:12``. The tables name every
suite the standard defines and say which *family* an AKM belongs to, which is what the
classifier needs. Numbers past 9 matter: pyroute2's parser mislabels AKMs >= 10.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "AKM_NAMES",
    "CIPHER_NAMES",
    "IEEE_OUI",
    "MS_OUI",
    "WFA_OUI",
    "AkmFamily",
    "CipherStrength",
    "Suite",
    "akm_family",
    "cipher_strength",
    "suite_name",
]

IEEE_OUI = 0x000FAC  # 00-0F-AC: the IEEE 802.11 suites (RSN)
MS_OUI = 0x0050F2  # 00-50-F2: Microsoft, the pre-standard WPA element
WFA_OUI = 0x506F9A  # 50-6F-9A: Wi-Fi Alliance (OWE transition, DPP)


@dataclass(frozen=True, slots=True, order=True)
class Suite:
    oui: int
    type: int

    def __str__(self) -> str:
        o = self.oui
        return f"{o >> 16:02X}-{(o >> 8) & 0xFF:02X}-{o & 0xFF:02X}:{self.type}"


CIPHER_NAMES: dict[Suite, str] = {
    Suite(IEEE_OUI, 0): "use-group",
    Suite(IEEE_OUI, 1): "wep-40",
    Suite(IEEE_OUI, 2): "tkip",
    Suite(IEEE_OUI, 4): "ccmp-128",
    Suite(IEEE_OUI, 5): "wep-104",
    Suite(IEEE_OUI, 6): "bip-cmac-128",
    Suite(IEEE_OUI, 7): "no-group-addressed",
    Suite(IEEE_OUI, 8): "gcmp-128",
    Suite(IEEE_OUI, 9): "gcmp-256",
    Suite(IEEE_OUI, 10): "ccmp-256",
    Suite(IEEE_OUI, 11): "bip-gmac-128",
    Suite(IEEE_OUI, 12): "bip-gmac-256",
    Suite(IEEE_OUI, 13): "bip-cmac-256",
    Suite(MS_OUI, 0): "use-group",
    Suite(MS_OUI, 1): "wep-40",
    Suite(MS_OUI, 2): "tkip",
    Suite(MS_OUI, 4): "ccmp-128",
    Suite(MS_OUI, 5): "wep-104",
}

AKM_NAMES: dict[Suite, str] = {
    Suite(IEEE_OUI, 1): "802.1x",
    Suite(IEEE_OUI, 2): "psk",
    Suite(IEEE_OUI, 3): "ft-802.1x",
    Suite(IEEE_OUI, 4): "ft-psk",
    Suite(IEEE_OUI, 5): "802.1x-sha256",
    Suite(IEEE_OUI, 6): "psk-sha256",
    Suite(IEEE_OUI, 7): "tdls",
    Suite(IEEE_OUI, 8): "sae",
    Suite(IEEE_OUI, 9): "ft-sae",
    Suite(IEEE_OUI, 10): "ap-peerkey",
    Suite(IEEE_OUI, 11): "802.1x-suite-b",
    Suite(IEEE_OUI, 12): "802.1x-suite-b-192",
    Suite(IEEE_OUI, 13): "ft-802.1x-sha384",
    Suite(IEEE_OUI, 14): "fils-sha256",
    Suite(IEEE_OUI, 15): "fils-sha384",
    Suite(IEEE_OUI, 16): "ft-fils-sha256",
    Suite(IEEE_OUI, 17): "ft-fils-sha384",
    Suite(IEEE_OUI, 18): "owe",
    Suite(IEEE_OUI, 19): "ft-psk-sha384",
    Suite(IEEE_OUI, 20): "psk-sha384",
    Suite(IEEE_OUI, 21): "pasn",
    Suite(IEEE_OUI, 22): "ft-802.1x-sha384-v2",
    Suite(IEEE_OUI, 23): "802.1x-sha384",
    Suite(IEEE_OUI, 24): "sae-ext-key",
    Suite(IEEE_OUI, 25): "ft-sae-ext-key",
    Suite(MS_OUI, 1): "wpa-802.1x",
    Suite(MS_OUI, 2): "wpa-psk",
    Suite(WFA_OUI, 2): "dpp",
}


class AkmFamily(enum.Enum):
    """What kind of credential an AKM needs; the classifier works on families."""

    PSK = "psk"
    SAE = "sae"
    ENTERPRISE = "enterprise"
    ENTERPRISE_192 = "enterprise-192"
    OWE = "owe"
    DPP = "dpp"
    OTHER = "other"  # defined, but not for joining a network (TDLS, APPeerKey, PASN)
    UNKNOWN = "unknown"  # not a suite we know: never trusted


_FAMILY_BY_TYPE: dict[int, AkmFamily] = {
    **dict.fromkeys((2, 4, 6, 19, 20), AkmFamily.PSK),
    **dict.fromkeys((8, 9, 24, 25), AkmFamily.SAE),
    **dict.fromkeys((1, 3, 5, 11, 14, 15, 16, 17, 22, 23), AkmFamily.ENTERPRISE),
    **dict.fromkeys((12, 13), AkmFamily.ENTERPRISE_192),
    18: AkmFamily.OWE,
    **dict.fromkeys((7, 10, 21), AkmFamily.OTHER),
}


def akm_family(suite: Suite) -> AkmFamily:
    if suite.oui == IEEE_OUI:
        return _FAMILY_BY_TYPE.get(suite.type, AkmFamily.UNKNOWN)
    if suite == Suite(WFA_OUI, 2):
        return AkmFamily.DPP
    return AkmFamily.UNKNOWN


class CipherStrength(enum.Enum):
    WEP = "wep"
    TKIP = "tkip"
    STRONG = "strong"  # CCMP or GCMP, 128 or 256 bit
    USE_GROUP = "use-group"
    NOT_DATA = "not-data"  # BIP / no-group-addressed: never a data cipher
    UNKNOWN = "unknown"


_STRENGTH = {
    "wep-40": CipherStrength.WEP, "wep-104": CipherStrength.WEP,
    "tkip": CipherStrength.TKIP, "use-group": CipherStrength.USE_GROUP,
    "ccmp-128": CipherStrength.STRONG, "ccmp-256": CipherStrength.STRONG,
    "gcmp-128": CipherStrength.STRONG, "gcmp-256": CipherStrength.STRONG,
}  # fmt: skip


def cipher_strength(suite: Suite) -> CipherStrength:
    name = CIPHER_NAMES.get(suite)
    if name is None:
        return CipherStrength.UNKNOWN
    return _STRENGTH.get(name, CipherStrength.NOT_DATA)


def suite_name(table: dict[Suite, str], suite: Suite) -> str:
    """The suite's name, or its selector text for one we do not know."""
    return table.get(suite, str(suite))
