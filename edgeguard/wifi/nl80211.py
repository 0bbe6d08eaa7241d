"""nl80211 messages as bytes: decode what the kernel sends, encode the requests we make.

Why our own codec on top of pyroute2's socket: pyroute2's ``nl80211cmd`` decodes a
BSS's elements with its RSN parser as soon as the attribute is read, and that parser is
the part we cannot trust (see :mod:`edgeguard.wifi.ie`). So pyroute2 resolves the
family and joins the multicast groups, and the datagrams themselves, live or recorded,
go through this one decoder. Layouts (``linux/netlink.h``, ``linux/genetlink.h``,
``linux/nl80211.h``)::

    nlmsghdr   u32 len, u16 type, u16 flags, u32 seq, u32 pid        (16 bytes)
    genlmsghdr u8 cmd, u8 version, u16 reserved                      (4 bytes)
    nlattr     u16 len, u16 type (bit 15 nested, bit 14 byte order), payload, pad to 4
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

__all__ = [
    "BssInfo",
    "Done",
    "MalformedNetlink",
    "NetlinkError",
    "Nl80211Message",
    "decode",
    "encode",
]

NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_DUMP = 0x300
NLA_TYPE_MASK = 0x3FFF
NLA_F_NESTED = 0x8000

CMD_GET_INTERFACE = 5
CMD_NEW_INTERFACE = 7
CMD_GET_SCAN = 32
CMD_TRIGGER_SCAN = 33
CMD_NEW_SCAN_RESULTS = 34
CMD_SCAN_ABORTED = 35
CMD_CONNECT = 46
CMD_ROAM = 47
CMD_DISCONNECT = 48
CMD_NAMES = {
    CMD_NEW_INTERFACE: "new-interface", CMD_TRIGGER_SCAN: "trigger-scan",
    CMD_NEW_SCAN_RESULTS: "new-scan-results", CMD_SCAN_ABORTED: "scan-aborted",
    CMD_CONNECT: "connect", CMD_ROAM: "roam", CMD_DISCONNECT: "disconnect",
}  # fmt: skip

ATTR_WIPHY = 1
ATTR_IFINDEX = 3
ATTR_IFNAME = 4
ATTR_IFTYPE = 5
ATTR_MAC = 6
ATTR_BSS = 47
ATTR_SSID = 52
ATTR_REASON_CODE = 54
ATTR_DISCONNECTED_BY_AP = 71
ATTR_STATUS_CODE = 72

BSS_BSSID = 1
BSS_FREQUENCY = 2
BSS_CAPABILITY = 5
BSS_INFORMATION_ELEMENTS = 6
BSS_STATUS = 9
BSS_BEACON_IES = 11

BSS_STATUS_ASSOCIATED = 1
IFTYPE_STATION = 2
CAPABILITY_PRIVACY = 0x0010
REASON_DEAUTH_LEAVING = 3  # 802.11 reason code 3: leaving the BSS

_NLMSGHDR = struct.Struct("=IHHII")
_GENLHDR = struct.Struct("=BBH")
_NLATTR = struct.Struct("=HH")


class MalformedNetlink(ValueError):
    """A datagram that breaks the netlink framing; counted and skipped."""


def mac_text(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


@dataclass(frozen=True, slots=True)
class BssInfo:
    """One entry of the kernel's scan table (``NL80211_ATTR_BSS``)."""

    bssid: str
    frequency: int | None = None
    capability: int | None = None
    ies: bytes | None = None  # probe response or beacon elements, whichever is newer
    beacon_ies: bytes | None = None
    status: int | None = None

    @property
    def privacy(self) -> bool:
        return bool((self.capability or 0) & CAPABILITY_PRIVACY)

    @property
    def associated(self) -> bool:
        return self.status == BSS_STATUS_ASSOCIATED


