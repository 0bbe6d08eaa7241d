"""Enforcer bookkeeping without root: an in-memory nft that honours the same JSON
commands (timeouts on a fake clock, size caps, EEXIST/ENOENT/ENFILE) as the kernel.
The real kernel behaviour is covered in tests/linux/nft; this covers the branches."""

from __future__ import annotations

import errno
import ipaddress
from collections.abc import Sequence
from typing import Any

import pytest

from edgeguard.actions.nftables.config import EnforcementConfig
from edgeguard.actions.nftables.enforcer import Enforcer
from edgeguard.actions.nftables.plan import Change
from edgeguard.actions.nftables.ruleset import Tag
from edgeguard.actions.nftables.runner import NftError
from edgeguard.audit.sink import MemorySink
from edgeguard.clock import FakeClock
from edgeguard.events import ActionKind, EventKind
from edgeguard.net.config import NetworkConfig
from edgeguard.policy.types import Duration, Rate


class MemoryNft:
    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.sets: dict[str, dict[Any, tuple[float, float, str]]] | None = None
        self.sizes: dict[str, int] = {}
        self.calls = 0

    @staticmethod
    def _key(val: Any) -> Any:
        if isinstance(val, dict):  # a concatenation, or an allowlist prefix
            return tuple(val["concat"]) if "concat" in val else repr(val)
        return val

    def _expire(self) -> None:
        now = self.clock.monotonic()
        for elems in (self.sets or {}).values():
            for key in [k for k, v in elems.items() if v[1] <= now]:
                del elems[key]

    def run(self, commands: Sequence[Any]) -> list[dict[str, Any]]:
        self.calls += 1
        self._expire()
        staged = None if self.sets is None else {k: dict(v) for k, v in self.sets.items()}
        out: list[dict[str, Any]] = []
        for cmd in commands:
            ((op, body),) = cmd.items()
            ((what, obj),) = body.items()
            if what == "table":
                if op == "add" and staged is None:
                    staged = {}
                elif op == "delete":
                    staged = None
                elif op == "list":
                    if staged is None:
                        raise NftError("No such file or directory", errno.ENOENT)
                    out = self._listing(staged)
            elif what == "set" and op == "add":
                assert staged is not None
                staged.setdefault(obj["name"], {})
                self.sizes[obj["name"]] = obj.get("size", 1 << 30)
            elif what == "element":
                assert staged is not None
                self._element(staged, op, obj)
        self.sets = staged
        return out

    def _element(self, staged: dict[str, Any], op: str, obj: dict[str, Any]) -> None:
        elems = staged[obj["name"]]
        for raw in obj["elem"]:
            inner = raw["elem"] if isinstance(raw, dict) and "elem" in raw else {"val": raw}
            key = self._key(inner["val"])
            if op == "delete":
                if key not in elems:
                    raise NftError("No such file or directory", errno.ENOENT)
                del elems[key]
                continue
            if key in elems:
                if op == "create":
                    raise NftError("File exists", errno.EEXIST)
                continue
            if len(elems) >= self.sizes.get(obj["name"], 1 << 30):
                raise NftError("Too many open files in system", errno.ENFILE)
            timeout = inner.get("timeout", 0)
            elems[key] = (timeout, self.clock.monotonic() + timeout, inner.get("comment", ""))

    def _listing(self, staged: dict[str, Any]) -> list[dict[str, Any]]:
        now = self.clock.monotonic()
        out = []
        for name, elems in staged.items():
            items = [{"elem": {"val": {"concat": list(k)} if isinstance(k, tuple) else k,
                               "timeout": t, "expires": int(exp - now), "comment": c}}
                     for k, (t, exp, c) in elems.items()]
            out.append({"set": {"family": "inet", "table": "edgeguard", "name": name,
                                "elem": items}})
        return out


def setup(**enf: Any) -> tuple[Enforcer, MemoryNft, MemorySink, FakeClock]:
    clock = FakeClock()
    nft = MemoryNft(clock)
    sink = MemorySink()
    net = NetworkConfig(allowlist=(ipaddress.ip_network("10.0.0.0/30"),),
                        enforcement=EnforcementConfig(**enf))
    enforcer = Enforcer(nft, net, sink, clock)  # type: ignore[arg-type]
    enforcer.start()
    return enforcer, nft, sink, clock


def change(ip: str, timeout: float = 10, fid: str = "f") -> Change:
    return Change(ActionKind.BLOCK, "block4", (ip,), timeout, Tag("rule", "scan/syn", fid))


def actions_of(sink: MemorySink) -> list[str]:
    return [r.action for r in sink.records]


def test_expiry_is_audited_once_with_the_finding() -> None:
    enforcer, _, sink, clock = setup()
    assert enforcer.apply(change("192.0.2.1", 10, "scan:1")).changed
    clock.advance(5)
    assert enforcer.poll() == []
    clock.advance(6)
    (gone,) = enforcer.poll()
    assert gone.tag.finding_id == "scan:1"
    assert enforcer.poll() == []
    (rec,) = [r for r in sink.records if r.action == "network-block-expired"]
    assert rec.fields["edgeguard.finding.id"] == "scan:1"
    assert rec.event_type == ("allowed", "end")
    assert enforcer.counts["expired"] == 1


