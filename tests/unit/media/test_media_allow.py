"""Temporary allows: granted (root only), audited with who/why/until, survive a daemon
restart, expire by themselves on the injected clock."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from media_harness import UEVENTS, media_policy

from edgeguard.audit.sink import MemorySink
from edgeguard.clock import FakeClock
from edgeguard.daemon.component import Context, Peer
from edgeguard.ecs import record_fields
from edgeguard.events import Decision, Finding
from edgeguard.media.allow import AllowError, AllowStore
from edgeguard.media.config import TrustedDevice
from edgeguard.media.replay import SimulatedKernel
from edgeguard.media.service import ALLOW_FILE, MediaComponent
from edgeguard.media.source import load_recording

ROOT_PEER = Peer(pid=1, uid=0, gid=0)


class ReplaySource:
    """A MediaSource that coldplugs what the simulated kernel holds and is pushed events."""

    def __init__(self, kernel: SimulatedKernel, present: list[Mapping[str, str]]) -> None:
        self.kernel = kernel
        self.present = present
        self.queue: list[Mapping[str, str]] = []

    def fileno(self) -> int | None:
        return None

    def coldplug(self) -> Iterator[Mapping[str, str]]:
        for props in self.present:
            yield {**props, "ACTION": "coldplug"}

    def read(self) -> Iterator[Mapping[str, str]]:
        while self.queue:
            yield self.queue.pop(0)

    def close(self) -> None:
        pass


def _stick() -> list[Mapping[str, str]]:
    """The non-trust stick of recording 01 (disk + two partitions)."""
    bursts = load_recording(UEVENTS / "01-non-trust-add-remove.json")
    return [e for b in bursts[:2] for e in b]


def _start(tmp_path: Path, clock: FakeClock, sink: MemorySink, loop: asyncio.AbstractEventLoop,
           kernel: SimulatedKernel) -> MediaComponent:
    stick = _stick()
    for props in stick:
        kernel.uevent(props)
    comp = MediaComponent(source_factory=lambda: ReplaySource(kernel, stick), block=kernel)

    def submit(finding: Finding) -> Decision:
        raise AssertionError("this stick raises no finding, only verdict records")

    comp.start(Context(loop=loop, clock=clock, audit=sink, policy=media_policy(),
                       state_dir=tmp_path, submit=submit))
    return comp


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def _fields(sink: MemorySink) -> list[dict[str, object]]:
    return [dict(record_fields(r, r.timestamp or 0.0, "t")) for r in sink.records]


def test_allow_granted_survives_restart_and_expires(tmp_path: Path,
                                                    loop: asyncio.AbstractEventLoop) -> None:
    clock = FakeClock()
    kernel = SimulatedKernel()
    sink = MemorySink()
    comp = _start(tmp_path, clock, sink, loop, kernel)
    assert kernel.read_only("loop0p1")

    result = loop.run_until_complete(comp.cmd_allow(
        ROOT_PEER, {"device": "/dev/loop0p1", "seconds": 7200, "reason": "exam papers",
                    "requested_by": "mrs.smith"}))
    assert result["device"] == "/dev/loop0"
    assert not kernel.read_only("loop0")
    assert not kernel.read_only("loop0p1")
    granted = [f for f in _fields(sink) if f["event.action"] == "usb-temporary-allow"]
    assert {f["volume.device_name"] for f in granted} == {"/dev/loop0", "/dev/loop0p1",
                                                          "/dev/loop0p2"}
    for f in granted:
        assert f["edgeguard.media.allow.by"] == "root (for mrs.smith)"
        assert f["edgeguard.media.allow.reason"] == "exam papers"
        assert f["edgeguard.media.allow.until"] == result["until"]
        assert f["volume.writable"] is True
        assert f["event.outcome"] == "success"
    stored = json.loads((tmp_path / ALLOW_FILE).read_text())
    assert stored["allows"][0]["serial"] == "STRANGER-1"

    # Restart: a new component (new engine, new store) reads the allow back.
    comp.stop()
    kernel2 = SimulatedKernel()
    sink2 = MemorySink()
    clock.advance(3600)
    comp2 = _start(tmp_path, clock, sink2, loop, kernel2)
    assert not kernel2.read_only("loop0p1")
    assert {f["event.action"] for f in _fields(sink2)} == {"usb-temporary-allow"}

    # Expiry: past `until`, the timer's tick makes it read-only again, on record.
    clock.advance(3601)
    comp2.tick()
    assert kernel2.read_only("loop0")
    assert kernel2.read_only("loop0p1")
    after = _fields(sink2)[3:]
    assert {f["event.action"] for f in after} == {"usb-read-only"}
    assert json.loads((tmp_path / ALLOW_FILE).read_text())["allows"] == []
    comp2.stop()


def test_allow_is_root_only_bounded_and_needs_reason(tmp_path: Path,
                                                     loop: asyncio.AbstractEventLoop) -> None:
    comp = _start(tmp_path, FakeClock(), MemorySink(), loop, SimulatedKernel())
    with pytest.raises(PermissionError):
        loop.run_until_complete(comp.cmd_allow(Peer(2, 1000, 1000), {
            "device": "loop0", "seconds": 60, "reason": "x"}))
    with pytest.raises(AllowError, match="allow_max_duration"):
        loop.run_until_complete(comp.cmd_allow(ROOT_PEER, {
            "device": "loop0", "seconds": 9 * 3600, "reason": "x"}))
    with pytest.raises(AllowError, match="reason"):
        loop.run_until_complete(comp.cmd_allow(ROOT_PEER, {
            "device": "loop0", "seconds": 60, "reason": "  "}))
    with pytest.raises(AllowError, match="not a present"):
        loop.run_until_complete(comp.cmd_allow(ROOT_PEER, {
            "device": "sdz", "seconds": 60, "reason": "x"}))
    comp.stop()


def test_list_shows_identity_verdict_and_reason(tmp_path: Path,
                                                loop: asyncio.AbstractEventLoop) -> None:
    comp = _start(tmp_path, FakeClock(), MemorySink(), loop, SimulatedKernel())
    rows = loop.run_until_complete(comp.cmd_list(Peer(3, 1000, 1000), {}))
    assert {r["volume.device_name"] for r in rows} == {"/dev/loop0", "/dev/loop0p1",
                                                       "/dev/loop0p2"}
    for row in rows:
        assert row["volume.serial_number"] == "STRANGER-1"
        assert row["edgeguard.media.verdict"] == "read-only"
        assert "not in the trust's register" in str(row["edgeguard.media.reason"])
        assert row["volume.writable"] is False
    assert comp.counters()["devices"] == 3
    comp.stop()


def test_store_refuses_device_without_serial(tmp_path: Path) -> None:
    store = AllowStore(tmp_path / "a.json", FakeClock())
    with pytest.raises(AllowError, match="no serial"):
        store.grant(("0951", "1666", None), "/dev/sdb", 60, "root", "why")


def test_corrupt_allow_file_means_no_allow(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text("{not json")
    store = AllowStore(path, FakeClock())
    assert store.all() == []
    assert store.corrupt == 1
    assert path.with_suffix(".json.corrupt").exists()


def test_reload_re_evaluates_present_devices(tmp_path: Path,
                                             loop: asyncio.AbstractEventLoop) -> None:
    kernel = SimulatedKernel()
    sink = MemorySink()
    comp = _start(tmp_path, FakeClock(), sink, loop, kernel)
    assert kernel.read_only("loop0p1")
    policy = media_policy()
    entry = TrustedDevice(id="IT-9", vendor_id="0951", product_id="1666",  # type: ignore[arg-type]
                          serial="STRANGER-1")
    media = dataclasses.replace(policy.media, require_encryption=False,
                                trusted_devices=(*policy.media.trusted_devices, entry))
    comp.reload(dataclasses.replace(policy, media=media))
    assert not kernel.read_only("loop0p1")
    comp.reload(media_policy())  # and back: the register no longer has it
    assert kernel.read_only("loop0p1")
    actions = [f["event.action"] for f in _fields(sink)]
    assert actions[-3:] == ["usb-read-only"] * 3
    comp.stop()
