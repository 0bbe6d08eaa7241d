"""BitTorrent wire signatures, as pure functions of the first payload bytes.

Each test looks only at what the prefilter passes (the first bytes of a TCP payload,
a UDP datagram) and at fixed offsets, like the capture filter itself:

* peer wire handshake: ``\\x13BitTorrent protocol`` (BEP 3), info-hash at 28..48;
* HTTP tracker: ``GET /announce?info_hash=`` / ``/scrape?info_hash=`` (BEP 3, 48) and
  the tracker's bencoded reply (``d8:complete``, ``d8:interval``, ``d5:files``);
* ``.torrent`` metainfo: ``GET ....torrent``, ``Content-Type: application/x-bittorrent``,
  a body starting ``d8:announce`` / ``d13:announce-list`` / ``d4:info``;
* UDP tracker connect: protocol id ``0x41727101980`` then action 0 (BEP 15);
* DHT KRPC: bencoded dict whose ``a`` (query) or ``r`` (reply) dict starts with the
  20-byte node ``id`` (BEP 5; BEP 42 replies put ``ip`` first);
* uTP header (BEP 29): version 1, type 0-4, extension 0-2;
* peer-wire messages (BEP 3, 6, 10) inside a uTP DATA packet: length-prefixed, each
  message id with the length it must have (an extended message holds a bencoded dict);
  the messages tile the captured bytes (the last may be cut by the snap length);
* local service discovery: ``BT-SEARCH * HTTP/1.1`` to 239.192.152.143:6771 (BEP 14).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = [
    "HANDSHAKE",
    "LSD_GROUPS",
    "UtpHeader",
    "dht_message",
    "handshake_info_hash",
    "http_tracker_request",
    "is_handshake",
    "is_lsd",
    "is_tracker_response",
    "known_plaintext",
    "peer_wire_messages",
    "torrent_file_request",
    "torrent_file_response",
    "udp_tracker_connect",
    "udp_tracker_connect_reply",
    "utp_data_offset",
    "utp_header",
]

HANDSHAKE = b"\x13BitTorrent protocol"
BEP15_MAGIC = struct.pack("!Q", 0x41727101980)
LSD_GROUPS = frozenset({"239.192.152.143", "ff15::efc0:988f"})
LSD_PORT = 6771

_TRACKER_KEYS = (b"d8:complete", b"d8:interval", b"d5:files", b"d14:failure reason",
                 b"d10:incomplete")
_METAINFO_STARTS = (b"d8:announce", b"d13:announce-list", b"d4:info", b"d7:comment",
                    b"d10:created by")
#: Openings of common plaintext protocols: never an MSE/PE key exchange.
_PLAINTEXT = (b"GET ", b"POST ", b"HEAD ", b"PUT ", b"HTTP/", b"SSH-", b"\x16\x03",
              b"\x17\x03", b"\x15\x03", b"\x14\x03", HANDSHAKE[:4], b"PRI * HTTP/2")


def is_handshake(payload: bytes) -> bool:
    return payload.startswith(HANDSHAKE)


def handshake_info_hash(payload: bytes) -> str | None:
    if len(payload) >= 48 and payload.startswith(HANDSHAKE):
        return payload[28:48].hex()
    return None


def _request_line(payload: bytes) -> bytes:
    end = payload.find(b"\r\n")
    return payload if end < 0 else payload[:end]


def http_tracker_request(payload: bytes) -> str | None:
    """``announce`` / ``scrape`` for a tracker request, else None."""
    if not payload.startswith(b"GET "):
        return None
    line = _request_line(payload)
    if b"info_hash=" not in line:
        return None
    return "scrape" if b"/scrape" in line else "announce"


def is_tracker_response(payload: bytes) -> bool:
    if not payload.startswith(b"HTTP/1."):
        return False
    head = payload[:512]
    return any(key in head for key in _TRACKER_KEYS)


def torrent_file_request(payload: bytes) -> bool:
    if not payload.startswith(b"GET "):
        return False
    parts = _request_line(payload).split(b" ")
    if len(parts) < 2:
        return False
    path = parts[1].split(b"?", 1)[0].lower()
    return path.endswith(b".torrent")


def torrent_file_response(payload: bytes) -> bool:
    """An HTTP response carrying metainfo, or a body segment starting with it."""
    if payload.startswith(_METAINFO_STARTS):
        return True
    if not payload.startswith(b"HTTP/1."):
        return False
    head = payload[:1024].lower()
    if b"content-type: application/x-bittorrent" in head:
        return True
    body = head.find(b"\r\n\r\n")
    return body >= 0 and payload[body + 4:].startswith(_METAINFO_STARTS)


def udp_tracker_connect(payload: bytes) -> int | None:
    """The transaction id of a BEP 15 connect request, else None."""
    if len(payload) >= 16 and payload.startswith(BEP15_MAGIC) and payload[8:12] == b"\0\0\0\0":
        tid: int = struct.unpack_from("!I", payload, 12)[0]
        return tid
    return None


def udp_tracker_connect_reply(payload: bytes) -> int | None:
    """The transaction id of a BEP 15 connect reply (action 0, 16 bytes), else None."""
    if len(payload) >= 16 and payload[:4] == b"\0\0\0\0":
        tid: int = struct.unpack_from("!I", payload, 4)[0]
        return tid
    return None


def dht_message(payload: bytes) -> str | None:
    """``query`` / ``reply`` / ``error`` for a DHT KRPC message, else None."""
    if not payload.startswith(b"d"):
        return None
    head = payload[:64]
    if head.startswith(b"d1:ad") and b"2:id20:" in head:
        return "query"
    if head.startswith(b"d1:rd2:id20:") or (head.startswith(b"d2:ip") and b"1:rd2:id20:" in head):
        return "reply"
    if head.startswith(b"d1:eli") and b"1:y1:e" in payload:
        return "error"
    return None


@dataclass(frozen=True, slots=True)
class UtpHeader:
    type: int  # 0 DATA, 1 FIN, 2 STATE, 3 RESET, 4 SYN
    extension: int
    connection_id: int
    seq_nr: int
    ack_nr: int


def utp_header(payload: bytes) -> UtpHeader | None:
    """A header that obeys BEP 29's rules, else None. One packet is weak evidence (a
    random datagram passes about one time in a thousand): the detector confirms a
    flow by its SYN/STATE exchange or connection-id pairing."""
    if len(payload) < 20:
        return None
    first, ext = payload[0], payload[1]
    kind, version = first >> 4, first & 0x0F
    if version != 1 or kind > 4 or ext > 2:
        return None
    conn, seq, ack = struct.unpack_from("!H", payload, 2)[0], *struct.unpack_from(
        "!HH", payload, 16)
    if conn == 0:
        return None
    return UtpHeader(kind, ext, conn, seq, ack)


def utp_data_offset(payload: bytes) -> int | None:
    """Where a uTP packet's payload starts, after the extension chain."""
    if len(payload) < 20:
        return None
    ext, off = payload[1], 20
    for _ in range(8):
        if ext == 0:
            return off
        if off + 2 > len(payload):
            return None
        ext, length = payload[off], payload[off + 1]
        off += 2 + length
    return None