@dataclass(frozen=True, slots=True)
class Nl80211Message:
    """The attributes of one nl80211 message that the Wi-Fi watcher uses."""

    cmd: int
    seq: int = 0
    ifindex: int | None = None
    ifname: str | None = None
    iftype: int | None = None
    mac: str | None = None  # CONNECT / ROAM: the BSSID
    ssid: bytes | None = None
    status_code: int | None = None
    reason_code: int | None = None
    by_ap: bool = False
    bss: BssInfo | None = None

    @property
    def name(self) -> str:
        return CMD_NAMES.get(self.cmd, f"cmd-{self.cmd}")


@dataclass(frozen=True, slots=True)
class Done:
    seq: int


@dataclass(frozen=True, slots=True)
class NetlinkError:
    seq: int
    code: int  # a negative errno; 0 is an acknowledgement


def iter_attrs(view: memoryview) -> Iterator[tuple[int, memoryview]]:
    off = 0
    while off + _NLATTR.size <= len(view):
        length, kind = _NLATTR.unpack_from(view, off)
        if length < _NLATTR.size or off + length > len(view):
            raise MalformedNetlink(f"attribute {kind & NLA_TYPE_MASK} of {length} bytes "
                                   f"at offset {off}, {len(view) - off} left")
        yield kind & NLA_TYPE_MASK, view[off + _NLATTR.size: off + length]
        off += (length + 3) & ~3


def _u(view: memoryview, fmt: str) -> int:
    if len(view) < struct.calcsize(fmt):
        raise MalformedNetlink(f"attribute too short for {fmt}")
    value: int = struct.unpack_from(fmt, view)[0]
    return value


def _mac(view: memoryview) -> str:
    if len(view) != 6:
        raise MalformedNetlink(f"MAC attribute of {len(view)} bytes")
    return mac_text(bytes(view))


def decode_bss(view: memoryview) -> BssInfo:
    found: dict[int, memoryview] = dict(iter_attrs(view))
    if BSS_BSSID not in found:
        raise MalformedNetlink("BSS without a BSSID")
    get = found.get
    freq, cap, status = get(BSS_FREQUENCY), get(BSS_CAPABILITY), get(BSS_STATUS)
    ies, beacon = get(BSS_INFORMATION_ELEMENTS), get(BSS_BEACON_IES)
    return BssInfo(
        bssid=_mac(found[BSS_BSSID]),
        frequency=_u(freq, "=I") if freq is not None else None,
        capability=_u(cap, "=H") if cap is not None else None,
        ies=bytes(ies) if ies is not None else None,
        beacon_ies=bytes(beacon) if beacon is not None else None,
        status=_u(status, "=I") if status is not None else None,
    )


def _message(cmd: int, seq: int, view: memoryview) -> Nl80211Message:
    fields: dict[str, object] = {}
    for kind, value in iter_attrs(view):
        if kind == ATTR_IFINDEX:
            fields["ifindex"] = _u(value, "=I")
        elif kind == ATTR_IFNAME:
            fields["ifname"] = bytes(value).split(b"\0", 1)[0].decode("utf-8", "replace")
        elif kind == ATTR_IFTYPE:
            fields["iftype"] = _u(value, "=I")
        elif kind == ATTR_MAC:
            fields["mac"] = _mac(value)
        elif kind == ATTR_SSID:
            fields["ssid"] = bytes(value)
        elif kind == ATTR_STATUS_CODE:
            fields["status_code"] = _u(value, "=H")
        elif kind == ATTR_REASON_CODE:
            fields["reason_code"] = _u(value, "=H")
        elif kind == ATTR_DISCONNECTED_BY_AP:
            fields["by_ap"] = True
        elif kind == ATTR_BSS:
            fields["bss"] = decode_bss(value)
    return Nl80211Message(cmd, seq, **fields)  # type: ignore[arg-type]


def decode(data: bytes, family_id: int) -> Iterator[Nl80211Message | Done | NetlinkError]:
    """Every message in one datagram; raise :class:`MalformedNetlink` on broken framing.

    Messages of other families are skipped (a socket may see control replies).
    """
    for kind, seq, body in messages(data):
        if kind == NLMSG_DONE:
            yield Done(seq)
        elif kind == NLMSG_ERROR:
            yield NetlinkError(seq, _u(body, "=i"))
        elif kind == family_id:
            if len(body) < _GENLHDR.size:
                raise MalformedNetlink("generic netlink header cut short")
            cmd = body[0]
            yield _message(cmd, seq, body[_GENLHDR.size:])


