"""The finding catalogue: every (kind, subtype) edgeguard can raise, the area (policy
section) it belongs to, and the actions each area can carry out.

A leaf module: it imports only :mod:`edgeguard.events`, so the policy loader, the
decision engine and every producer can use it without an import cycle. The policy
loader validates ``rules:`` against it (an unknown kind or subtype, or an action no
component of the finding's area provides, is a file:line error with a "did you mean"
suggestion); the decision engine reads a finding's area from it (so nobody passes the
policy section as a string); docs/findings.md's catalogue table and docs/policy.md's
finding list are generated from it (:func:`catalogue_markdown`).

The producers' own constants (``KIND``/``SUBTYPES`` of each network detector, the
kiosk's reasons and radio types) must match this table; a test checks that they do
(tests/unit/test_findings_catalogue.py).
"""

from __future__ import annotations

import difflib
import enum
from collections.abc import Mapping
from dataclasses import dataclass

from edgeguard.events import ActionKind

__all__ = [
    "AREA_ACTIONS",
    "FINDING_TYPES",
    "MEDIA_KIND",
    "MEDIA_SUBTYPES",
    "WIFI_REFUSALS",
    "WIFI_ROGUE",
    "Area",
    "FindingType",
    "area_of",
    "catalogue_markdown",
    "default_rule_id",
    "finding_type",
    "kinds",
    "suggest",
    "with_catalogue",
]


class Area(enum.Enum):
    """Where a finding comes from; the value is the policy section whose ``mode`` applies."""

    NETWORK = "network"
    WIFI = "wifi"
    MEDIA = "media"
    KIOSK = "kiosk"


#: What the components of each area can carry out (``log`` is the audit record itself).
AREA_ACTIONS: Mapping[Area, frozenset[ActionKind]] = {
    Area.NETWORK: frozenset({ActionKind.LOG, ActionKind.BLOCK, ActionKind.DROP_FLOW,
                             ActionKind.RATE_LIMIT}),
    Area.WIFI: frozenset({ActionKind.LOG, ActionKind.DISCONNECT}),
    Area.MEDIA: frozenset({ActionKind.LOG, ActionKind.READ_ONLY, ActionKind.DEAUTHORIZE}),
    Area.KIOSK: frozenset({ActionKind.LOG, ActionKind.DEAUTHORIZE}),
}


@dataclass(frozen=True, slots=True)
class FindingType:
    """One finding kind and subtype of the catalogue, the area that raises it, and how
    the decision engine treats it when no rule or a repeat applies."""

    kind: str
    subtype: str
    area: Area
    #: ``rule.id`` recorded when no policy rule matches (``default-<kind>`` if unset).
    default_rule: str | None = None
    #: Act again on a suppressed repeat (Zeek's per-type suppression): a refused Wi-Fi
    #: network or USB device that comes back must be refused again, even though its
    #: alert is not repeated.
    reapply_on_repeat: bool = False

    @property
    def actions(self) -> frozenset[ActionKind]:
        return AREA_ACTIONS[self.area]


def _of(area: Area, kind: str, subtypes: tuple[str, ...], *,
        reapply: bool = False) -> tuple[FindingType, ...]:
    return tuple(FindingType(kind, s, area, reapply_on_repeat=reapply) for s in subtypes)


_SCAN_LABELS = ("syn", "fin", "null", "xmas", "maimon", "ack", "connect", "udp", "masscan",
                "slow")
#: ``wifi`` findings: why an association was refused (``Assessment.subtype`` of a refusal).
WIFI_REFUSALS = ("unlisted", "public", "below-minimum", "rogue-bssid", "weaker-than-approved",
                 "backoff")
#: ``wifi-rogue`` findings from scan results.
WIFI_ROGUE = ("evil-twin",)
#: USB storage: one subtype per media verdict, with the rule id recorded by default.
MEDIA_KIND = "usb"
MEDIA_SUBTYPES: Mapping[str, str] = {
    "non-trust": "media-non-trust-read-only",
    "not-encrypted": "media-trust-not-encrypted",
    "trust-encrypted": "media-trust-encrypted",
    "temporary-allow": "media-temporary-allow",
    "blocked": "media-non-trust-blocked",
    "malformed": "media-malformed-read-only",
    "exempt": "media-exempt",  # the administrator's exemption, audited (issue 18)
    "exempt-identity-moved": "media-exempt-identity-moved",  # an exempt identity, new port
    "exempt-ignored": "media-exempt-ignored",  # an exemption not keyed on the device's port
    "mtp-blocked": "media-mtp-blocked",  # a phone/camera interface de-authorised by udev
    "mtp-allowed": "media-mtp-allowed",  # ... or allowed by the administrator's rule
    "mtp-block-failed": "media-mtp-block-failed",  # ... still authorized when read back
}
_KIOSK_REFUSALS = ("late-hid", "network-adapter", "bluetooth", "wireless", "vendor-class",
                   "disallowed-class", "malformed-descriptors")
