"""Decision -> nftables change: every action kind, the allowlist and the refusals."""

from __future__ import annotations

import ipaddress

import pytest

from edgeguard.actions.nftables.actions import NftAction, would_be
from edgeguard.actions.nftables.config import EnforcementConfig
from edgeguard.actions.nftables.plan import Change, Refusal, plan
from edgeguard.events import ActionKind, Decision, Endpoint, Finding, Mode, Severity
from edgeguard.net.config import NetworkConfig
from edgeguard.policy.types import Duration, MacAddress

NET = NetworkConfig(
    allowlist=(ipaddress.ip_network("10.0.0.0/28"), ipaddress.ip_network("fd00:1::/64")),
    block_duration=Duration(900),
    enforcement=EnforcementConfig(flow_duration=Duration(120), rate_limit_duration=Duration(60),
                                  mac_allowlist=(MacAddress("02:00:00:00:00:01"),)))


def decision(src: str | None = "10.1.2.3", kind: str = "scan", mac: str | None = None,
             dst: str | None = "10.9.9.9", sport: int | None = None, dport: int | None = None,
             transport: str | None = "tcp", mode: Mode = Mode.ENFORCE) -> Decision:
    finding = Finding(kind=kind, subtype="syn", message="m", identifier=f"{kind}:{src}",
                      severity=Severity.SEVERE, source=Endpoint(ip=src, mac=mac, port=sport),
                      destinations=(Endpoint(ip=dst, port=dport),) if dst else (),
                      transport=transport)
    return Decision(finding=finding, rule_id="port-scan", severity=Severity.SEVERE, mode=mode,
                    actions=(ActionKind.BLOCK,))


def test_block_ipv4_and_ipv6_sources() -> None:
    c4 = plan(decision("10.1.2.3"), ActionKind.BLOCK, NET)
    assert isinstance(c4, Change)
    assert c4 == Change(ActionKind.BLOCK, "block4", ("10.1.2.3",), 900, c4.tag)
    assert (c4.tag.rule_id, c4.tag.finding_kind, c4.tag.finding_id) == (
        "port-scan", "scan/syn", "scan:10.1.2.3")
    c6 = plan(decision("FD00:2::0001"), ActionKind.BLOCK, NET)
    assert isinstance(c6, Change)
    assert (c6.set, c6.keys) == ("block6", ("fd00:2::1",))  # normalised


def test_ipv4_mapped_ipv6_is_blocked_as_ipv4() -> None:
    change = plan(decision("::ffff:10.1.2.3"), ActionKind.BLOCK, NET)
    assert isinstance(change, Change)
    assert (change.set, change.keys) == ("block4", ("10.1.2.3",))


@pytest.mark.parametrize("src", ["10.0.0.5", "fd00:1::7", "::ffff:10.0.0.1"])
@pytest.mark.parametrize("kind", [ActionKind.BLOCK, ActionKind.RATE_LIMIT, ActionKind.DROP_FLOW])
def test_allowlisted_sources_are_refused_by_every_action(src: str, kind: ActionKind) -> None:
    result = plan(decision(src, sport=1, dport=2), kind, NET)
    assert isinstance(result, Refusal)
    assert "allowlisted" in result.reason


def test_flow_to_an_allowlisted_destination_is_refused() -> None:
    result = plan(decision(dst="10.0.0.2", sport=5, dport=6), ActionKind.DROP_FLOW, NET)
    assert isinstance(result, Refusal)
    assert "10.0.0.2 is allowlisted" in result.reason


def test_drop_flow_needs_a_5tuple() -> None:
    ok = plan(decision(sport=40000, dport=6881, transport="UDP"), ActionKind.DROP_FLOW, NET)
    assert isinstance(ok, Change)
    assert (ok.set, ok.keys, ok.timeout) == (
        "flow4", (("10.1.2.3", "10.9.9.9", "udp", 40000, 6881),), 120)
    for bad in (decision(sport=1, dport=2, transport="icmp"),
                decision(dst=None, sport=1, dport=2),
                decision(dst="fd00:9::1", sport=1, dport=2)):
        assert isinstance(plan(bad, ActionKind.DROP_FLOW, NET), Refusal)


