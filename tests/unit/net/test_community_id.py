"""Community ID v1 (``network.community_id``): the specification's published examples,
agreement with the reference implementation (the ``communityid`` package, a test-only
dependency) on random flows, and the id on replayed BitTorrent findings."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeguard.ecs import finding_record, record_fields
from edgeguard.events import Finding, Flow, Severity
from edgeguard.net.community_id import ICMP, ICMP6, SCTP, TCP, UDP, community_id
from edgeguard.net.replay import replay_file
from edgeguard.policy.load import load_policy
from tests.unit.net.netdata import PCAPS

# The examples in the specification's README (github.com/corelight/community-id-spec)
# and its baseline for ICMPv6 neighbour discovery and a port-less protocol (GRE 47/46).
PUBLISHED = [
    ((TCP, "128.232.110.120", "66.35.250.204", 34855, 80), "1:LQU9qZlK+B5F3KDmev6m5PMibrg="),
    ((UDP, "192.168.1.52", "8.8.8.8", 54585, 53), "1:d/FP5EW3wiY1vCndhwleRRKHowQ="),
    ((ICMP, "192.168.0.89", "192.168.0.1", 8, 0), "1:X0snYXpgwiv9TZtqg64sgzUn6Dk="),
    ((ICMP6, "fe80::200:86ff:fe05:80da", "fe80::260:97ff:fe07:69ea", 135, 0),
     "1:dGHyGvjMfljg6Bppwm3bg0LO8TY="),
    ((46, "10.1.24.4", "10.1.12.1", None, None), "1:/nQI4Rh/TtY3mf0R2gJFBkVlgS4="),
]


@pytest.mark.parametrize(("flow", "expected"), PUBLISHED)
def test_published_examples(flow: tuple, expected: str) -> None:
    proto, src, dst, sport, dport = flow
    assert community_id(proto, src, dst, sport, dport) == expected
    if proto == ICMP:  # the echo reply (type 0) back is the same flow
        assert community_id(proto, dst, src, 0, 0) == expected
    elif proto != ICMP6:  # both directions of a flow are one id
        assert community_id(proto, dst, src, dport, sport) == expected


def _reference(proto: int, src: str, dst: str, sport: int | None, dport: int | None,
               seed: int) -> str:
    communityid = pytest.importorskip("communityid")
    tpl = communityid.FlowTuple(proto, src, dst, sport, dport)
    return str(communityid.CommunityID(seed=seed).calc(tpl))


_v4 = st.ip_addresses(v=4).map(str)
_v6 = st.ip_addresses(v=6).map(str)
_port = st.integers(0, 65535)


@settings(max_examples=200, deadline=None)
@given(v6=st.booleans(), data=st.data(),
       proto=st.sampled_from([TCP, UDP, SCTP, ICMP, ICMP6, 47]),
       seed=st.integers(0, 65535))
def test_agrees_with_the_reference_implementation(v6: bool, data: st.DataObject, proto: int,
                                                  seed: int) -> None:
    addr = _v6 if v6 else _v4
    src, dst = data.draw(addr), data.draw(addr)
    if data.draw(st.booleans()):
        dst = src  # same address: ordering falls to the ports
    if proto in (ICMP, ICMP6):
        sport, dport = data.draw(st.integers(0, 255)), data.draw(st.integers(0, 255))
    elif proto == 47:
        sport = dport = None
    else:
        sport, dport = data.draw(_port), data.draw(_port)
    assert community_id(proto, src, dst, sport, dport, seed=seed) == \
        _reference(proto, src, dst, sport, dport, seed)


def test_refuses_what_has_no_id() -> None:
    with pytest.raises(ValueError, match="families"):
        community_id(TCP, "10.0.0.1", "::1", 1, 2)
    with pytest.raises(ValueError, match="needs ports"):
        community_id(TCP, "10.0.0.1", "10.0.0.2")
    with pytest.raises(ValueError, match="out of range"):
        community_id(UDP, "10.0.0.1", "10.0.0.2", 1, 70000)


def test_a_finding_with_a_flow_carries_its_id_and_one_without_does_not() -> None:
    flow = Flow(TCP, "128.232.110.120", "66.35.250.204", 34855, 80)
    base = Finding(kind="bittorrent", subtype="handshake", message="m", identifier="i",
                   severity=Severity.MODERATE)
    with_flow = record_fields(finding_record(Finding(**{**_as_kwargs(base), "flow": flow})),
                              0.0, "gw")
    assert with_flow["network.community_id"] == "1:LQU9qZlK+B5F3KDmev6m5PMibrg="
    assert "network.community_id" not in record_fields(finding_record(base), 0.0, "gw")


def _as_kwargs(finding: Finding) -> dict:
    return {name: getattr(finding, name) for name in Finding.__slots__}


def test_replayed_bittorrent_findings_carry_the_id_of_their_flow() -> None:
    """Each handshake finding of bt_split.pcap names one TCP flow of the capture: its id is
    the reference implementation's for that flow, as Zeek's conn.log would give it."""
    scapy = pytest.importorskip("scapy.all")
    flows: set[str] = set()
    for pkt in scapy.rdpcap(str(PCAPS / "bt_split.pcap")):
        for layer in ("IP", "IPv6"):
            if pkt.haslayer(layer) and pkt.haslayer("TCP"):
                ip, tcp = pkt[layer], pkt["TCP"]
                flows.add(_reference(TCP, ip.src, ip.dst, int(tcp.sport), int(tcp.dport), 0))
    result = replay_file(PCAPS / "bt_split.pcap", load_policy().policy.network)
    ids = [record_fields(finding_record(f), 0.0, "gw").get("network.community_id")
           for f in result.findings]
    assert ids
    assert all(isinstance(i, str) and i in flows for i in ids), ids
    assert len(set(ids)) == len(ids)  # one flow per finding, each a different one