_RADIOS = ("bluetooth", "wlan", "uwb", "wimax", "wwan", "gps", "fm", "nfc")

FINDING_TYPES: tuple[FindingType, ...] = (
    *_of(Area.NETWORK, "scan", (*_SCAN_LABELS, *(f"ipv6-{s}" for s in _SCAN_LABELS))),
    *_of(Area.NETWORK, "scan", ("ping-sweep", "ipv6-ping-sweep")),
    *_of(Area.NETWORK, "bittorrent", ("handshake", "http-tracker", "udp-tracker",
                                      "torrent-file", "dht", "utp", "lsd", "encrypted")),
    *_of(Area.NETWORK, "arp-spoof", ("arp-reply-poisoning", "arp-request-poisoning",
                                     "mac-claims-many-ips", "gratuitous-storm")),
    *_of(Area.NETWORK, "flood", ("syn-flood", "udp-flood", "spoofed-syn-flood",
                                 "spoofed-udp-flood")),
    *_of(Area.WIFI, "wifi", WIFI_REFUSALS, reapply=True),
    *_of(Area.WIFI, "wifi-rogue", WIFI_ROGUE),
    *(FindingType(MEDIA_KIND, s, Area.MEDIA, rule) for s, rule in MEDIA_SUBTYPES.items()),
    *_of(Area.KIOSK, "usb-device", ("hid-flagged", *_KIOSK_REFUSALS), reapply=True),
    *_of(Area.KIOSK, "radio", tuple(f"{r}-{w}" for r in _RADIOS for w in ("radio", "unblocked"))),
)

_BY_PAIR: dict[tuple[str, str], FindingType] = {(f.kind, f.subtype): f for f in FINDING_TYPES}
_AREA_OF: dict[str, Area] = {f.kind: f.area for f in FINDING_TYPES}


def kinds() -> dict[str, tuple[str, ...]]:
    """kind -> its subtypes, in catalogue order."""
    out: dict[str, tuple[str, ...]] = {}
    for ft in FINDING_TYPES:
        out[ft.kind] = (*out.get(ft.kind, ()), ft.subtype)
    return out


def finding_type(kind: str, subtype: str) -> FindingType | None:
    return _BY_PAIR.get((kind, subtype))


def default_rule_id(kind: str, subtype: str) -> str:
    """``rule.id`` of a finding no policy rule matches."""
    known = _BY_PAIR.get((kind, subtype))
    if known is not None and known.default_rule is not None:
        return known.default_rule
    return f"default-{kind}"


def area_of(kind: str) -> Area | None:
    """The area a kind belongs to (each kind belongs to exactly one), None if unknown."""
    return _AREA_OF.get(kind)


def suggest(word: str, known: tuple[str, ...] | list[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest known name, or ``""``."""
    close = difflib.get_close_matches(word, known, n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


BEGIN_MARK = "<!-- catalogue:begin -->\n"
END_MARK = "<!-- catalogue:end -->"


def with_catalogue(doc: str) -> str:
    """``doc`` with the text between the catalogue markers replaced by the table."""
    head, _, rest = doc.partition(BEGIN_MARK)
    _, _, tail = rest.partition(END_MARK)
    return f"{head}{BEGIN_MARK}{catalogue_markdown()}{END_MARK}{tail}"


def catalogue_markdown() -> str:
    """The catalogue as a Markdown table: kind, area, subtypes, actions the area provides."""
    lines = ["| kind | area (policy section) | subtypes | actions a rule may name |",
             "|---|---|---|---|"]
    for kind, subtypes in kinds().items():
        area = _AREA_OF[kind]
        actions = ", ".join(f"`{a.value}`" for a in ActionKind if a in AREA_ACTIONS[area])
        subs = ", ".join(f"`{s}`" for s in subtypes)
        lines.append(f"| `{kind}` | `{area.value}` | {subs} | {actions} |")
    return "\n".join(lines) + "\n"
