"""802.11 management frames from capture files: radiotap, beacons and probe responses.

A monitor interface (``iw dev wlan0 interface add mon0 type monitor``, or hwsim's
``hwsim0``) captures with link type 127, a radiotap header before each 802.11 frame;
some tools write bare 802.11 (link type 105). Only what ``wifi classify`` needs is read,
at fixed offsets: the radiotap flags (FCS present, FCS failed) and channel frequency,
then the management header's BSSID, the capability field's Privacy bit, and the
elements, which go to the same parser and classifier as the daemon's scan results.

A frame too short for its own headers raises :class:`MalformedFrame` (the caller
counts and skips it); elements that do not parse are the classifier's business, which
makes the BSS "unknown" (fail closed).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from edgeguard.wifi.ie import MalformedElement, iter_elements

__all__ = [
    "BEACON",
    "DOT11_LINKTYPES",
    "LINKTYPE_IEEE802_11",
    "LINKTYPE_IEEE802_11_RADIOTAP",
    "PROBE_RESPONSE",
    "MalformedFrame",
    "MgmtFrame",
    "Radiotap",
    "channel_of",
    "parse_frame",
    "parse_radiotap",
]

LINKTYPE_IEEE802_11 = 105
LINKTYPE_IEEE802_11_RADIOTAP = 127
DOT11_LINKTYPES = frozenset({LINKTYPE_IEEE802_11, LINKTYPE_IEEE802_11_RADIOTAP})

BEACON, PROBE_RESPONSE = 8, 5
_MGMT_HEADER = 24  # frame control, duration, addr1..3, sequence control
_FIXED_FIELDS = 12  # timestamp (8), beacon interval (2), capability (2)
_CAPABILITY_AT = _MGMT_HEADER + 10
CAP_PRIVACY = 0x0010
EID_DS_PARAMETERS = 3
FCS_LEN = 4

# radiotap (radiotap.org): present-bitmap bits of the first four fields, their sizes
# and alignments, and the flags we read.
_RT_TSFT, _RT_FLAGS, _RT_RATE, _RT_CHANNEL = 0, 1, 2, 3
_RT_EXT = 31
_RT_FLAG_FCS = 0x10  # the frame ends with its 4-byte FCS
_RT_FLAG_BAD_FCS = 0x40  # ... and the FCS check failed


class MalformedFrame(ValueError):
    """A frame too short or inconsistent for its own headers."""


@dataclass(frozen=True, slots=True)
class Radiotap:
    length: int
    fcs: bool = False
    bad_fcs: bool = False
    freq_mhz: int | None = None


@dataclass(frozen=True, slots=True)
class MgmtFrame:
    """A beacon or probe response."""

    subtype: int
    bssid: str
    capability: int
    ies: bytes
    freq_mhz: int | None = None
    bad_fcs: bool = False

    @property
    def privacy(self) -> bool:
        return bool(self.capability & CAP_PRIVACY)

    @property
    def kind(self) -> str:
        return "beacon" if self.subtype == BEACON else "probe-response"

    def channel(self) -> int | None:
        """From the DS Parameter Set element, else from the radio's frequency."""
        try:
            for eid, body in iter_elements(self.ies):
                if eid == EID_DS_PARAMETERS and len(body) == 1:
                    return int(body[0])
        except MalformedElement:
            pass
        return channel_of(self.freq_mhz) if self.freq_mhz else None


def channel_of(freq_mhz: int) -> int | None:
    """IEEE channel number of a centre frequency (2.4, 5 and 6 GHz bands)."""
    if freq_mhz == 2484:
        return 14
    if 2412 <= freq_mhz <= 2472:
        return (freq_mhz - 2407) // 5
    if 5955 <= freq_mhz <= 7115:
        return (freq_mhz - 5950) // 5
    if 5000 <= freq_mhz <= 5900:
        return (freq_mhz - 5000) // 5
    return None


def parse_radiotap(buf: bytes | memoryview) -> Radiotap:
    """The radiotap header's length, FCS flags and channel frequency."""
    if len(buf) < 8:
        raise MalformedFrame(f"radiotap header needs 8 bytes, frame has {len(buf)}")
    version, _pad, length, present = struct.unpack_from("<BBHI", buf, 0)
    if version != 0:
        raise MalformedFrame(f"radiotap version {version}, only 0 exists")
    if length < 8 or length > len(buf):
        raise MalformedFrame(f"radiotap length {length} outside 8..{len(buf)}")
    off, word = 8, present
    while word & (1 << _RT_EXT):  # extended present bitmaps follow the first
        if off + 4 > length:
            raise MalformedFrame("radiotap present bitmaps run past the header")
        word = struct.unpack_from("<I", buf, off)[0]
        off += 4
    flags, freq = 0, None
    if present & (1 << _RT_TSFT):
        off = ((off + 7) & ~7) + 8
    if present & (1 << _RT_FLAGS):
        if off + 1 > length:
            raise MalformedFrame("radiotap flags field past the header")
        flags = buf[off]
        off += 1
    if present & (1 << _RT_RATE):
        off += 1
    if present & (1 << _RT_CHANNEL):
        off = (off + 1) & ~1
        if off + 4 > length:
            raise MalformedFrame("radiotap channel field past the header")
        freq = struct.unpack_from("<H", buf, off)[0] or None
    return Radiotap(length, bool(flags & _RT_FLAG_FCS), bool(flags & _RT_FLAG_BAD_FCS), freq)


def parse_frame(data: bytes | memoryview, linktype: int) -> MgmtFrame | None:
    """A beacon or probe response from one captured frame; None for any other frame."""
    view = memoryview(data)
    radio = Radiotap(0)
    if linktype == LINKTYPE_IEEE802_11_RADIOTAP:
        radio = parse_radiotap(view)
    elif linktype != LINKTYPE_IEEE802_11:
        raise MalformedFrame(f"link type {linktype} is not 802.11")
    end = len(view) - (FCS_LEN if radio.fcs else 0)
    frame = view[radio.length:end]
    if len(frame) < 2:
        raise MalformedFrame(f"802.11 frame of {len(frame)} bytes has no frame control")
    fc = frame[0]
    ftype, subtype = (fc >> 2) & 3, fc >> 4
    if ftype != 0 or subtype not in (BEACON, PROBE_RESPONSE):
        return None
    if len(frame) < _MGMT_HEADER + _FIXED_FIELDS:
        raise MalformedFrame(f"{'beacon' if subtype == BEACON else 'probe response'} of "
                             f"{len(frame)} bytes, its fixed fields need "
                             f"{_MGMT_HEADER + _FIXED_FIELDS}")
    bssid = ":".join(f"{b:02x}" for b in frame[16:22])
    capability = struct.unpack_from("<H", frame, _CAPABILITY_AT)[0]
    return MgmtFrame(subtype, bssid, capability, bytes(frame[_MGMT_HEADER + _FIXED_FIELDS:]),
                     radio.freq_mhz, radio.bad_fcs)
