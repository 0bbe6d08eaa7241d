"""Real nftables in throwaway namespaces: blocks drop real packets, expire on time,
never touch an allowlisted host or anything outside ``inet edgeguard``."""

from __future__ import annotations

import dataclasses
import time

import pytest
from helpers import Pipeline, network, policy, scan_finding
from nftlab import NFT, Lab

from edgeguard.actions.nftables.ruleset import parse_entries, parse_rule_counters
from edgeguard.actions.nftables.runner import Nft
from edgeguard.events import ActionKind, Endpoint, Finding, Mode, Severity

pytestmark = pytest.mark.linux


def wait_for(predicate, timeout: float, step: float = 0.2) -> float:  # type: ignore[no-untyped-def]
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(step)
    raise AssertionError("condition not met in time")


def test_block_drops_forwarded_probes_then_expires_on_time(lab: Lab) -> None:
    lab.count_at_target(lab.scan_ip)
    pipe = Pipeline(Nft(lab.nft_prefix()), policy(network(block=3)))
    pipe.enforcer.start()
    lab.syns(20)
    assert lab.received(lab.scan_ip) == 20  # the table alone drops nothing

    (result,) = pipe.submit(scan_finding(lab.scan_ip))
    assert result.ok
    assert result.changed
    blocked_at = time.monotonic()
    (rec,) = pipe.records("block")
    assert rec.event_type == ("denied",)
    assert rec.outcome.value == "success"
    assert rec.fields["edgeguard.finding.id"] == f"scan:{lab.scan_ip}:0"

    lab.syns(20)
    assert lab.received(lab.scan_ip) == 20  # nothing more reached the far side
    counters = parse_rule_counters(lab.our_table() or [])
    assert counters["block4"] >= 20

    # The kernel expires the element; the poll notices and audits it.
    wait_for(lambda: not pipe.enforcer.entries(), timeout=8)
    elapsed = time.monotonic() - blocked_at
    assert 2.0 <= elapsed <= 6.0, elapsed
    (expired,) = pipe.enforcer.poll()
    assert expired.key == lab.scan_ip
    (rec,) = pipe.records("network-block-expired")
    assert rec.event_type == ("allowed", "end")
    assert rec.fields["edgeguard.finding.id"] == f"scan:{lab.scan_ip}:0"
    assert rec.fields["rule.id"] == "scan-rule"

    lab.syns(20)
    assert lab.received(lab.scan_ip) == 40  # traffic flows again after expiry
    pipe.enforcer.stop()
    assert lab.our_table() is None


def test_allowlisted_source_is_never_blocked(lab: Lab) -> None:
    lab.count_at_target(lab.scan_ip2)
    pipe = Pipeline(Nft(lab.nft_prefix()), policy(network(allow=(f"{lab.scan_ip2}/32",))))
    pipe.enforcer.start()
    (result,) = pipe.submit(scan_finding(lab.scan_ip2))
    assert not result.ok
    assert not result.changed
    assert "allowlisted" in result.detail
    assert pipe.enforcer.entries() == []
    (rec,) = pipe.records("block")
    assert rec.outcome.value == "failure"  # the block did not happen, and says why
    assert "allowlisted" in str(rec.fields["error.message"])

    # Defence in depth: even an element forced into the set by hand does not drop an
    # allowlisted source, because the ruleset accepts the allowlist first.
    lab.ns(lab.gateway, NFT, "add", "element", "inet", "edgeguard", "block4",
           f"{{ {lab.scan_ip2} timeout 30s }}")
    lab.syns(15, source=lab.scan_ip2)
    assert lab.received(lab.scan_ip2) == 15


def test_monitor_mode_installs_nothing(lab: Lab) -> None:
    lab.count_at_target(lab.scan_ip)
    pipe = Pipeline(Nft(lab.nft_prefix()), policy(network(), mode=Mode.MONITOR))
    pipe.enforcer.start()
    before = lab.gateway_ruleset()
    assert pipe.submit(scan_finding(lab.scan_ip)) == []  # no action ran
    (alert,) = pipe.sink.records[-1:]
    assert alert.mode is Mode.MONITOR
    assert alert.fields["edgeguard.would_act"] == ("block",)
    # Defence in depth: the action itself refuses to install in monitor mode.
    decision = pipe.engine.decide(scan_finding(lab.scan_ip, n=1))
    result = pipe.actions[ActionKind.BLOCK].apply(decision)
    assert result.ok
    assert not result.changed
    assert result.detail.startswith("monitor mode, not installed: would drop traffic of "
                                    f"{lab.scan_ip}")
    assert lab.gateway_ruleset() == before
    lab.syns(10)
    assert lab.received(lab.scan_ip) == 10


