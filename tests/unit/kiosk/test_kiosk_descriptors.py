"""Class matching on recorded descriptor trees: one generated test per fixture, plus
the parser's edge cases and a fuzz test (garbage never crashes and is never allowed)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kiosk_fakesys import FIXTURES, FakeSysfs, encode, load

from edgeguard.kiosk.assess import Reason, Verdict, assess
from edgeguard.kiosk.config import AllowedDevice, KioskConfig, LateHid, UsbClass
from edgeguard.kiosk.usb import DescriptorError, classify, parse_descriptors, read_device
from edgeguard.policy.load import load_policy
from edgeguard.policy.types import UsbId

KIOSK = load_policy([], "kiosk", require_safe=False).policy.kiosk


def _verdict_text(dev_fixture: str, config: KioskConfig, tmp_path: Path) -> str:
    fake = FakeSysfs(tmp_path)
    fake.add_device("1-1", dev_fixture)
    dev = read_device(tmp_path, "1-1")
    result = assess(dev, config, None)
    text = f"{result.verdict.value}/{result.reason.value}"
    return text + ("/flagged" if result.flagged else "")


@pytest.mark.parametrize("name", FIXTURES)
def test_fixture_classes_match_annotation(name: str, tmp_path: Path) -> None:
    tree = load(name)
    desc = parse_descriptors(encode(tree))
    assert desc.vendor_id == tree["device"]["idVendor"]
    assert desc.product_id == tree["device"]["idProduct"]
    assert desc.configurations == len(tree["configurations"])
    triples = list(dict.fromkeys(i.triple for i in desc.interfaces))
    assert triples == tree["expected"]["triples"]
    classes = list(dict.fromkeys(i.usb_class.value for i in desc.interfaces))
    assert classes == tree["expected"]["classes"]


@pytest.mark.parametrize("name", FIXTURES)
def test_fixture_verdicts(name: str, tmp_path: Path) -> None:
    expected = load(name)["expected"]
    flag = replace(KIOSK, late_hid=LateHid.FLAG)
    block = replace(KIOSK, late_hid=LateHid.BLOCK)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert _verdict_text(name, flag, tmp_path / "a") == expected["late_flag"]
    assert _verdict_text(name, block, tmp_path / "b") == expected["late_block"]


def test_shipped_kiosk_profile_blocks_late_hid() -> None:
    assert KIOSK.enabled
    assert KIOSK.late_hid is LateHid.BLOCK
    assert not KIOSK.bluetooth


@pytest.mark.parametrize(("triple", "cls"), [
    ((0x08, 0x06, 0x50), UsbClass.MASS_STORAGE),
    ((0xE0, 0x01, 0x01), UsbClass.BLUETOOTH),
    ((0xE0, 0x01, 0x03), UsbClass.NETWORK),  # RNDIS
    ((0xEF, 0x04, 0x01), UsbClass.NETWORK),  # RNDIS, misc class
    ((0xEF, 0x02, 0x01), UsbClass.MISCELLANEOUS),
    ((0xE0, 0x02, 0x01), UsbClass.WIRELESS),  # wireless USB host wire adapter
    ((0x02, 0x0D, 0x00), UsbClass.NETWORK),  # CDC-NCM
    ((0x0A, 0x00, 0x00), UsbClass.NETWORK),
    ((0x03, 0x00, 0x00), UsbClass.HID),
    ((0xFF, 0xFF, 0xFF), UsbClass.VENDOR),
    ((0x42, 0x00, 0x00), UsbClass.UNKNOWN),
    ((0x00, 0x00, 0x00), UsbClass.UNKNOWN),  # class 0 is only valid on the device
])
def test_classify(triple: tuple[int, int, int], cls: UsbClass) -> None:
    assert classify(*triple) is cls


def test_allowlist_wins_over_class_and_serial_must_match(tmp_path: Path) -> None:
    entry = AllowedDevice(id="IT-7", vendor_id=UsbId("0b95"), product_id=UsbId("1790"),
                          serial="0000000000034C")
    config = replace(KIOSK, allowlist=(entry,))
    assert _verdict_text("ethernet-asix-ax88179", config, tmp_path) == "allow/allowlisted"
    other = replace(KIOSK, allowlist=(replace(entry, serial="NOPE"),))
    (tmp_path / "x").mkdir()
    assert _verdict_text("ethernet-asix-ax88179", other, tmp_path / "x") == "deny/vendor-class"


def test_bluetooth_allowed_by_policy(tmp_path: Path) -> None:
    config = replace(KIOSK, bluetooth=True)
    assert _verdict_text("bluetooth-csr8510", config, tmp_path) == "allow/allowed-classes"


def test_unknown_unparseable_device_is_refused(tmp_path: Path) -> None:
    fake = FakeSysfs(tmp_path)
    fake.add_device("3-2", "storage-sandisk-cruzer-blade", descriptors=b"\x12\x01\x00")
    dev = read_device(tmp_path, "3-2")
    assert dev.error is not None
    assert dev.vendor_id == "0781"  # identity still from idVendor for the record
    result = assess(dev, KIOSK, None)
    assert (result.verdict, result.reason) == (Verdict.DENY, Reason.MALFORMED)


@pytest.mark.parametrize("data", [
    b"",
    b"\x12\x01" + b"\x00" * 16,  # device descriptor, no configuration
    encode(load("mouse-logitech-m100"))[:22],  # truncated configuration
    encode(load("mouse-logitech-m100"))[:18] + b"\x09\x02\x05\x00\x01\x01\x00\xa0\x32",
    encode(load("mouse-logitech-m100"))[:27] + b"\x00\x04",  # zero-length descriptor
])
def test_malformed_descriptors_raise(data: bytes) -> None:
    with pytest.raises(DescriptorError):
        parse_descriptors(data)


def test_hostile_configuration_count_is_bounded() -> None:
    tree = load("storage-sandisk-cruzer-blade")
    one = encode(tree)[18:]
    data = encode(tree)[:18] + one * 50
    desc = parse_descriptors(data)
    assert len(desc.interfaces) == 8  # at most 8 configurations are read


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_garbage_never_crashes_and_is_never_allowed(data: bytes) -> None:
    prefix = encode(load("storage-sandisk-cruzer-blade"))[:18]
    for blob in (data, prefix + data):
        try:
            desc = parse_descriptors(blob)
        except DescriptorError:
            continue
        assert desc.interfaces  # a parse that succeeds found interfaces to judge
