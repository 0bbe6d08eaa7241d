"""Every finding edgeguard can raise, as (kind, subtype): the catalogue behind
docs/findings.md and the policy's ``rules`` (which match on kind/subtype).

Each producer owns its names (``KIND``/``FINDING_KIND`` and ``SUBTYPES`` in its module);
this module only collects them. The Wi-Fi names are listed here: the Wi-Fi verdict
code spells them inline (``edgeguard.wifi.verdict``), and a test checks the two agree.
tests/unit/test_findings_catalogue.py checks that every ``Finding(...)`` in the code uses
a registered kind/subtype and that docs/findings.md documents each one.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgeguard.kiosk import guard as kiosk_usb
from edgeguard.kiosk import radio as kiosk_radio
from edgeguard.media import evidence as media
from edgeguard.net.detect import arp, bittorrent, flood, scan, sweep

__all__ = ["FINDING_TYPES", "WIFI_REFUSALS", "FindingType", "kinds"]

#: ``wifi`` findings: why an association was refused (``Assessment.subtype`` of a refusal).
WIFI_REFUSALS = ("unlisted", "public", "below-minimum", "rogue-bssid", "weaker-than-approved",
                 "backoff")
#: ``wifi-rogue`` findings from scan results.
WIFI_ROGUE = ("evil-twin",)


@dataclass(frozen=True, slots=True)
class FindingType:
    kind: str
    subtype: str
    area: str  # network, wifi, media, kiosk: the policy section of its component


def _of(area: str, kind: str, subtypes: tuple[str, ...]) -> tuple[FindingType, ...]:
    return tuple(FindingType(kind, s, area) for s in subtypes)


FINDING_TYPES: tuple[FindingType, ...] = (
    *_of("network", scan.KIND, scan.SUBTYPES),
    *_of("network", sweep.KIND, sweep.SUBTYPES),
    *_of("network", bittorrent.KIND, bittorrent.SUBTYPES),
    *_of("network", arp.KIND, arp.SUBTYPES),
    *_of("network", flood.KIND, flood.SUBTYPES),
    *_of("wifi", "wifi", WIFI_REFUSALS),
    *_of("wifi", "wifi-rogue", WIFI_ROGUE),
    *_of("media", media.FINDING_KIND, media.SUBTYPES),
    *_of("kiosk", kiosk_usb.FINDING_KIND, kiosk_usb.SUBTYPES),
    *_of("kiosk", kiosk_radio.FINDING_KIND, kiosk_radio.SUBTYPES),
)


def kinds() -> dict[str, tuple[str, ...]]:
    """kind -> its subtypes, in catalogue order."""
    out: dict[str, tuple[str, ...]] = {}
    for ft in FINDING_TYPES:
        out[ft.kind] = (*out.get(ft.kind, ()), ft.subtype)
    return out
