"""Our own 802.11 information-element parser, from declarative layouts.

Why not pyroute2's: it mislabels AKM suites >= 10 and raises on RSN elements that stop
early, which the standard allows. Here each element body is described as a tuple of
fields (IEEE 802.11-2020 9.4.2.24 for RSN, the WPA and Wi-Fi Alliance vendor elements)
and read with ``struct`` over a ``memoryview``. An element may end at any field boundary
(absent fields take the standard's defaults); a field cut in half, a count that runs
past the end, a duplicated security element or a framing error raises
:class:`MalformedElement`, and the classifier turns that into "unknown" (fail closed).
Bytes after the last known field are allowed (the standard extends elements at the end)
and counted.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol, TypeVar

from edgeguard.wifi.suites import IEEE_OUI, MS_OUI, WFA_OUI, Suite

__all__ = [
    "EID_RSN",
    "EID_RSNXE",
    "EID_SSID",
    "EID_VENDOR",
    "BssElements",
    "MalformedElement",
    "OweTransition",
    "RsnInfo",
    "Rsnxe",
    "iter_elements",
    "parse_elements",
]

EID_SSID = 0
EID_RSN = 48
EID_VENDOR = 221
EID_RSNXE = 244
_T = TypeVar("_T")
MAX_SSID = 32
WPA_TYPE = 1  # 00-50-F2 type 1: the WPA (version 1) element
OWE_TRANSITION_TYPE = 0x1C  # 50-6F-9A type 0x1C

# RSN capabilities (802.11-2020 Figure 9-257)
CAP_MFPR = 1 << 6
CAP_MFPC = 1 << 7

RSNXE_BITS = {4: "protected-twt", 5: "sae-h2e", 6: "sae-pk", 8: "secure-ltf",
              9: "secure-rtt", 10: "protected-negotiation"}


class MalformedElement(ValueError):
    """An element that breaks its layout; the BSS it came from is "unknown"."""


class _Field(Protocol):
    @property
    def name(self) -> str: ...

    def read(self, view: memoryview, off: int) -> tuple[object, int]:
        """Read at ``off``; return the value and the next offset, or raise if cut short."""


def _need(view: memoryview, off: int, size: int, what: str) -> None:
    if off + size > len(view):
        raise MalformedElement(f"{what}: needs {size} bytes at offset {off}, "
                               f"{len(view) - off} left")


@dataclass(frozen=True, slots=True)
class U8:
    name: str

    def read(self, view: memoryview, off: int) -> tuple[object, int]:
        _need(view, off, 1, self.name)
        return view[off], off + 1


@dataclass(frozen=True, slots=True)
class U16:
    name: str

    def read(self, view: memoryview, off: int) -> tuple[object, int]:
        _need(view, off, 2, self.name)
        return struct.unpack_from("<H", view, off)[0], off + 2


def _suite(view: memoryview, off: int) -> Suite:
    high, low, kind = struct.unpack_from(">HBB", view, off)
    return Suite(high << 8 | low, kind)


@dataclass(frozen=True, slots=True)
class SuiteField:
    name: str

    def read(self, view: memoryview, off: int) -> tuple[object, int]:
        _need(view, off, 4, self.name)
        return _suite(view, off), off + 4


@dataclass(frozen=True, slots=True)
class CountedList:
    """A little-endian 16-bit count, then that many items of ``size`` bytes."""

    name: str
    size: int

    def read(self, view: memoryview, off: int) -> tuple[object, int]:
        _need(view, off, 2, f"{self.name} count")
        (count,) = struct.unpack_from("<H", view, off)
        off += 2
        _need(view, off, count * self.size, f"{self.name} ({count} entries)")
        items = [view[off + i * self.size: off + (i + 1) * self.size] for i in range(count)]
        if self.size == 4:
            return tuple(_suite(v, 0) for v in items), off + count * 4
        return tuple(bytes(v) for v in items), off + count * self.size


@dataclass(frozen=True, slots=True)
class Octets:
    """A fixed number of octets (a MAC address)."""

    name: str
    size: int

    def read(self, view: memoryview, off: int) -> tuple[object, int]:
        _need(view, off, self.size, self.name)
        return bytes(view[off: off + self.size]), off + self.size


@dataclass(frozen=True, slots=True)
class LengthPrefixed:
    """One length octet, then that many octets (the SSID inside the OWE transition)."""

    name: str
    maximum: int

    def read(self, view: memoryview, off: int) -> tuple[object, int]:
        _need(view, off, 1, f"{self.name} length")
        size = view[off]
        if size > self.maximum:
            raise MalformedElement(f"{self.name}: {size} bytes, at most {self.maximum}")
        _need(view, off + 1, size, self.name)
        return bytes(view[off + 1: off + 1 + size]), off + 1 + size


# 802.11-2020 Figure 9-256: every field after Version is optional from the end.
RSN_LAYOUT: tuple[_Field, ...] = (
    U16("version"), SuiteField("group"), CountedList("pairwise", 4), CountedList("akms", 4),
    U16("capabilities"), CountedList("pmkids", 16), SuiteField("group_mgmt"),
)
# The WPA vendor element after its OUI and type (the pre-standard RSN).
WPA_LAYOUT: tuple[_Field, ...] = (
    U16("version"), SuiteField("group"), CountedList("pairwise", 4), CountedList("akms", 4),
    U16("capabilities"),
)
# Wi-Fi Alliance OWE transition element after its OUI and type.
OWE_TRANSITION_LAYOUT: tuple[_Field, ...] = (
    Octets("bssid", 6), LengthPrefixed("ssid", MAX_SSID), U8("op_class"), U8("channel"),
)


def read_layout(layout: tuple[_Field, ...], view: memoryview) -> tuple[dict[str, object], int]:
    """Read the fields present; return them and the count of trailing bytes."""
    values: dict[str, object] = {}
    off = 0
    for field in layout:
        if off == len(view):
            break
        values[field.name], off = field.read(view, off)
    return values, len(view) - off


@dataclass(frozen=True, slots=True)
class RsnInfo:
    """The RSN element (or the WPA element, ``wpa=True``) with defaults filled in."""

    version: int
    group: Suite
    pairwise: tuple[Suite, ...]
    akms: tuple[Suite, ...]
    capabilities: int = 0
    pmkids: tuple[bytes, ...] = ()
    group_mgmt: Suite | None = None
    akms_defaulted: bool = False  # the element stopped before its AKM list
    trailing: int = 0
    wpa: bool = False

    @property
    def mfp_required(self) -> bool:
        return bool(self.capabilities & CAP_MFPR)

    @property
    def mfp_capable(self) -> bool:
        return bool(self.capabilities & CAP_MFPC)

    @property
    def mfp(self) -> str:
        return "required" if self.mfp_required else "capable" if self.mfp_capable else "off"


def _security_element(values: Mapping[str, object], trailing: int, oui: int,
                      wpa: bool) -> RsnInfo:
    what = "WPA" if wpa else "RSN"
    version = values.get("version")
    if version != 1:
        raise MalformedElement(f"{what} version {version}, only 1 is defined")
    default_cipher = Suite(oui, 2 if wpa else 4)  # TKIP for WPA, CCMP-128 for RSN
    default_akm = Suite(oui, 1)  # 802.1X
    caps = values.get("capabilities", 0)
    mgmt = values.get("group_mgmt")
    if mgmt is None and not wpa and isinstance(caps, int) and caps & CAP_MFPC:
        mgmt = Suite(IEEE_OUI, 6)  # BIP-CMAC-128 is the default with MFP
    pairwise = values.get("pairwise", (default_cipher,))
    akms = values.get("akms", (default_akm,))
    group = values.get("group", default_cipher)
    pmkids = values.get("pmkids", ())
    assert mgmt is None or isinstance(mgmt, Suite)
    assert isinstance(pairwise, tuple)
    assert isinstance(akms, tuple)
    assert isinstance(group, Suite)
    assert isinstance(caps, int)
    assert isinstance(pmkids, tuple)
    if "pairwise" in values and not pairwise:
        raise MalformedElement(f"{what} pairwise cipher list is empty")
    if "akms" in values and not akms:
        raise MalformedElement(f"{what} AKM list is empty")
    return RsnInfo(version, group, pairwise, akms, caps, pmkids, mgmt,
                   "akms" not in values, trailing, wpa)


def parse_rsn(body: memoryview) -> RsnInfo:
    values, trailing = read_layout(RSN_LAYOUT, body)
    return _security_element(values, trailing, IEEE_OUI, wpa=False)


def parse_wpa(body: memoryview) -> RsnInfo:
    values, trailing = read_layout(WPA_LAYOUT, body)
    return _security_element(values, trailing, MS_OUI, wpa=True)


@dataclass(frozen=True, slots=True)
class OweTransition:
    """Points from an open BSS to its hidden OWE twin (or back)."""

    bssid: str
    ssid: bytes
    op_class: int | None = None
    channel: int | None = None


def parse_owe_transition(body: memoryview) -> OweTransition:
    values, _ = read_layout(OWE_TRANSITION_LAYOUT, body)
    bssid, ssid = values.get("bssid"), values.get("ssid")
    if not isinstance(bssid, bytes) or not isinstance(ssid, bytes):
        raise MalformedElement("OWE transition element without BSSID and SSID")
    op_class, channel = values.get("op_class"), values.get("channel")
    return OweTransition(":".join(f"{b:02x}" for b in bssid), ssid,
                         op_class if isinstance(op_class, int) else None,
                         channel if isinstance(channel, int) else None)


@dataclass(frozen=True, slots=True)
class Rsnxe:
    """RSN extension element: a bit field whose length sits in its first 4 bits."""

    bits: int

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for bit, name in sorted(RSNXE_BITS.items()) if self.bits >> bit & 1)


def parse_rsnxe(body: memoryview) -> Rsnxe:
    if len(body) == 0:
        return Rsnxe(0)
    declared = (body[0] & 0x0F) + 1
    if declared > len(body):
        raise MalformedElement(f"RSNXE declares {declared} octets, has {len(body)}")
    return Rsnxe(int.from_bytes(bytes(body[:declared]), "little"))


@dataclass(frozen=True, slots=True)
class BssElements:
    """What the classifier needs from a BSS's elements."""

    ssid: bytes | None = None
    rsn: RsnInfo | None = None
    wpa: RsnInfo | None = None
    owe_transition: OweTransition | None = None
    rsnxe: Rsnxe | None = None
    element_ids: tuple[int, ...] = ()


