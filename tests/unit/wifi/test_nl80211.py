"""The nl80211 codec: our constants agree with pyroute2's tables, framing errors raise."""

from __future__ import annotations

import asyncio
import json
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyroute2.netlink.nl80211 import NL80211_NAMES, nl80211cmd

from edgeguard.wifi import nl80211 as nl
from edgeguard.wifi.backend import BackendError, LiveBackend, _Pending, sender_of
from edgeguard.wifi.classify import classify
from edgeguard.wifi.nl80211 import BssInfo, Done, MalformedNetlink, NetlinkError, Nl80211Message

FAMILY = 30


def test_command_and_attribute_numbers_match_pyroute2() -> None:
    for name, value in (("GET_SCAN", nl.CMD_GET_SCAN), ("CONNECT", nl.CMD_CONNECT),
                        ("ROAM", nl.CMD_ROAM), ("DISCONNECT", nl.CMD_DISCONNECT),
                        ("NEW_SCAN_RESULTS", nl.CMD_NEW_SCAN_RESULTS),
                        ("GET_INTERFACE", nl.CMD_GET_INTERFACE),
                        ("NEW_INTERFACE", nl.CMD_NEW_INTERFACE)):
        assert NL80211_NAMES[f"NL80211_CMD_{name}"] == value
    attrs = [n for n, _ in nl80211cmd.nla_map]
    for name, value in (("IFINDEX", nl.ATTR_IFINDEX), ("IFNAME", nl.ATTR_IFNAME),
                        ("MAC", nl.ATTR_MAC), ("BSS", nl.ATTR_BSS), ("SSID", nl.ATTR_SSID),
                        ("REASON_CODE", nl.ATTR_REASON_CODE),
                        ("STATUS_CODE", nl.ATTR_STATUS_CODE), ("IFTYPE", nl.ATTR_IFTYPE)):
        assert attrs.index(f"NL80211_ATTR_{name}") == value
    bss = [n for n, _ in nl80211cmd.bss.nla_map]
    for name, value in (("BSSID", nl.BSS_BSSID), ("FREQUENCY", nl.BSS_FREQUENCY),
                        ("CAPABILITY", nl.BSS_CAPABILITY), ("STATUS", nl.BSS_STATUS),
                        ("INFORMATION_ELEMENTS", nl.BSS_INFORMATION_ELEMENTS),
                        ("BEACON_IES", nl.BSS_BEACON_IES)):
        assert bss.index(f"NL80211_BSS_{name}") == value


def test_scan_entry_round_trip() -> None:
    entry = BssInfo("02:00:00:00:01:01", 5180, 0x0411, b"\x00\x04home", b"\x00\x00", 1)
    data = nl.encode(FAMILY, nl.CMD_NEW_SCAN_RESULTS, [nl.bss_attr(entry)], seq=7) \
        + nl.encode_done(7)
    items = list(nl.decode(data, FAMILY))
    assert isinstance(items[0], Nl80211Message)
    assert items[0].bss == entry
    assert items[0].bss.privacy
    assert items[0].bss.associated
    assert items[1] == Done(7)


def test_requests_have_the_documented_layout() -> None:
    raw = nl.disconnect_request(FAMILY, 3, seq=9)
    length, kind, flags, seq, _ = struct.unpack_from("=IHHII", raw)
    assert (length, kind, seq) == (len(raw), FAMILY, 9)
    assert flags == nl.NLM_F_REQUEST | nl.NLM_F_ACK
    assert raw[16] == nl.CMD_DISCONNECT
    (msg,) = nl.decode(raw, FAMILY)
    assert isinstance(msg, Nl80211Message)
    assert (msg.ifindex, msg.reason_code) == (3, 3)
    dump = nl.get_scan_request(FAMILY, 3, seq=1)
    assert struct.unpack_from("=H", dump, 6)[0] & nl.NLM_F_DUMP == nl.NLM_F_DUMP


@pytest.mark.parametrize("data", [
    b"\xff\xff\x00\x00",  # shorter than a header, more than padding
    struct.pack("=IHHII", 100, FAMILY, 0, 0, 0) + b"\0" * 8,  # claims more than it has
    nl.encode(FAMILY, nl.CMD_CONNECT, [struct.pack("=HH", 40, nl.ATTR_MAC) + b"\0" * 4]),
    nl.encode(FAMILY, nl.CMD_CONNECT, [nl.attr(nl.ATTR_MAC, b"\1\2\3")]),  # MAC of 3 bytes
    nl.encode(FAMILY, nl.CMD_CONNECT, [nl.attr(nl.ATTR_IFINDEX, b"\1")]),  # u32 of 1 byte
    nl.encode(FAMILY, nl.CMD_NEW_SCAN_RESULTS,
              [nl.attr(nl.ATTR_BSS, nl.attr(nl.BSS_FREQUENCY, b"\0\0\0\0"), nested=True)]),
])
def test_broken_framing_raises(data: bytes) -> None:
    with pytest.raises(MalformedNetlink):
        list(nl.decode(data, FAMILY))


