"""Issue 21: handling a false alarm or a repeat offender, without root (the in-memory
nft of test_nft_enforcer honours the same JSON commands as the kernel).

* scan -> block -> ``net unblock`` -> a fresh scan is blocked again (on the old main the
  fresh scan was a suppressed repeat: "300 repeats ... not re-acted", and stayed free);
* a host blocked again within ``repeat_block_window`` is blocked for longer, up to the
  cap (fail2ban's bantime.increment); ``net unblock`` forgets it;
* ``net block`` by hand: audited with who and why, replaces a shorter block, refuses an
  allowlisted address.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
from pathlib import Path

import pytest

from edgeguard.actions.nftables.config import EnforcementConfig
from edgeguard.actions.nftables.enforcer import MANUAL_RULE
from edgeguard.actions.nftables.offenders import RepeatOffenders
from edgeguard.actions.nftables.runner import NftError
from edgeguard.actions.nftables.service import EnforcementComponent
from edgeguard.audit.sink import MemorySink
from edgeguard.clock import FakeClock
from edgeguard.daemon.component import Context, Peer
from edgeguard.daemon.pipeline import Pipeline
from edgeguard.decision import DecisionEngine
from edgeguard.ecs import action_categorisation
from edgeguard.events import ActionKind, Endpoint, Finding, Outcome, Severity
from edgeguard.findings import Area
from edgeguard.policy.load import load_policy
from edgeguard.policy.types import Duration
from tests.unit.actions.test_nft_enforcer import MemoryNft, change, setup

ROOT_PEER = Peer(pid=4242, uid=0, gid=0)


def scan(ip: str = "192.0.2.7") -> Finding:
    return Finding(kind="scan", subtype="syn", message=f"{ip} scanned", identifier=ip,
                   severity=Severity.SEVERE, source=Endpoint(ip=ip),
                   destinations=(Endpoint(ip="192.0.2.50"),), transport="tcp", count=300)


class Daemonish:
    """The daemon's network path: decision engine, pipeline, the enforcement component
    on an in-memory nft; no event loop runs (the worker is inline)."""

    def __init__(self, tmp: Path, extra: str = "") -> None:
        path = tmp / "policy.yaml"
        path.write_text("mode: enforce\nnetwork:\n  block_duration: 1h\n" + extra)
        policy = load_policy([path]).policy
        self.clock = FakeClock()
        self.sink = MemorySink()
        self.nft = MemoryNft(self.clock)
        self.engine = DecisionEngine(policy, self.clock)
        self.pipe = Pipeline(self.engine, self.sink)
        self.loop = asyncio.new_event_loop()
        self.comp = EnforcementComponent(policy, self.nft)  # type: ignore[arg-type]
        self.comp.start(Context(loop=self.loop, clock=self.clock, audit=self.sink,
                                policy=policy, state_dir=tmp, submit=self.pipe.submit,
                                decider=self.engine))
        self.pipe.add_actions(self.comp.actions(), Area.NETWORK)

    def blocked(self) -> dict[str, float]:
        assert self.comp.enforcer is not None
        return {str(e.key): e.timeout for e in self.comp.enforcer.entries()
                if e.set == "block4"}

    def call(self, name: str, args: dict[str, object]) -> dict[str, object]:
        handler = self.comp.commands()[name].handler
        result: dict[str, object] = self.loop.run_until_complete(handler(ROOT_PEER, args))
        return result

    def close(self) -> None:
        self.loop.close()


@pytest.fixture
def daemon(tmp_path: Path):  # type: ignore[no-untyped-def]
    d = Daemonish(tmp_path)
    yield d
    d.close()


def test_scan_block_unblock_fresh_scan_is_blocked_again(daemon: Daemonish) -> None:
    assert not daemon.pipe.submit(scan()).suppressed
    assert daemon.blocked() == {"192.0.2.7": 3600}
    for _ in range(300):  # the scan goes on: repeats, counted, not re-acted
        assert daemon.pipe.submit(scan()).suppressed
    reply = daemon.call("net.unblock", {"address": "192.0.2.7"})
    assert reply["edgeguard.unblocked"] == 1
    assert daemon.blocked() == {}
    daemon.clock.advance(5)
    fresh = daemon.pipe.submit(scan())  # a fresh scan right after the unblock
    assert not fresh.suppressed
    assert daemon.blocked() == {"192.0.2.7": 3600}  # blocked again, not grown (forgiven)
    blocks = [r for r in daemon.sink.records if r.action == "block"]
    assert [r.outcome for r in blocks] == [Outcome.SUCCESS, Outcome.SUCCESS]


def test_a_repeat_offender_is_blocked_longer_up_to_the_cap(tmp_path: Path) -> None:
    d = Daemonish(tmp_path, "  enforcement:\n    repeat_block_factor: 3\n"
                            "    repeat_block_window: 1d\n    repeat_block_max: 20h\n")
    try:
        got = []
        for _ in range(4):
            d.engine.forget("scan", "192.0.2.7")  # a new offence, not a repeat notice
            d.pipe.submit(scan())
            got.append(d.blocked()["192.0.2.7"])
            d.clock.advance(got[-1] + 60)  # the block expires; a minute later, again
        assert got == [3600, 3 * 3600, 9 * 3600, 20 * 3600]  # capped at 20h
        grown = [r for r in d.sink.records if r.action == "block"][1]
        assert "repeat offender: block 2" in str(grown.fields["edgeguard.action.detail"])
        d.clock.advance(86400 + 1)  # quiet for longer than the window: starts again
        d.engine.forget("scan", "192.0.2.7")
        d.pipe.submit(scan())
        assert d.blocked()["192.0.2.7"] == 3600
    finally:
        d.close()


def test_offenders_grow_from_the_end_of_the_last_block() -> None:
    config = EnforcementConfig(repeat_block_factor=2, repeat_block_window=Duration(100),
                               repeat_block_max=Duration(1000))
    book = RepeatOffenders(cap=2)
    first = book.next_block("a", 60, config, now=0)
    assert (first.count, first.timeout) == (1, 60)
    book.note("a", first)
    assert book.next_block("a", 60, config, now=160).timeout == 120  # 100 s after the end
    assert book.next_block("a", 60, config, now=161).timeout == 60  # 101 s: forgiven
    book.note("b", first)
    book.note("c", first)  # over the cap: the oldest is forgotten
    assert len(book) == 2
    assert book.forgotten == 1
    assert book.next_block("a", 60, config, now=1).count == 1
    off = EnforcementConfig(repeat_block_factor=1)
    book.note("b", dataclasses.replace(first, timeout=60))
    assert book.next_block("b", 60, off, now=61).timeout == 60  # factor 1: no growth


def test_unblock_forgets_the_offender() -> None:
    enforcer, _, _, clock = setup()
    enforcer.apply(change("192.0.2.9", 10))
    clock.advance(11)
    enforcer.poll()
    assert enforcer.apply(change("192.0.2.9", 10)).detail.endswith(
        "grown from 10 s)")
    enforcer.unblock("192.0.2.9", user="root")
    assert "repeat offender" not in enforcer.apply(change("192.0.2.9", 10)).detail


def test_manual_block_is_audited_replaces_and_refuses_allowlisted(daemon: Daemonish) -> None:
    reply = daemon.call("net.block", {"address": "192.0.2.20", "duration": 600,
                                      "reason": "false alarm check, ticket 12"})
    assert reply["rule.id"] == MANUAL_RULE
    assert daemon.blocked() == {"192.0.2.20": 600}
    again = daemon.call("net.block", {"address": "192.0.2.20", "duration": 7200,
                                      "reason": "longer"})
    assert again["edgeguard.block.timeout"] == 7200
    assert daemon.blocked() == {"192.0.2.20": 7200}  # replaced: the new duration holds
    records = [r for r in daemon.sink.records if r.rule_id == MANUAL_RULE]
    assert [r.fields["event.reason"] for r in records] == ["false alarm check, ticket 12",
                                                          "longer"]
    assert {r.fields["user.name"] for r in records} == {"uid=0 pid=4242"}
    assert {r.outcome for r in records} == {Outcome.SUCCESS}
    assert records[0].fields["source.ip"] == "192.0.2.20"


@pytest.mark.parametrize("failure", [NftError("Operation not permitted", errno.EPERM),
                                     OSError("nft vanished")])
def test_a_failed_manual_block_is_categorised_as_a_failure(failure: Exception) -> None:
    """Review defect: the manual block's record said event.type "denied" even when nft
    failed (bypassing categorise_action), and an exception other than NftError left no
    record at all. Now it is opened as failure and settled like every action record."""
    enforcer, nft, sink, _ = setup()

    def broken(commands: object) -> list[dict[str, object]]:
        raise failure

    nft.run = broken  # type: ignore[method-assign]
    blk = enforcer.manual_change("192.0.2.21", 600, "ticket 13")
    before = len(sink.records)
    result = enforcer.block(blk, user="root", reason="ticket 13")
    assert not result.ok
    (record,) = sink.records[before:]
    assert record.outcome is Outcome.FAILURE
    assert record.event_type == ("info",)
    assert "denied" not in record.event_type
    assert record.fields["error.message"] == result.detail
    assert record.fields["user.name"] == "root"


def test_a_manual_block_that_took_effect_says_denied() -> None:
    enforcer, _, sink, _ = setup()
    blk = enforcer.manual_change("192.0.2.22", 600, "ticket 14")
    assert enforcer.block(blk, user="root", reason="ticket 14").ok
    record = sink.records[-1]
    assert (record.outcome, record.event_type) == (Outcome.SUCCESS, ("denied",))
    assert record.category == action_categorisation(ActionKind.BLOCK, Outcome.SUCCESS).category


@pytest.mark.parametrize(("args", "message"), [
    ({"address": "192.0.2.20", "duration": 0, "reason": "x"}, "duration"),
    ({"address": "192.0.2.20", "duration": 60, "reason": ""}, "reason"),
    ({"address": "not-an-address", "duration": 60, "reason": "x"}, "not an IP or MAC"),
])
def test_manual_block_refuses_bad_requests(daemon: Daemonish, args: dict[str, object],
                                           message: str) -> None:
    with pytest.raises(ValueError, match=message):
        daemon.call("net.block", args)
    assert daemon.blocked() == {}


def test_manual_block_of_an_allowlisted_host_is_refused(tmp_path: Path) -> None:
    d = Daemonish(tmp_path, "  allowlist: [192.0.2.0/28]\n")
    try:
        with pytest.raises(ValueError, match="allowlisted"):
            d.call("net.block", {"address": "192.0.2.3", "duration": 60, "reason": "x"})
        assert d.blocked() == {}
    finally:
        d.close()


def test_manual_block_needs_an_enforcing_policy(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("mode: monitor\n")
    policy = load_policy([path]).policy
    comp = EnforcementComponent(policy, MemoryNft(FakeClock()))  # type: ignore[arg-type]
    loop = asyncio.new_event_loop()
    try:
        comp.start(Context(loop=loop, clock=FakeClock(), audit=MemorySink(), policy=policy,
                           state_dir=tmp_path, submit=lambda f: None))  # type: ignore[arg-type,return-value]
        with pytest.raises(ValueError, match="monitor"):
            loop.run_until_complete(comp.cmd_block(
                ROOT_PEER, {"address": "192.0.2.20", "duration": 60, "reason": "x"}))
    finally:
        loop.close()


def test_manual_block_of_a_mac_goes_to_the_mac_set(daemon: Daemonish) -> None:
    reply = daemon.call("net.block", {"address": "02-00-5E-10-00-01", "duration": 60,
                                      "reason": "rogue laptop"})
    assert reply["source.mac"] == "02:00:5e:10:00:01"
    assert daemon.comp.enforcer is not None
    assert [(e.set, e.key) for e in daemon.comp.enforcer.entries()] == [
        ("blockmac", "02:00:5e:10:00:01")]
