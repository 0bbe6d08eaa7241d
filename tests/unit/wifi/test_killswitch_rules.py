"""The kill switch's nftables JSON (no root needed); tests/linux runs it for real."""

from __future__ import annotations

import ipaddress
import json

from edgeguard.wifi.config import VpnConfig, VpnEndpoint
from edgeguard.wifi.killswitch import LEAK_COMMENT, digest_of, ruleset
from edgeguard.wifi.vpnguard import matches_interface


def rules(cfg: VpnConfig, chain: str = "output") -> list[dict[str, object]]:
    return [c["add"]["rule"] for c in ruleset(cfg)["nftables"]
            if "add" in c and "rule" in c["add"] and c["add"]["rule"]["chain"] == chain]


def test_endpoint_parsing() -> None:
    v4 = VpnEndpoint.parse("198.51.100.7:51820")
    assert (str(v4.ip), v4.port, v4.protocol, str(v4)) == (
        "198.51.100.7", 51820, "udp", "198.51.100.7:51820/udp")
    v6 = VpnEndpoint.parse("[2001:db8::7]:1194/tcp")
    assert (v6.ip.version, v6.port, v6.protocol) == (6, 1194, "tcp")


def test_rule_order_puts_dns_drop_before_exceptions() -> None:
    cfg = VpnConfig(interfaces=("wg0", "tun*"),
                    endpoints=(VpnEndpoint.parse("[2001:db8::7]:53/udp"),),
                    allow_lan=(ipaddress.ip_network("fd00::/8"),))
    comments = [r.get("comment") for r in rules(cfg)]
    assert comments[:4] == [None, "vpn interface", "vpn interface", "dns outside the vpn"]
    assert comments.index("vpn endpoint") > comments.index("dns outside the vpn")
    text = json.dumps(rules(cfg))
    for needle in ('"ip6"', '"fd00::"', '"tun*"'):
        assert needle in text
    assert str(comments[-1]).startswith(LEAK_COMMENT)


def test_no_dhcp_when_disabled_and_no_established_exception_in_output() -> None:
    text = json.dumps(rules(VpnConfig(allow_dhcp=False)))
    assert "67" not in text
    assert "nd-neighbor-solicit" not in text
    assert "established" not in text
    assert "established" in json.dumps(rules(VpnConfig(), "forward"))


def test_digest_changes_with_the_configuration() -> None:
    a, b = ruleset(VpnConfig()), ruleset(VpnConfig(interfaces=("wg1",)))
    assert digest_of(a)
    assert digest_of(a) == digest_of(ruleset(VpnConfig()))
    assert digest_of(a) != digest_of(b)


def test_interface_patterns() -> None:
    assert matches_interface(("wg*",), "wg0")
    assert matches_interface(("tun0",), "tun0")
    assert not matches_interface(("tun0",), "tun01")
    assert not matches_interface(("wg*",), "wlan0")