def messages(data: bytes | memoryview, min_tail: int = 4) -> Iterator[tuple[int, int, memoryview]]:
    """``(type, seq, body)`` of every netlink message in one datagram (shared by the
    nl80211 and rtnetlink decoders); :class:`MalformedNetlink` on broken framing, or on
    ``min_tail`` or more stray bytes after the last message."""
    view = memoryview(data)
    off = 0
    while off + _NLMSGHDR.size <= len(view):
        length, kind, _flags, seq, _pid = _NLMSGHDR.unpack_from(view, off)
        if length < _NLMSGHDR.size or off + length > len(view):
            raise MalformedNetlink(f"message of {length} bytes at offset {off}, "
                                   f"{len(view) - off} left")
        body = view[off + _NLMSGHDR.size: off + length]
        off += (length + 3) & ~3
        yield kind, seq, body
    if off < len(view) and len(view) - off >= min_tail:
        raise MalformedNetlink(f"{len(view) - off} stray bytes after the last message")


def attr(kind: int, payload: bytes, nested: bool = False) -> bytes:
    length = _NLATTR.size + len(payload)
    pad = b"\0" * ((4 - length % 4) % 4)
    return _NLATTR.pack(length, kind | (NLA_F_NESTED if nested else 0)) + payload + pad


def encode(family_id: int, cmd: int, attrs: Sequence[bytes], *, seq: int = 0,
           flags: int = 0, pid: int = 0, version: int = 1) -> bytes:
    """One nl80211 message: the requests we send, and the recordings tests replay."""
    payload = _GENLHDR.pack(cmd, version, 0) + b"".join(attrs)
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(payload), family_id, flags, seq, pid) + payload


def encode_done(seq: int) -> bytes:
    return _NLMSGHDR.pack(_NLMSGHDR.size + 4, NLMSG_DONE, 0x2, seq, 0) + b"\0" * 4


def get_scan_request(family_id: int, ifindex: int, seq: int) -> bytes:
    return encode(family_id, CMD_GET_SCAN, [attr(ATTR_IFINDEX, struct.pack("=I", ifindex))],
                  seq=seq, flags=NLM_F_REQUEST | NLM_F_DUMP)


def get_interface_request(family_id: int, seq: int) -> bytes:
    return encode(family_id, CMD_GET_INTERFACE, [], seq=seq, flags=NLM_F_REQUEST | NLM_F_DUMP)


def disconnect_request(family_id: int, ifindex: int, seq: int,
                       reason: int = REASON_DEAUTH_LEAVING) -> bytes:
    return encode(family_id, CMD_DISCONNECT, [
        attr(ATTR_IFINDEX, struct.pack("=I", ifindex)),
        attr(ATTR_REASON_CODE, struct.pack("=H", reason)),
    ], seq=seq, flags=NLM_F_REQUEST | NLM_F_ACK)


def bss_attr(bss: BssInfo) -> bytes:
    """Encode a scan-table entry (the kernel's layout); used to write recordings."""
    parts = [attr(BSS_BSSID, bytes.fromhex(bss.bssid.replace(":", "")))]
    if bss.frequency is not None:
        parts.append(attr(BSS_FREQUENCY, struct.pack("=I", bss.frequency)))
    if bss.capability is not None:
        parts.append(attr(BSS_CAPABILITY, struct.pack("=H", bss.capability)))
    if bss.ies is not None:
        parts.append(attr(BSS_INFORMATION_ELEMENTS, bss.ies))
    if bss.beacon_ies is not None:
        parts.append(attr(BSS_BEACON_IES, bss.beacon_ies))
    if bss.status is not None:
        parts.append(attr(BSS_STATUS, struct.pack("=I", bss.status)))
    return attr(ATTR_BSS, b"".join(parts), nested=True)
