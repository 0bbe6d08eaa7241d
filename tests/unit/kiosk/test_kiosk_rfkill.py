"""Bluetooth off: struct rfkill_event both ways, and the revert of an unblock, over a
SOCK_SEQPACKET socketpair standing in for /dev/rfkill (one event per read, like it)."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kiosk_harness import Kiosk, kiosk_policy

from edgeguard.kiosk.rfkill import EVENT, Op, RadioType, RfkillEvent

BT, WLAN = RadioType.BLUETOOTH, RadioType.WLAN


@pytest.fixture
def kiosk(tmp_path: Path) -> Iterator[Kiosk]:
    k = Kiosk(tmp_path, kiosk_policy(tmp_path))
    yield k
    k.close()


def test_struct_layout_matches_linux_rfkill_h() -> None:
    assert EVENT.size == 8  # RFKILL_EVENT_SIZE_V1
    ev = RfkillEvent(7, BT, Op.CHANGE, 1, 0)
    assert ev.pack() == struct.pack("=I", 7) + bytes([2, 2, 1, 0])
    assert RfkillEvent.unpack(ev.pack() + b"\x01") == ev  # v2 hard_block_reasons ignored
    with pytest.raises(ValueError, match="short"):
        RfkillEvent.unpack(b"\x00" * 7)


def test_start_blocks_all_bluetooth_and_wwan(kiosk: Kiosk) -> None:
    kiosk.start()
    assert kiosk.radio_written() == [RfkillEvent(0, BT, Op.CHANGE_ALL, 1, 0),
                                     RfkillEvent(0, RadioType.WWAN, Op.CHANGE_ALL, 1, 0)]
    rec = kiosk.records("rfkill-block-all")
    assert [r["edgeguard"]["rfkill"]["type"] for r in rec] == ["bluetooth", "wwan"]
    assert all(r["event"]["outcome"] == "success" for r in rec)


def test_unblock_by_someone_else_is_reverted_and_audited(kiosk: Kiosk) -> None:
    comp = kiosk.start()
    kiosk.radio_written()
    kiosk.radio_send(RfkillEvent(3, BT, Op.ADD, 1, 0))  # coldplug: blocked already
    assert kiosk.radio_written() == []
    kiosk.radio_send(RfkillEvent(3, BT, Op.CHANGE, 0, 0))  # `rfkill unblock bluetooth`
    assert kiosk.radio_written() == [RfkillEvent(3, BT, Op.CHANGE, 1, 0)]
    kiosk.radio_send(RfkillEvent(3, BT, Op.CHANGE, 1, 0))  # our own block comes back
    assert kiosk.radio_written() == []
    alert = kiosk.records("radio-bluetooth-unblocked")
    assert len(alert) == 1
    assert alert[0]["rule"]["id"] == "kiosk-bluetooth"
    revert = kiosk.records("rfkill-unblock-reverted")
    assert len(revert) == 1
    assert revert[0]["event"]["outcome"] == "success"
    assert revert[0]["edgeguard"]["rfkill"] == {"index": 3, "type": "bluetooth",
                                                 "op": "change", "soft": False, "hard": False}
    assert comp.counters()["rfkill_reverted"] == 1


def test_repeated_unblocks_are_all_reverted(kiosk: Kiosk) -> None:
    kiosk.start()
    kiosk.radio_written()
    for _ in range(3):
        kiosk.radio_send(RfkillEvent(1, BT, Op.CHANGE, 0, 0))
    assert kiosk.radio_written() == [RfkillEvent(1, BT, Op.CHANGE, 1, 0)] * 3
    assert len(kiosk.records("radio-bluetooth-unblocked")) == 1  # repeats suppressed
    assert len(kiosk.records("rfkill-unblock-reverted")) == 3  # never the enforcement


def test_new_unblocked_radio_is_blocked(kiosk: Kiosk) -> None:
    kiosk.start()
    kiosk.radio_written()
    kiosk.radio_send(RfkillEvent(9, BT, Op.ADD, 0, 0))
    assert kiosk.radio_written() == [RfkillEvent(9, BT, Op.CHANGE, 1, 0)]
    assert kiosk.records("radio-bluetooth-radio")


def test_wifi_radios_are_not_ours(kiosk: Kiosk) -> None:
    kiosk.start()
    kiosk.radio_written()
    kiosk.radio_send(RfkillEvent(0, WLAN, Op.CHANGE, 0, 0))
    assert kiosk.radio_written() == []


def test_bluetooth_allowed_leaves_radios_alone(tmp_path: Path) -> None:
    k = Kiosk(tmp_path, kiosk_policy(tmp_path, "  bluetooth: true\n  block_radios: []\n"))
    k.start()
    k.radio_send(RfkillEvent(3, BT, Op.CHANGE, 0, 0))
    assert k.radio_written() == []
    assert not k.records("rfkill-unblock-reverted")
    k.close()


def test_monitor_mode_reports_but_does_not_block(tmp_path: Path) -> None:
    k = Kiosk(tmp_path, kiosk_policy(tmp_path, "  mode: monitor\n"))
    k.start()
    k.radio_send(RfkillEvent(3, BT, Op.CHANGE, 0, 0))
    assert k.radio_written() == []
    assert k.records("radio-bluetooth-unblocked")[0]["edgeguard"]["mode"] == "monitor"
    k.close()


def test_reload_to_bluetooth_off_blocks_a_known_unblocked_radio(tmp_path: Path) -> None:
    k = Kiosk(tmp_path, kiosk_policy(tmp_path, "  bluetooth: true\n"))
    comp = k.start()
    k.radio_send(RfkillEvent(4, BT, Op.ADD, 0, 0))
    comp.reload(kiosk_policy(tmp_path))
    written = k.radio_written()
    assert RfkillEvent(0, BT, Op.CHANGE_ALL, 1, 0) in written
    assert RfkillEvent(4, BT, Op.CHANGE, 1, 0) in written
    k.close()


def test_short_events_are_counted_not_fatal(kiosk: Kiosk) -> None:
    comp = kiosk.start()
    assert kiosk.radio_end is not None
    kiosk.radio_end.send(b"\x01\x02\x03")
    kiosk.settle()
    kiosk.radio_send(RfkillEvent(2, BT, Op.CHANGE, 0, 0))
    assert comp.counters()["rfkill_malformed"] == 1
    assert RfkillEvent(2, BT, Op.CHANGE, 1, 0) in kiosk.radio_written()


def test_no_rfkill_device_is_not_fatal(tmp_path: Path) -> None:
    k = Kiosk(tmp_path, kiosk_policy(tmp_path))
    comp = k.start(rfkill=False)
    assert comp.radio is None
    assert comp.radio_error is not None
    k.close()


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=8, max_size=12))
def test_fuzz_any_event_decodes(data: bytes) -> None:
    ev = RfkillEvent.unpack(data)
    assert ev.pack() == data[:8]
    assert ev.type_name
    assert ev.op_name


def test_block_radios_keeps_wlan_off_when_asked(tmp_path: Path) -> None:
    k = Kiosk(tmp_path, kiosk_policy(tmp_path, "  block_radios: [wwan, wlan]\n"))
    k.start()
    assert k.radio_written() == [RfkillEvent(0, BT, Op.CHANGE_ALL, 1, 0),
                                 RfkillEvent(0, RadioType.WWAN, Op.CHANGE_ALL, 1, 0),
                                 RfkillEvent(0, WLAN, Op.CHANGE_ALL, 1, 0)]
    k.radio_send(RfkillEvent(2, WLAN, Op.CHANGE, 0, 0))
    assert k.radio_written() == [RfkillEvent(2, WLAN, Op.CHANGE, 1, 0)]
    k.radio_send(RfkillEvent(5, RadioType.WWAN, Op.CHANGE, 0, 0))
    assert k.radio_written() == [RfkillEvent(5, RadioType.WWAN, Op.CHANGE, 1, 0)]
    assert k.records("radio-wwan-unblocked")
    k.close()