def test_ipv6_source_block(lab: Lab) -> None:
    lab.count_at_target(lab.scan_ip6)
    pipe = Pipeline(Nft(lab.nft_prefix()), policy(network(block=30)))
    pipe.enforcer.start()
    lab.ping6(5)
    assert lab.received(lab.scan_ip6) == 5
    (result,) = pipe.submit(scan_finding(lab.scan_ip6, dst=lab.target_ip6))
    assert result.ok
    lab.ping6(5)
    assert lab.received(lab.scan_ip6) == 5
    assert [e.set for e in pipe.enforcer.entries()] == ["block6"]


def test_mac_block_for_spoofing_actor(lab: Lab) -> None:
    """An ARP spoofer is blocked by its MAC, whatever (forged) IP it sends from."""
    lab.count_at_target(lab.scan_ip, lab.scan_ip2)
    mac = lab.mac(lab.scanner, "eth0")
    pipe = Pipeline(Nft(lab.nft_prefix()), policy(network(block=30)))
    pipe.enforcer.start()
    # The finding's IP is the one the spoofer claims (here the gateway's own).
    (result,) = pipe.submit(scan_finding(lab.gw_lan, mac=mac, kind="arp-spoof"))
    assert result.ok, result.detail
    (entry,) = pipe.enforcer.entries()
    assert (entry.set, entry.key) == ("blockmac", mac)
    lab.syns(10)
    lab.syns(10, source=lab.scan_ip2)
    assert lab.received(lab.scan_ip) == 0
    assert lab.received(lab.scan_ip2) == 0


def test_mac_allowlist_is_never_blocked(lab: Lab) -> None:
    mac = lab.mac(lab.scanner, "eth0")
    pipe = Pipeline(Nft(lab.nft_prefix()), policy(network(mac_allowlist=(mac,))))
    pipe.enforcer.start()
    (result,) = pipe.submit(scan_finding(lab.gw_lan, mac=mac, kind="arp-spoof"))
    assert not result.ok
    assert "mac_allowlist" in result.detail
    assert pipe.enforcer.entries() == []


def test_drop_flow_drops_both_directions_of_one_5tuple_only(lab: Lab) -> None:
    lab.count_at_target(lab.scan_ip)
    pipe = Pipeline(Nft(lab.nft_prefix()), policy(network(flow_duration=30),
                                                  actions=(ActionKind.DROP_FLOW,)))
    pipe.enforcer.start()
    finding = scan_finding(lab.scan_ip, kind="bittorrent", sport=40000, dport=6881,
                           transport="udp")
    (result,) = pipe.submit(finding)
    assert result.ok, result.detail
    lab.syns(10, udp=True, sport=40000, dport=6881)
    assert lab.received(lab.scan_ip) == 0  # the flow is dropped
    lab.syns(10, udp=True, sport=40001, dport=6881)
    assert lab.received(lab.scan_ip) == 10  # another flow of the same host is not
    # The reply direction (target -> scanner, ports swapped) is dropped too.
    lab.syns(7, udp=True, sport=6881, dport=40000, src_ns=lab.target, dst=lab.scan_ip)
    counters = parse_rule_counters(lab.our_table() or [])
    assert counters["flow4"] == 10
    assert counters["flow4-reply"] == 7


def test_pair_drop_cuts_a_p2p_actor_from_its_peer_whatever_the_ports(lab: Lab) -> None:
    """The BitTorrent detector names the actor and its peers, not ports."""
    lab.count_at_target(lab.scan_ip)
    pipe = Pipeline(Nft(lab.nft_prefix()), policy(network(flow_duration=30),
                                                  actions=(ActionKind.DROP_FLOW,)))
    pipe.enforcer.start()
    finding = scan_finding(lab.scan_ip, kind="bittorrent", transport="udp")
    (result,) = pipe.submit(finding)
    assert result.ok, result.detail
    (entry,) = pipe.enforcer.entries()
    assert (entry.set, entry.key) == ("pair4", (lab.scan_ip, lab.target_ip, "udp"))
    lab.syns(10, udp=True, sport=40000, dport=6881)
    lab.syns(10, udp=True, sport=5555, dport=7777)  # a reconnect from other ports
    assert lab.received(lab.scan_ip) == 0
    lab.syns(10)  # TCP between the same hosts is another protocol: not cut
    assert lab.received(lab.scan_ip) == 10
    lab.syns(7, udp=True, sport=6881, dport=40000, src_ns=lab.target, dst=lab.scan_ip)
    counters = parse_rule_counters(lab.our_table() or [])
    assert counters["pair4"] == 20
    assert counters["pair4-reply"] == 7