#: message id -> its exact length prefix (BEP 3 core, BEP 6 fast extension)
_FIXED_LENGTH = {0: 1, 1: 1, 2: 1, 3: 1, 4: 5, 6: 13, 8: 13, 9: 3, 13: 5, 14: 1, 15: 1,
                 16: 13, 17: 5}
_BITFIELD, _PIECE, _EXTENDED = 5, 7, 20
#: the largest message a client sends (a 16 KiB block, a bitfield of a huge torrent)
_MAX_MESSAGE = 1 << 17


def _message_ok(data: bytes, off: int, length: int) -> bool:
    kind = data[off + 4]
    fixed = _FIXED_LENGTH.get(kind)
    if fixed is not None:
        return length == fixed
    if kind == _BITFIELD:
        return length >= 2
    if kind == _PIECE:
        return 10 <= length <= (1 << 15) + 9
    if kind == _EXTENDED:
        # extension id, then a bencoded dict (handshake, ut_pex, ut_metadata)
        return length >= 3 and (off + 6 >= len(data) or data[off + 6:off + 7] == b"d")
    return False


def peer_wire_messages(data: bytes) -> bool:
    """``data`` (a uTP DATA packet's payload) is one or more BitTorrent peer-wire
    messages. Keep-alives alone (length 0) do not count."""
    off, seen, n = 0, 0, len(data)
    for _ in range(64):
        if off == n:
            return seen > 0
        if off + 5 > n:  # a keep-alive, or a header cut by the snap length
            return seen > 0
        length = struct.unpack_from("!I", data, off)[0]
        if length == 0:
            off += 4
            continue
        if length > _MAX_MESSAGE or not _message_ok(data, off, length):
            return False
        seen += 1
        off += 4 + length
        if off > n:
            return True  # the last message is cut by the snap length
    return False


def is_lsd(dst_ip: str, dport: int, payload: bytes) -> bool:
    return dport == LSD_PORT and dst_ip in LSD_GROUPS and payload.startswith(b"BT-SEARCH ")


def known_plaintext(payload: bytes) -> bool:
    """The opening of a protocol we can name (HTTP, TLS, SSH, BitTorrent...)."""
    return payload.startswith(_PLAINTEXT)
