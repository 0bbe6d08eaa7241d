"""Table lifecycle in a real netns: rebuild at start without duplicates, blocks carried
over or removed per policy, foreign tables untouched, the daemon component's timer
and control commands."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import Pipeline, network, policy, scan_finding
from nftlab import IP, NFT, Lab

from edgeguard.actions.nftables.enforcer import Enforcer
from edgeguard.actions.nftables.runner import Nft
from edgeguard.actions.nftables.service import EnforcementComponent, PermissionDenied
from edgeguard.audit.sink import MemorySink
from edgeguard.clock import SystemClock
from edgeguard.daemon.component import Context, Peer
from edgeguard.events import ActionKind, Mode

pytestmark = pytest.mark.linux
ROOT = Path(__file__).resolve().parents[3]

FOREIGN = """\
table ip edgeguard {
\tchain input {
\t\ttype filter hook input priority filter; policy accept;
\t\tip saddr 10.99.0.0/16 drop
\t}
}
table inet firewall {
\tset trusted {
\t\ttype ipv4_addr
\t\telements = { 10.77.1.2 }
\t}

\tchain forward {
\t\ttype filter hook forward priority filter; policy accept;
\t\tip saddr @trusted accept
\t}
}
"""


def rules_of(listing: list[dict[str, object]] | None) -> list[str]:
    """Rules as comparable text: chain, comment and expression, no handles or counters."""
    out = []
    for item in listing or []:
        rule = item.get("rule")
        if isinstance(rule, dict):
            expr = [e for e in rule["expr"] if "counter" not in e]
            out.append(json.dumps([rule["chain"], rule.get("comment"), expr], sort_keys=True))
    return out


def test_restart_rebuilds_without_duplicates_and_carries_blocks(lab: Lab) -> None:
    nft = Nft(lab.nft_prefix())
    pipe = Pipeline(nft, policy(network(block=120)))
    pipe.enforcer.start()
    first = rules_of(lab.our_table())
    pipe.submit(scan_finding(lab.scan_ip))

    for _ in range(3):  # restart three times, once with a changed policy
        again = Enforcer(nft, network(block=120, set_size=1024), MemorySink(), SystemClock())
        assert again.start() == 1
    assert rules_of(lab.our_table()) == first  # same rules, once each
    (entry,) = again.entries()
    assert entry.key == lab.scan_ip
    assert entry.tag.finding_id == f"scan:{lab.scan_ip}:0"
    assert entry.expires <= 120
    lab.count_at_target(lab.scan_ip)
    lab.syns(10)
    assert lab.received(lab.scan_ip) == 0  # still enforced after the restarts


def test_start_lifts_blocks_the_new_policy_allowlists(lab: Lab) -> None:
    nft = Nft(lab.nft_prefix())
    pipe = Pipeline(nft, policy(network(block=120)))
    pipe.enforcer.start()
    pipe.submit(scan_finding(lab.scan_ip))
    sink = MemorySink()
    again = Enforcer(nft, network(allow=(f"{lab.scan_ip}/32",)), sink, SystemClock())
    assert again.start() == 0
    assert again.entries() == []
    (rec,) = [r for r in sink.records if r.action == "network-unblock"]
    assert rec.fields["edgeguard.finding.id"] == f"scan:{lab.scan_ip}:0"


@pytest.mark.parametrize("keep", [True, False])
def test_stop_keeps_or_removes_the_table_per_policy(lab: Lab, keep: bool) -> None:
    lab.count_at_target(lab.scan_ip)
    nft = Nft(lab.nft_prefix())
    pipe = Pipeline(nft, policy(network(block=4, keep_table_on_stop=keep)))
    pipe.enforcer.start()
    pipe.submit(scan_finding(lab.scan_ip))
    pipe.enforcer.stop()
    lab.syns(10)
    if not keep:
        assert lab.our_table() is None
        assert lab.received(lab.scan_ip) == 10
        return
    assert lab.received(lab.scan_ip) == 0  # enforcement survived the stop
    # The next run adopts the kept block and audits its expiry.
    sink = MemorySink()
    nxt = Enforcer(nft, network(block=4, keep_table_on_stop=keep), sink, SystemClock())
    assert nxt.start() == 1
    deadline = time.monotonic() + 8
    while nxt.entries() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [e.key for e in nxt.poll()] == [lab.scan_ip]
    (rec,) = [r for r in sink.records if r.action == "network-block-expired"]
    assert rec.fields["edgeguard.finding.id"] == f"scan:{lab.scan_ip}:0"


def test_nothing_outside_our_table_is_touched(lab: Lab) -> None:
    lab.ns(lab.gateway, NFT, "-f", "-", input=FOREIGN)
    before = lab.gateway_ruleset()
    assert before == FOREIGN
    pipe = Pipeline(Nft(lab.nft_prefix()), policy(network(block=60)))
    pipe.enforcer.start()
    pipe.submit(scan_finding(lab.scan_ip))
    pipe.submit(scan_finding(lab.scan_ip6, dst=lab.target_ip6))
    assert pipe.enforcer.unblock(lab.scan_ip, user="test")
    pipe.enforcer.poll()
    pipe.enforcer.start()  # a restart
    foreign_now = lab.gateway_ruleset().split("table inet edgeguard")[0]
    assert foreign_now == FOREIGN
    pipe.enforcer.stop()
    assert lab.gateway_ruleset() == before  # byte-identical


def test_removal_outside_edgeguard_is_recorded_as_such(lab: Lab) -> None:
    pipe = Pipeline(Nft(lab.nft_prefix()), policy(network(block=60)))
    pipe.enforcer.start()
    pipe.submit(scan_finding(lab.scan_ip))
    lab.ns(lab.gateway, NFT, "delete", "element", "inet", "edgeguard", "block4",
           f"{{ {lab.scan_ip} }}")
    assert pipe.enforcer.poll() == []  # not an expiry
    (rec,) = pipe.records("network-block-removed")
    assert rec.fields["source.ip"] == lab.scan_ip


def _context(loop: asyncio.AbstractEventLoop, pol, sink: MemorySink) -> Context:  # type: ignore[no-untyped-def]
    return Context(loop=loop, clock=SystemClock(), audit=sink, policy=pol,
                   state_dir=Path("/nonexistent"), submit=lambda f, s: None)  # type: ignore[arg-type,return-value]


def test_component_serves_blocks_and_unblock_and_audits_expiry(lab: Lab) -> None:
    pol = policy(network(block=3, expiry_poll_interval=0.3))
    sink = MemorySink()

    async def scenario() -> None:
        comp = EnforcementComponent(pol, Nft(lab.nft_prefix()))
        comp.start(_context(asyncio.get_running_loop(), pol, sink))
        pipe = Pipeline(comp.nft, pol)
        pipe.actions = dict(comp.actions())
        pipe.sink = sink
        pipe.submit(scan_finding(lab.scan_ip))
        pipe.submit(scan_finding(lab.scan_ip2, n=1))
        rows = await comp.commands()["net.blocks"](Peer(1, 1000, 1000), {})
        by_ip = {r["source.ip"]: r for r in rows}
        assert set(by_ip) == {lab.scan_ip, lab.scan_ip2}
        row = by_ip[lab.scan_ip]
        assert row["edgeguard.finding.id"] == f"scan:{lab.scan_ip}:0"
        assert row["event.reason"] == "scan/syn (scan-rule)"
        assert row["event.end"].endswith("Z")
        assert 0 < row["edgeguard.block.expires_in"] <= 3

        with pytest.raises(PermissionDenied):
            await comp.commands()["net.unblock"](Peer(1, 1000, 1000), {"address": lab.scan_ip2})
        reply = await comp.commands()["net.unblock"](Peer(1, 0, 0), {"address": lab.scan_ip2})
        assert reply["edgeguard.unblocked"] == 1
        (unblock,) = [r for r in sink.records if r.action == "network-unblock"]
        assert unblock.event_type == ("allowed", "end")
        assert unblock.fields["edgeguard.finding.id"] == f"scan:{lab.scan_ip2}:1"

        # The component's own timer notices the kernel's expiry; no manual poll.
        deadline = time.monotonic() + 8
        while not [r for r in sink.records if r.action == "network-block-expired"]:
            assert time.monotonic() < deadline, "expiry not audited"
            await asyncio.sleep(0.2)
        assert comp.counters()["nft_expired"] == 1
        comp.stop()

    asyncio.run(scenario())
    assert lab.our_table() is None  # keep_table_on_stop false in these tests


def test_monitor_only_policy_removes_a_leftover_table(lab: Lab) -> None:
    nft = Nft(lab.nft_prefix())
    Pipeline(nft, policy(network())).enforcer.start()  # a previous enforcing run
    assert lab.our_table() is not None
    pol = policy(network(), mode=Mode.MONITOR, actions=(ActionKind.BLOCK,))

    async def scenario() -> None:
        comp = EnforcementComponent(pol, nft)
        comp.start(_context(asyncio.get_running_loop(), pol, MemorySink()))
        comp.stop()

    asyncio.run(scenario())
    assert lab.our_table() is None


def test_cli_lists_blocks_from_the_kernel(lab: Lab) -> None:
    pipe = Pipeline(Nft(lab.nft_prefix()), policy(network(block=60)))
    pipe.enforcer.start()
    pipe.submit(scan_finding(lab.scan_ip))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    argv = [IP, "netns", "exec", lab.gateway, sys.executable, "-m", "edgeguard", "net",
            "blocks", "--kernel", "--json"]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    (line,) = proc.stdout.splitlines()
    row = json.loads(line)
    assert row["source"]["ip"] == lab.scan_ip
    assert row["edgeguard"]["finding"]["id"] == f"scan:{lab.scan_ip}:0"
    assert row["rule"]["id"] == "scan-rule"
    human = subprocess.run(argv[:-1], capture_output=True, text=True, env=env, timeout=60,
                           check=False)
    assert lab.scan_ip in human.stdout
    assert "scan-rule" in human.stdout
