"""The kill switch with real nftables in namespaces: leaks blocked, the tunnel passes."""

from __future__ import annotations

import json

import pytest
from wifi_netns import IP, Lab, sh

from edgeguard.wifi.config import VpnConfig, VpnEndpoint
from edgeguard.wifi.killswitch import ruleset

pytestmark = pytest.mark.linux

CFG = VpnConfig(interfaces=("wg*",), endpoints=(VpnEndpoint.parse("10.66.0.1:51820"),))

ENGAGE = """
import json, sys
from edgeguard.wifi.config import VpnConfig, VpnEndpoint
from edgeguard.wifi.killswitch import KillSwitch
cfg = VpnConfig(interfaces=("wg*",), endpoints=(VpnEndpoint.parse("10.66.0.1:51820"),))
ks = KillSwitch()
result = ks.engage(cfg) if sys.argv[1] == "engage" else ks.lift()
state = ks.state()
print(json.dumps({"ok": result.ok, "changed": result.changed, "detail": result.detail,
                  "engaged": state.engaged, "blocked": state.blocked_packets}))
"""


def switch(lab: Lab, what: str) -> dict[str, object]:
    done = lab.py(lab.kiosk, "-c", ENGAGE, what)
    out: dict[str, object] = json.loads(done.stdout)
    assert out["ok"], out
    return out


def test_everything_passes_without_the_switch(lab: Lab) -> None:
    assert lab.ping("10.66.0.1")
    assert lab.ping("-6", "-I", "wlan0", "fd66::1")
    assert lab.ping("-I", "wlan0", "10.66.0.1")
    assert lab.delivered("10.66.0.1", 53)


def test_leaks_are_dropped_and_the_tunnel_passes(lab: Lab) -> None:
    out = switch(lab, "engage")
    assert out["engaged"]
    assert out["changed"]
    # via the physical interface: ICMP, ping -I, DNS, any UDP, SO_BINDTODEVICE
    assert not lab.ping("10.66.0.1")
    assert not lab.ping("-I", "wlan0", "10.66.0.1")
    assert not lab.delivered("10.66.0.1", 53)
    assert not lab.delivered("10.66.0.1", 9999)
    assert lab.send("10.66.0.1", 9999, "--device", "wlan0").startswith("blocked")
    assert lab.send("10.77.0.1", 9999, "--device", "wlan0").startswith("blocked")
    assert lab.send("10.66.0.1", 80, "--tcp").startswith("blocked")
    assert not lab.ping("-6", "-I", "wlan0", "fd66::1")  # IPv6 leaks too
    # via the VPN interface: everything, DNS included
    assert lab.ping("10.77.0.1")
    assert lab.ping("-I", "wg0", "10.77.0.1")
    assert lab.ping("-6", "-I", "wg0", "fd77::1")
    assert lab.delivered("10.77.0.1", 53)
    assert lab.delivered("10.77.0.1", 9999, "--device", "wg0")
    # the VPN endpoint via the physical interface (and only its port)
    assert lab.delivered("10.66.0.1", 51820)
    assert not lab.delivered("10.66.0.1", 51821)
    state = switch(lab, "engage")
    assert not state["changed"]  # idempotent
    assert int(str(state["blocked"])) > 0


def test_switch_holds_while_the_tunnel_is_down(lab: Lab) -> None:
    switch(lab, "engage")
    lab.run(lab.kiosk, "ip", "link", "set", "wg0", "down")
    assert not lab.ping("10.66.0.1")
    assert not lab.delivered("10.66.0.1", 53)
    lab.run(lab.kiosk, "ip", "link", "del", "wg0")
    assert not lab.ping("10.66.0.1")
    listed = lab.run(lab.kiosk, "nft", "list", "table", "inet", "edgeguard_vpn")
    assert "policy drop" in listed.stdout


def test_lifting_restores_traffic(lab: Lab) -> None:
    switch(lab, "engage")
    assert not lab.ping("10.66.0.1")
    out = switch(lab, "lift")
    assert out["changed"]
    assert not out["engaged"]
    assert lab.ping("-I", "wlan0", "10.66.0.1")
    assert lab.delivered("10.66.0.1", 53)
    again = switch(lab, "lift")
    assert not again["changed"]


def test_ruleset_is_one_transaction_with_drop_policies() -> None:
    doc = ruleset(CFG)["nftables"]
    chains = [c["add"]["chain"] for c in doc if "add" in c and "chain" in c["add"]]
    assert {c["hook"]: c["policy"] for c in chains} == {"output": "drop", "forward": "drop"}
    assert {"flush": {"table": {"family": "inet", "name": "edgeguard_vpn"}}} in doc


def test_forwarded_clients_leave_only_through_the_tunnel(lab: Lab) -> None:
    """A gateway's LAN clients: forwarded traffic obeys the same switch (forward chain)."""
    client = f"{lab.kiosk[:-2]}-c"
    sh(IP, "netns", "add", client)
    try:
        sh(IP, "-n", lab.kiosk, "link", "add", "lan0", "type", "veth", "peer", "name", "c0",
           "netns", client)
        sh(IP, "-n", lab.kiosk, "addr", "add", "10.88.0.1/24", "dev", "lan0")
        sh(IP, "-n", client, "addr", "add", "10.88.0.2/24", "dev", "c0")
        for ns, dev in ((lab.kiosk, "lan0"), (client, "c0"), (client, "lo")):
            sh(IP, "-n", ns, "link", "set", dev, "up")
        sh(IP, "-n", client, "route", "add", "default", "via", "10.88.0.1")
        sh(IP, "-n", lab.far, "route", "add", "10.88.0.0/24", "via", "10.77.0.2")
        lab.run(lab.kiosk, "sysctl", "-qw", "net.ipv4.ip_forward=1")

        def client_ping(host: str) -> bool:
            done = lab.run(client, "ping", "-c", "1", "-W", "1", host, check=False)
            return done.returncode == 0

        assert client_ping("10.77.0.1")
        switch(lab, "engage")
        assert not client_ping("10.66.0.1")  # forwarded out of the physical interface
        assert client_ping("10.77.0.1")  # forwarded into the tunnel, reply comes back
    finally:
        sh(IP, "netns", "del", client, check=False)
