"""Hypothesis: garbage uevent properties never crash the engine and never leave a
device writable (no register entry, no allow: nothing may ever be writable)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from media_harness import harness, media_policy

from edgeguard.media.replay import replay
from edgeguard.media.uevent import MalformedUevent, parse_uevent

KEYS = ["ACTION", "SUBSYSTEM", "DEVPATH", "DEVNAME", "DEVTYPE", "ID_BUS", "ID_VENDOR_ID",
        "ID_MODEL_ID", "ID_SERIAL_SHORT", "ID_FS_TYPE", "ID_FS_VERSION", "ID_PART_TABLE_TYPE",
        "ID_PART_ENTRY_SIZE", "EDGEGUARD_SIZE", "SEQNUM", "ID_USB_VENDOR_ID"]
NAMES = st.sampled_from(["sdb", "sdb1", "sdb2", "loop0", "loop0p1", "x", "..", "", "sdb/../a"])
VALUES = st.one_of(
    st.sampled_from(["add", "change", "remove", "coldplug", "block", "usb", "disk", "partition",
                     "crypto_LUKS", "BitLocker", "vfat", "2", "0951", "1666", "EGM-TRUST-0042",
                     "dos", "18446744073709551616", "-1", ""]),
    st.text(max_size=40),
    st.integers(),
    st.none(),
    st.lists(st.integers(), max_size=2),
)


@st.composite
def uevents(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 20)) == 0:
        return draw(st.one_of(st.none(), st.text(), st.lists(st.integers())))
    props: dict[Any, Any] = {k: draw(VALUES) for k in draw(st.sets(st.sampled_from(KEYS)))}
    if draw(st.booleans()):
        disk = draw(NAMES)
        tail = f"{disk}/{draw(NAMES)}" if draw(st.booleans()) else disk
        props["DEVPATH"] = draw(st.sampled_from(["/devices/virtual/block/",
                                                 "/devices/pci0/usb1/1-2/1-2:1.0/host6/block/",
                                                 "/sys/", ""])) + tail
    if draw(st.booleans()):
        props["SUBSYSTEM"] = "block"
        props["ID_BUS"] = "usb"
    if draw(st.integers(0, 5)) == 0:
        props[draw(st.integers())] = draw(VALUES)  # a non-string key
    return props


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(uevents(), min_size=1, max_size=6), min_size=1, max_size=8))
def test_garbage_never_crashes_and_never_leaves_writable(bursts: list[list[Any]]) -> None:
    config = media_policy().media
    no_register = type(config)(trusted_devices=(), max_devices=8)  # type: ignore[call-arg]
    with tempfile.TemporaryDirectory() as tmp:
        h = harness(Path(tmp), config=no_register)
        replay(h.engine, h.kernel, bursts)
        h.engine.reevaluate_all()
        for name in h.kernel.usb & set(h.kernel.flags):  # non-USB nodes are not ours
            assert h.kernel.read_only(name), f"{name} left writable"
        assert all(not a.verdict.writable for a in h.engine.devices())
        counted = h.engine.counters
        assert counted.events == sum(len(b) for b in bursts)
        assert len(list(h.engine.devices())) <= 8


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), VALUES))
def test_parser_raises_only_malformed(props: dict[str, Any]) -> None:
    try:
        event = parse_uevent(props)
    except MalformedUevent:
        return
    assert event.device.name
    assert "/" not in event.device.name
    assert event.device.devtype in ("disk", "partition")


@settings(max_examples=100, deadline=None)
@given(st.lists(uevents(), min_size=1, max_size=20))
def test_trusted_registry_never_trusts_garbage_identity(events: list[Any]) -> None:
    """With a register, garbage may only become writable if it carries a full, exact
    registered identity *and* an encrypted container or a catalogued model."""
    with tempfile.TemporaryDirectory() as tmp:
        h = harness(Path(tmp))
        replay(h.engine, h.kernel, [events])
        for a in h.engine.devices():
            if a.verdict.writable:
                assert a.trust.trusted
                assert a.encryption is not None or a.hardware_model is not None or any(
                    b.encryption for b in h.engine.devices() if b.device.disk == a.device.disk)