def test_drop_flow_without_ports_cuts_the_actor_from_each_peer() -> None:
    """What the BitTorrent detector reports: the actor and its peers, no ports."""
    finding = Finding(kind="bittorrent", subtype="handshake", message="m", identifier="bt:x",
                      severity=Severity.MODERATE, source=Endpoint(ip="10.1.2.3"),
                      destinations=(Endpoint(ip="10.9.9.9"),
                                    Endpoint(ip="10.0.0.2"),  # allowlisted
                                    Endpoint(ip="fd00:9::1"),  # other family
                                    Endpoint(ip="10.9.9.8", port=51413),
                                    Endpoint(ip="10.9.9.9", port=6881)),  # same pair again
                      transport="tcp")
    d = Decision(finding=finding, rule_id="p2p", severity=Severity.MODERATE, mode=Mode.ENFORCE,
                 actions=(ActionKind.DROP_FLOW,))
    change = plan(d, ActionKind.DROP_FLOW, NET)
    assert isinstance(change, Change)
    assert change.set == "pair4"
    assert change.keys == (("10.1.2.3", "10.9.9.9", "tcp"), ("10.1.2.3", "10.9.9.8", "tcp"))
    assert change.describe() == ("drop flow tcp 10.1.2.3 <-> 10.9.9.9, tcp 10.1.2.3 <-> "
                                 "10.9.9.8 for 120 s (inet edgeguard set pair4)")
    only_allowlisted = decision(dst="10.0.0.2")
    refused = plan(only_allowlisted, ActionKind.DROP_FLOW, NET)
    assert isinstance(refused, Refusal)
    assert "10.0.0.2 is allowlisted" in refused.reason


def test_spoofed_flood_is_rate_limited_by_the_senders_mac() -> None:
    """The flood detector reports a spoofed flood with no source IP but the L2 sender."""
    spoofed = decision(src=None, kind="flood", mac="02:AA:00:00:00:09")
    change = plan(spoofed, ActionKind.RATE_LIMIT, NET)
    assert isinstance(change, Change)
    assert (change.set, change.keys, change.timeout) == ("limitmac", ("02:aa:00:00:00:09",), 60)
    allowed = decision(src=None, kind="flood", mac="02:00:00:00:00:01")
    assert isinstance(plan(allowed, ActionKind.RATE_LIMIT, NET), Refusal)
    assert isinstance(plan(spoofed, ActionKind.BLOCK, NET), Refusal)  # not a MAC-block kind


@pytest.mark.parametrize(("transport", "sport", "dport"), [
    ("tcp", 50000, 7680), ("udp", 7680, 50000), ("udp", 40000, 3544)])
def test_flows_on_excluded_benign_ports_are_never_cut(transport: str, sport: int,
                                                      dport: int) -> None:
    """Delivery Optimization and Teredo (network.exclusions) are allowlisted traffic."""
    result = plan(decision(sport=sport, dport=dport, transport=transport),
                  ActionKind.DROP_FLOW, NET)
    assert isinstance(result, Refusal)
    assert "excluded" in result.reason


def test_rate_limit_uses_its_own_duration() -> None:
    change = plan(decision(), ActionKind.RATE_LIMIT, NET)
    assert isinstance(change, Change)
    assert (change.set, change.timeout) == ("limit4", 60)


def test_spoofing_actor_is_blocked_by_mac_not_by_the_forged_ip() -> None:
    # The forged IP is even allowlisted: the MAC is still blocked.
    change = plan(decision("10.0.0.1", kind="arp-spoof", mac="02-AA-BB-CC-DD-EE"),
                  ActionKind.BLOCK, NET)
    assert isinstance(change, Change)
    assert (change.set, change.keys) == ("blockmac", ("02:aa:bb:cc:dd:ee",))
    assert isinstance(plan(decision(kind="arp-spoof", mac=None), ActionKind.BLOCK, NET), Refusal)
    refused = plan(decision(kind="arp-spoof", mac="02:00:00:00:00:01"), ActionKind.BLOCK, NET)
    assert isinstance(refused, Refusal)
    assert "mac_allowlist" in refused.reason


def test_missing_or_bad_source_is_a_refusal_not_an_exception() -> None:
    assert isinstance(plan(decision(src=None), ActionKind.BLOCK, NET), Refusal)
    assert isinstance(plan(decision(src="not-an-ip"), ActionKind.BLOCK, NET), Refusal)
    assert isinstance(plan(decision(), ActionKind.LOG, NET), Refusal)


def test_would_be_text_names_the_change() -> None:
    assert would_be(decision(), ActionKind.BLOCK, NET) == (
        "drop traffic of 10.1.2.3 for 900 s (inet edgeguard set block4)")
    assert "allowlisted" in would_be(decision("10.0.0.3"), ActionKind.BLOCK, NET)


class ExplodingEnforcer:
    counts: dict[str, int] = {}  # noqa: RUF012

    def apply(self, change: Change) -> None:
        raise AssertionError("monitor mode must not reach the kernel")


def test_monitor_mode_action_never_touches_the_enforcer() -> None:
    action = NftAction(ActionKind.BLOCK, ExplodingEnforcer(), lambda: NET)  # type: ignore[arg-type]
    result = action.apply(decision(mode=Mode.MONITOR))
    assert result.ok
    assert not result.changed
    assert "monitor mode, not installed" in result.detail


def test_only_nft_kinds_are_actions() -> None:
    with pytest.raises(ValueError, match="not an nftables action"):
        NftAction(ActionKind.DISCONNECT, ExplodingEnforcer(), lambda: NET)  # type: ignore[arg-type]