def test_multi_peer_change_is_one_transaction_and_idempotent(lab: Lab) -> None:
    nft = Nft(lab.nft_prefix())
    pipe = Pipeline(nft, policy(network(), actions=(ActionKind.DROP_FLOW,)))
    pipe.enforcer.start()
    action = pipe.actions[ActionKind.DROP_FLOW]
    one = pipe.engine.decide(scan_finding(lab.scan_ip, kind="bittorrent"))
    assert action.apply(one).changed
    two = dataclasses.replace(one, finding=dataclasses.replace(
        one.finding, destinations=(Endpoint(ip=lab.target_ip), Endpoint(ip="10.77.2.99"))))
    calls = nft.calls
    result = action.apply(two)  # one peer already cut: still one consistent result
    assert result.ok
    assert result.changed
    assert nft.calls - calls == 2  # create refused as a whole (EEXIST), then one add
    assert {e.key[1] for e in pipe.enforcer.entries()} == {lab.target_ip, "10.77.2.99"}
    again = action.apply(one)
    assert again.ok
    assert not again.changed


def test_spoofed_flood_is_rate_limited_by_the_senders_mac(lab: Lab) -> None:
    lab.count_at_target("tcp dport 80")
    pipe = Pipeline(Nft(lab.nft_prefix()), policy(
        network(rate_limit=10, rate_limit_burst=5), actions=(ActionKind.RATE_LIMIT,)))
    pipe.enforcer.start()
    flood = Finding(kind="flood", subtype="spoofed-syn-flood", message="spoofed SYN flood",
                    identifier="flood:x", severity=Severity.SEVERE,
                    source=Endpoint(mac=lab.mac(lab.scanner, "eth0")),
                    destinations=(Endpoint(ip=lab.target_ip, port=80),), transport="tcp")
    (result,) = pipe.submit(flood)
    assert result.ok, result.detail
    lab.syns(150, rand_source=True)  # 150 different forged source addresses
    arrived = lab.received("tcp dport 80")
    assert 1 <= arrived <= 60, arrived
    dropped = parse_rule_counters(lab.our_table() or [])["limit-mac"]
    # A few random sources are martians the gateway's routing discards after us.
    assert 90 <= dropped <= 150 - arrived


def test_rate_limit_caps_a_flooding_source(lab: Lab) -> None:
    lab.count_at_target(lab.scan_ip, lab.scan_ip2)
    pipe = Pipeline(Nft(lab.nft_prefix()), policy(
        network(rate_limit=10, rate_limit_burst=5), actions=(ActionKind.RATE_LIMIT,)))
    pipe.enforcer.start()
    (result,) = pipe.submit(scan_finding(lab.scan_ip, kind="flood"))
    assert result.ok, result.detail
    lab.syns(150)  # ~0.3 s at 2 ms spacing: far over 10/s
    lab.syns(150, source=lab.scan_ip2)  # a source that is not limited
    limited = lab.received(lab.scan_ip)
    assert 1 <= limited <= 60, limited  # burst + rate over the send time, never all
    assert lab.received(lab.scan_ip2) == 150
    assert parse_rule_counters(lab.our_table() or [])["limit4"] == 150 - limited


def test_set_size_cap_under_a_flood_of_sources(lab: Lab) -> None:
    pipe = Pipeline(Nft(lab.nft_prefix()), policy(network(block=60, set_size=16)))
    pipe.enforcer.start()
    results = [pipe.submit(scan_finding(f"10.66.{i // 250}.{i % 250 + 1}"))[0]
               for i in range(40)]
    assert sum(r.ok for r in results) == 16
    refused = [r for r in results if not r.ok]
    assert len(refused) == 24
    assert all("is full" in r.detail for r in refused)
    assert pipe.enforcer.counts["set_full"] == 24
    assert len(pipe.enforcer.entries()) == 16
    pipe.enforcer.poll()
    (summary,) = pipe.records("network-block-set-full")
    assert summary.fields["edgeguard.block.refused"] == 24
    assert sum(r.outcome.value == "failure" for r in pipe.records("block")) == 24


def test_repeated_apply_is_idempotent(lab: Lab) -> None:
    pipe = Pipeline(Nft(lab.nft_prefix()), policy(network(block=60)))
    pipe.enforcer.start()
    decision = pipe.engine.decide(scan_finding(lab.scan_ip))
    first = pipe.actions[ActionKind.BLOCK].apply(decision)
    second = pipe.actions[ActionKind.BLOCK].apply(decision)
    assert first.changed
    assert second.ok
    assert not second.changed
    assert len(pipe.enforcer.entries()) == 1


def test_entries_are_read_back_from_the_kernel(lab: Lab) -> None:
    pipe = Pipeline(Nft(lab.nft_prefix()), policy(network(block=60)))
    pipe.enforcer.start()
    pipe.submit(scan_finding(lab.scan_ip))
    listing = lab.our_table() or []
    (entry,) = parse_entries(listing)
    assert entry.tag.finding_id == f"scan:{lab.scan_ip}:0"
    assert entry.tag.rule_id == "scan-rule"
    assert entry.tag.finding_kind == "scan/syn"
    assert 55 <= entry.expires <= 60