def test_other_families_are_skipped_and_errors_reported() -> None:
    other = nl.encode(FAMILY + 1, nl.CMD_CONNECT, [])
    err = struct.pack("=IHHII", 36, nl.NLMSG_ERROR, 0, 5, 0) + struct.pack("=i", -95) + b"\0" * 16
    assert list(nl.decode(other + err, FAMILY)) == [NetlinkError(5, -95)]


def test_live_backend_routes_events_and_answers_without_a_kernel() -> None:
    """The datagram path of the live backend: seq 0 is an event, others answer requests."""
    backend = LiveBackend()
    backend.family_id = FAMILY
    events: list[Nl80211Message] = []
    backend._on_event = events.append

    async def main() -> None:
        loop = asyncio.get_running_loop()
        pending = _Pending(loop.create_future())
        backend._pending[4] = pending
        entry = BssInfo("02:00:00:00:01:01", ies=b"")
        backend.datagram(nl.encode(FAMILY, nl.CMD_NEW_SCAN_RESULTS, [nl.bss_attr(entry)],
                                   seq=4) + nl.encode_done(4))
        await asyncio.wait_for(pending.done, 1)
        assert [a.bss for a in pending.messages] == [entry]
        assert len(pending.raw) == 1
        failed = _Pending(loop.create_future())
        backend._pending[5] = failed
        err = struct.pack("=IHHII", 36, nl.NLMSG_ERROR, 0, 5, 0) + struct.pack("=i", -16) \
            + b"\0" * 16
        backend.datagram(err)
        with pytest.raises(BackendError):
            await failed.done

    asyncio.run(main())
    backend.datagram(nl.encode(FAMILY, nl.CMD_DISCONNECT, [nl.attr(nl.ATTR_IFINDEX,
                                                                   struct.pack("=I", 3))]))
    backend.datagram(b"\xff\xff\x00\x00")
    assert [e.cmd for e in events] == [nl.CMD_DISCONNECT]
    assert backend.malformed == 1


def test_a_datagram_not_from_the_kernel_is_counted_and_never_decoded() -> None:
    """Root (or CAP_NET_ADMIN in the daemon's namespace) can send to the nl80211
    multicast groups; a forged "disconnected" or scan result must not be believed."""
    backend = LiveBackend()
    backend.family_id = FAMILY
    events: list[Nl80211Message] = []
    backend._on_event = events.append
    forged = nl.encode(FAMILY, nl.CMD_DISCONNECT, [nl.attr(nl.ATTR_IFINDEX,
                                                           struct.pack("=I", 3))])
    backend.datagram(forged, sender_of((4242, 0)))
    backend.datagram(b"\xff\xff\x00\x00", sender_of((4242, 1)))
    assert (events, backend.foreign, backend.malformed) == ([], 2, 0)
    backend.datagram(forged, sender_of((0, 0)))  # the same bytes from the kernel
    assert [e.cmd for e in events] == [nl.CMD_DISCONNECT]
    assert (sender_of(None), sender_of(()), sender_of(("x", 1))) == (0, 0, 0)


def _datagrams() -> list[bytes]:
    out = []
    for path in sorted((Path(__file__).resolve().parents[2] / "data" / "wifi" / "nl80211")
                       .glob("*.jsonl")):
        for line in path.read_text().splitlines():
            entry = json.loads(line)
            data = entry.get("data")
            out.extend(bytes.fromhex(d) for d in ([data] if isinstance(data, str) else data or []))
    return out


DATAGRAMS = _datagrams()


@settings(max_examples=3000, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(st.binary(max_size=200), st.integers(0, len(DATAGRAMS) - 1), st.integers(0, 4096),
       st.integers(0, 255))
def test_fuzz_decoder_only_raises_malformed(noise: bytes, index: int, where: int,
                                            value: int) -> None:
    base = bytearray(DATAGRAMS[index])
    base[where % len(base)] = value
    for data in (noise, bytes(base), bytes(base[: where % (len(base) + 1)]), noise + base):
        try:
            for item in nl.decode(data, FAMILY):
                if isinstance(item, Nl80211Message) and item.bss and item.bss.ies:
                    classify(item.bss.ies, item.bss.privacy)
        except MalformedNetlink:
            pass
