"""The rtnetlink watcher against forged and malformed datagrams, without a kernel.

Every class of :func:`tests.support.rtnl.forged` is fed as if the kernel had sent it
(sender port 0) and as if another process had (any other port): exact counters, the
watch goes on, a real notification afterwards still arrives. A scripted kernel drives the
socket loop: ENOBUFS reopens it with back-off, an ``rtnl-restart`` record is audited and
the link table is read again, so a VPN link that vanished meanwhile is seen as gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import random
import struct
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeguard.audit.sink import MemorySink
from edgeguard.clock import FakeClock
from edgeguard.daemon.component import Context
from edgeguard.decision import Decision
from edgeguard.ecs import nest, record_fields
from edgeguard.events import Finding, Mode
from edgeguard.policy.load import load_policy
from edgeguard.wifi import rtnl
from edgeguard.wifi.backend import ReplayBackend
from edgeguard.wifi.nl80211 import Done, NetlinkError
from edgeguard.wifi.records import RTNL_RESTART, rtnl_restart_record
from edgeguard.wifi.rtnl import Backoff, LinkChange, MalformedNetlink, RtnlRestart, RtnlWatcher
from edgeguard.wifi.service import WifiComponent
from tests.support.rtnl import (
    CLASSES,
    RTM_DELLINK,
    RTM_NEWADDR,
    RTM_NEWROUTE,
    ScriptedKernel,
    forged,
    link_message,
    message,
)
from tests.support.schema import validate_record

from .harness import FakeKillSwitch

PER_CLASS = 400


def _no_findings(finding: Finding, section: str) -> Decision:
    raise AssertionError(f"no finding expected: {finding}")
FAST = Backoff(initial=0.01, maximum=0.04, healthy=30.0)


class Seen:
    def __init__(self) -> None:
        self.changes: list[LinkChange] = []
        self.syncs: list[dict[str, bool]] = []
        self.restarts: list[RtnlRestart] = []

    def watcher(self, kernel: ScriptedKernel | None = None) -> RtnlWatcher:
        return RtnlWatcher(self.changes.append, self.syncs.append, self.restarts.append,
                           backoff=FAST, opener=kernel or ScriptedKernel())


# -- the decoder --------------------------------------------------------------------------
def test_kernel_layouts_decode() -> None:
    data = (link_message("wg0", up=True) + link_message("wlan0", up=False)
            + link_message("wg0", kind=RTM_DELLINK)
            + message(RTM_NEWADDR, struct.pack("=BBBBI", 2, 24, 0, 0, 7))
            + message(RTM_NEWROUTE, bytes(12)))
    assert list(rtnl.decode(data)) == [
        LinkChange("RTM_NEWLINK", "wg0", True), LinkChange("RTM_NEWLINK", "wlan0", False),
        LinkChange("RTM_DELLINK", "wg0", False), LinkChange("RTM_NEWADDR"),
        LinkChange("RTM_NEWROUTE")]
    err = message(2, struct.pack("=i", -1) + bytes(16), seq=9)
    assert list(rtnl.decode(err + message(3, bytes(4), seq=9))) == [NetlinkError(9, -1),
                                                                    Done(9)]


def test_dump_request_layout() -> None:
    req = rtnl.link_dump_request(5)
    length, kind, flags, seq, pid = struct.unpack_from("=IHHII", req)
    assert (length, kind, flags, seq, pid) == (32, rtnl.RTM_GETLINK, 0x301, 5, 0)


@pytest.mark.parametrize("kind", CLASSES)
def test_each_forged_class_decodes_as_built(kind: str) -> None:
    """The corpus's own expectation (from how it was built) is what the decoder does."""
    build = CLASSES[kind]
    rnd = random.Random(kind)
    for _ in range(PER_CLASS):
        item = build(rnd)
        if item.malformed:
            with pytest.raises(MalformedNetlink):
                list(rtnl.decode(item.data))
        else:
            changes = [c for c in rtnl.decode(item.data) if isinstance(c, LinkChange)]
            assert len(changes) == item.events


# -- the watcher, datagram by datagram ----------------------------------------------------
def test_watcher_survives_every_class_from_the_kernel_with_exact_counts() -> None:
    seen = Seen()
    w = seen.watcher()
    corpus = list(forged(11, PER_CLASS * len(CLASSES)))
    for item in corpus:
        w.datagram(item.data, 0)
    malformed = sum(1 for f in corpus if f.malformed)
    events = sum(f.events for f in corpus)
    assert (w.errors, w.events, w.foreign) == (malformed, events, 0)
    # the exact numbers for seed 11, so a change to the corpus or the decoder shows
    assert (malformed, events) == (3200, 1397)
    by_class = {k: sum(1 for f in corpus if f.kind == k and f.malformed) for k in CLASSES}
    assert by_class["wrong-type"] == by_class["garbage-attrs"] == by_class["forged-state"] == 0
    assert all(by_class[k] == PER_CLASS for k in CLASSES
               if k not in ("wrong-type", "garbage-attrs", "forged-state"))
    assert len(seen.changes) == events
    w.datagram(b"", 0)
    assert w.errors == malformed + 1
    w.datagram(link_message("wg0", up=True), 0)
    assert seen.changes[-1] == LinkChange("RTM_NEWLINK", "wg0", True)