def iter_elements(ies: bytes | memoryview) -> Iterator[tuple[int, memoryview]]:
    """Yield ``(element id, body)``; raise on an element that runs past the end."""
    view = memoryview(ies)
    off = 0
    while off < len(view):
        if off + 2 > len(view):
            raise MalformedElement(f"truncated element header at offset {off}")
        eid, length = view[off], view[off + 1]
        end = off + 2 + length
        if end > len(view):
            raise MalformedElement(f"element {eid} at offset {off} claims {length} bytes, "
                                   f"{len(view) - off - 2} left")
        yield eid, view[off + 2: end]
        off = end


def parse_elements(ies: bytes | memoryview) -> BssElements:
    """Parse a BSS's element list; raise :class:`MalformedElement` on anything broken."""
    found: dict[str, object] = {}
    ids: list[int] = []

    def once(key: str, value: object) -> None:
        if key in found:
            raise MalformedElement(f"more than one {key} element")
        found[key] = value

    for eid, body in iter_elements(ies):
        ids.append(eid)
        if eid == EID_SSID:
            if len(body) > MAX_SSID:
                raise MalformedElement(f"SSID of {len(body)} bytes, at most {MAX_SSID}")
            once("ssid", bytes(body))
        elif eid == EID_RSN:
            once("rsn", parse_rsn(body))
        elif eid == EID_RSNXE:
            once("rsnxe", parse_rsnxe(body))
        elif eid == EID_VENDOR:
            if len(body) < 3:
                raise MalformedElement(f"vendor element of {len(body)} bytes has no OUI")
            oui = int.from_bytes(bytes(body[:3]), "big")
            kind = body[3] if len(body) > 3 else None
            if oui == MS_OUI and kind == WPA_TYPE:
                once("wpa", parse_wpa(body[4:]))
            elif oui == WFA_OUI and kind == OWE_TRANSITION_TYPE:
                once("owe_transition", parse_owe_transition(body[4:]))
    return BssElements(
        ssid=_typed(found.get("ssid"), bytes), rsn=_typed(found.get("rsn"), RsnInfo),
        wpa=_typed(found.get("wpa"), RsnInfo),
        owe_transition=_typed(found.get("owe_transition"), OweTransition),
        rsnxe=_typed(found.get("rsnxe"), Rsnxe), element_ids=tuple(ids),
    )


def _typed(value: object, kind: type[_T]) -> _T | None:
    return value if isinstance(value, kind) else None