def test_early_disappearance_is_not_an_expiry() -> None:
    enforcer, nft, sink, clock = setup()
    enforcer.apply(change("192.0.2.1", 100))
    assert nft.sets is not None
    nft.sets["block4"].clear()  # someone ran `nft delete element` by hand
    clock.advance(1)
    assert enforcer.poll() == []
    assert "network-block-removed" in actions_of(sink)
    assert enforcer.counts["removed_outside"] == 1


def test_apply_is_idempotent() -> None:
    enforcer, *_ = setup()
    first = enforcer.apply(change("192.0.2.1"))
    again = enforcer.apply(change("192.0.2.1"))
    assert first.ok
    assert first.changed
    assert again.ok
    assert not again.changed


def test_full_set_is_refused_counted_and_summarised_once_per_poll() -> None:
    enforcer, _, sink, _ = setup(set_size=16)
    results = [enforcer.apply(change(f"192.0.2.{i}")) for i in range(1, 31)]
    assert sum(r.ok for r in results) == 16
    assert enforcer.counts["set_full"] == 14
    enforcer.poll()
    enforcer.poll()
    summaries = [r for r in sink.records if r.action == "network-block-set-full"]
    assert len(summaries) == 1
    assert summaries[0].kind is EventKind.PIPELINE_ERROR
    assert summaries[0].fields["edgeguard.block.refused"] == 14


def test_unblock_removes_every_entry_naming_the_address_in_one_call() -> None:
    enforcer, nft, sink, _ = setup()
    enforcer.apply(change("192.0.2.1", fid="a"))
    enforcer.apply(Change(ActionKind.RATE_LIMIT, "limit4", ("192.0.2.1",), 10, Tag("r", "k", "b")))
    enforcer.apply(Change(ActionKind.DROP_FLOW, "flow4", (("192.0.2.9", "192.0.2.1", "tcp", 1, 2),),
                          10, Tag("r", "k", "c")))
    enforcer.apply(change("192.0.2.2", fid="other"))
    calls = nft.calls
    gone = enforcer.unblock("192.0.2.1", user="root")
    assert nft.calls == calls + 2  # one read, one transaction
    assert sorted(e.tag.finding_id for e in gone) == ["a", "b", "c"]
    assert [e.key for e in enforcer.entries()] == ["192.0.2.2"]
    unblocks = [r for r in sink.records if r.action == "network-unblock"]
    assert {r.fields["user.name"] for r in unblocks} == {"root"}
    assert enforcer.unblock("192.0.2.1", user="root") == []
    enforcer.poll()
    assert "network-block-expired" not in actions_of(sink)


def test_restart_carries_blocks_drops_allowlisted_and_respects_a_smaller_cap() -> None:
    enforcer, nft, sink, clock = setup(set_size=64)
    for i in range(1, 21):
        enforcer.apply(change(f"192.0.2.{i}", 100))
    assert nft.sets is not None
    nft.sets["block4"]["10.0.0.1"] = (100, clock.monotonic() + 100, "r|scan/syn|old")
    clock.advance(30)
    smaller = NetworkConfig(allowlist=enforcer.network.allowlist,
                            enforcement=EnforcementConfig(set_size=16))
    again = Enforcer(nft, smaller, sink, clock)  # type: ignore[arg-type]
    assert again.start() == 16
    assert again.counts["rebuild_dropped"] == 4
    keys = {e.key for e in again.entries()}
    assert "10.0.0.1" not in keys  # now allowlisted: lifted, and audited
    assert all(e.expires <= 70 for e in again.entries())  # the time they had left
    lifted = [r for r in sink.records if r.action == "network-unblock"]
    assert lifted[0].fields["edgeguard.finding.id"] == "old"


def test_stop_keeps_or_removes() -> None:
    enforcer, nft, _, _ = setup(keep_table_on_stop=True)
    enforcer.apply(change("192.0.2.1"))
    enforcer.stop()
    assert nft.sets is not None
    enforcer, nft, _, _ = setup(keep_table_on_stop=False)
    enforcer.stop()
    assert nft.sets is None


def test_config_rejects_fractional_rates() -> None:
    with pytest.raises(ValueError, match="whole packets"):
        EnforcementConfig(rate_limit=Rate(0.5))
    assert EnforcementConfig(flow_duration=Duration(5)).flow_duration == 5


def test_monitor_only_remove_changes_nothing_when_there_is_no_table() -> None:
    clock = FakeClock()
    nft = MemoryNft(clock)
    sink = MemorySink()
    enforcer = Enforcer(nft, NetworkConfig(), sink, clock)  # type: ignore[arg-type]
    enforcer.remove()
    assert nft.calls == 1  # one read, no transaction
    assert sink.records == []
    enforcer.start()
    enforcer.remove()
    assert nft.sets is None
    assert actions_of(sink)[-1] == "network-enforcement-removed"


def test_expiry_due_only_when_a_remembered_element_should_be_gone() -> None:
    enforcer, nft, _, clock = setup()
    assert not enforcer.expiry_due()
    enforcer.apply(change("192.0.2.1", 10))
    clock.advance(9)
    assert not enforcer.expiry_due()
    calls = nft.calls
    clock.advance(2)
    assert enforcer.expiry_due()  # now worth reading the sets back
    assert nft.calls == calls  # deciding that cost no nft call
    assert len(enforcer.poll()) == 1
    assert not enforcer.expiry_due()