def test_nothing_from_another_process_is_decoded() -> None:
    seen = Seen()
    w = seen.watcher()
    corpus = list(forged(12, PER_CLASS * len(CLASSES)))
    for port, item in enumerate(corpus, start=1):
        w.datagram(item.data, port)
    assert (w.foreign, w.errors, w.events) == (len(corpus), 0, 0)
    assert seen.changes == []  # not even the believable "wg0 up"


def test_a_failing_handler_is_an_error_not_the_end() -> None:
    calls: list[LinkChange] = []

    def boom(change: LinkChange) -> None:
        calls.append(change)
        raise RuntimeError("handler bug")

    w = RtnlWatcher(boom)
    w.datagram(link_message("wg0") + link_message("wg1"), 0)
    assert (w.events, w.errors, len(calls)) == (2, 2, 2)


def _valid_datagrams() -> list[bytes]:
    return [link_message("wg0", up=True), link_message("wlan0", kind=RTM_DELLINK),
            message(RTM_NEWADDR, struct.pack("=BBBBI", 10, 64, 0, 0, 3) + bytes(20)),
            message(RTM_NEWROUTE, bytes(12)) + link_message("eth0", up=False)]


VALID = _valid_datagrams()


@settings(max_examples=3000, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(st.binary(max_size=120), st.integers(0, len(VALID) - 1), st.integers(0, 4096),
       st.integers(0, 255))
def test_fuzz_decoder_only_raises_malformed(noise: bytes, index: int, where: int,
                                            value: int) -> None:
    base = bytearray(VALID[index])
    base[where % len(base)] = value
    for data in (noise, bytes(base), bytes(base[: where % (len(base) + 1)]), noise + base):
        with contextlib.suppress(MalformedNetlink):
            list(rtnl.decode(data))


# -- the socket loop ----------------------------------------------------------------------
async def _until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.005)


async def _settled(kernel: ScriptedKernel) -> None:
    await _until(kernel.events.inbox.empty)
    for _ in range(3):
        await asyncio.sleep(0)


def _run(body: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(body(), 20))


def test_start_dumps_links_then_watches() -> None:
    kernel = ScriptedKernel({"wlan0": True, "wg0": False})
    seen = Seen()
    w = seen.watcher(kernel)

    async def body() -> None:
        task = asyncio.create_task(w.run())
        await _until(lambda: bool(seen.syncs))
        assert seen.syncs == [{"wlan0": True, "wg0": False}]
        kernel.push(link_message("wg0", up=True))
        await _settled(kernel)
        assert seen.changes == [LinkChange("RTM_NEWLINK", "wg0", True)]
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    _run(body)
    assert all(s.closed for s in kernel.sockets)
    assert [s.groups for s in kernel.sockets] == [rtnl.GROUPS, 0]  # events first, then dump


def test_forged_datagrams_then_enobufs_reopen_resync_and_audit() -> None:
    kernel = ScriptedKernel({"wg0": True})
    seen = Seen()
    w = seen.watcher(kernel)
    corpus = list(forged(13, 1100))

    async def body() -> None:
        task = asyncio.create_task(w.run())
        await _until(lambda: bool(seen.syncs))
        for item in corpus:
            kernel.push(item.data, 0)
        for item in corpus[:300]:
            kernel.push(item.data, 4242)
        await _settled(kernel)
        assert not task.done()
        assert w.errors == sum(f.malformed for f in corpus)
        assert w.events == sum(f.events for f in corpus)
        assert w.foreign == 300
        # the kernel dropped notifications, among them wg0 going away
        kernel.links = {"wlan0": True}
        kernel.push(OSError(errno.ENOBUFS, "No buffer space available"))
        await _until(lambda: len(seen.syncs) == 2)
        assert seen.syncs[-1] == {"wlan0": True}
        assert w.restarts == 1
        assert seen.restarts == [RtnlRestart("ENOBUFS: No buffer space available", 1, 0.01)]
        kernel.push(link_message("wg0", up=True))
        await _settled(kernel)
        assert seen.changes[-1] == LinkChange("RTM_NEWLINK", "wg0", True)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    _run(body)
    events = [s for s in kernel.sockets if s.groups]
    assert len(events) == 2
    assert all(s.closed for s in events)


def test_reopen_failures_back_off_and_are_reported() -> None:
    kernel = ScriptedKernel({"lo": True})
    seen = Seen()
    w = seen.watcher(kernel)

    async def body() -> None:
        task = asyncio.create_task(w.run())
        await _until(lambda: bool(seen.syncs))
        kernel.fail_opens = 3
        kernel.push(OSError(errno.ENOBUFS, "No buffer space available"))
        await _until(lambda: len(seen.syncs) == 2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    _run(body)
    assert w.restarts == 4
    assert [(r.attempt, r.waited, r.error) for r in seen.restarts] == [
        (1, 0.01, "EPERM: Operation not permitted"),
        (2, 0.02, "EPERM: Operation not permitted"),
        (3, 0.04, "EPERM: Operation not permitted"),  # the maximum
        (4, 0.04, None)]


def test_failing_to_start_raises() -> None:
    kernel = ScriptedKernel()
    kernel.fail_opens = 1
    w = Seen().watcher(kernel)
    with pytest.raises(PermissionError):
        asyncio.run(w.run())
    assert w.restarts == 0


def test_foreign_and_broken_datagrams_inside_a_dump_are_dropped() -> None:
    kernel = ScriptedKernel({"wg0": True})
    kernel.dump_extra = [(link_message("wg9", up=True), 77), (b"\1\2\3", 0)]
    w = Seen().watcher(kernel)
    assert asyncio.run(w.links()) == {"wg0": True}
    assert (w.foreign, w.errors) == (1, 1)


# -- the component: audit record and status counters --------------------------------------
POLICY = """
mode: enforce
wifi:
  enabled: true
  vpn:
    interfaces: [wg0]
    endpoints: ["198.51.100.7:51820"]
"""


def test_component_audits_restarts_and_shows_counters(tmp_path: Path) -> None:
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(POLICY)
    policy = load_policy([policy_file]).policy
    recording = tmp_path / "empty.jsonl"
    recording.write_text('{"type": "header", "family_id": 30, "interfaces": {}}\n')
    kernel = ScriptedKernel({"wg0": True})
    sink = MemorySink()
    component = WifiComponent(policy, backend=ReplayBackend(recording),
                              killswitch=FakeKillSwitch(), rtnl_opener=kernel)
    counters: dict[str, Any] = {}

    async def body() -> None:
        ctx = Context(loop=asyncio.get_running_loop(), clock=FakeClock(), audit=sink,
                      policy=policy, state_dir=tmp_path, submit=_no_findings)
        component.start(ctx)
        assert component._rtnl is not None
        component._rtnl.backoff = FAST
        await _until(lambda: any(r.action == "vpn-tunnel-up" for r in sink.records))
        for item in forged(14, 110):
            kernel.push(item.data, 0)
        kernel.push(link_message("wg0", up=False), 999)  # believed, wg0 would go down
        kernel.push(link_message("wg0", up=True), 0)
        await _settled(kernel)
        assert component.guard is not None
        assert component.guard.vpn_links == {"wg0": True}
        # wg0 goes away while the kernel drops our notifications
        kernel.links = {}
        kernel.push(OSError(errno.ENOBUFS, "No buffer space available"))
        await _until(lambda: any(r.action == RTNL_RESTART for r in sink.records))
        assert component.guard.vpn_links == {}
        tunnel = [r.action for r in sink.records if r.action.startswith("vpn-tunnel-")]
        assert tunnel[-1] == "vpn-tunnel-down"
        counters.update(component.status()["counters"])
        component.stop()

    _run(body)
    corpus = list(forged(14, 110))
    assert counters["rtnl_errors"] == sum(f.malformed for f in corpus) == 80
    assert counters["rtnl_foreign"] == 1
    assert counters["rtnl_restarts"] == 1
    assert counters["rtnl_events"] == sum(f.events for f in corpus) + 1
    (record,) = [r for r in sink.records if r.action == RTNL_RESTART]
    assert record.outcome.value == "success"
    assert record.fields["edgeguard.rtnl.reason"] == "ENOBUFS: No buffer space available"


@pytest.mark.parametrize("error", [None, "EPERM: Operation not permitted"])
def test_restart_record_matches_the_schema(error: str | None) -> None:
    record = rtnl_restart_record(RtnlRestart("ENOBUFS: No buffer space available", 3, 0.5,
                                             error), Mode.ENFORCE)
    obj = nest(record_fields(record, 1_700_000_000.0, "kiosk"))
    obj["event"] = {**obj["event"], "sequence": 1, "hash": "0" * 64}
    obj["edgeguard"] = {**obj["edgeguard"], "chain_id": "x"}
    validate_record(obj)
    assert obj["event"]["action"] == "rtnl-restart"
    assert obj["event"]["outcome"] == ("success" if error is None else "failure")
    assert obj["edgeguard"]["rtnl"]["restarts"] == 3
