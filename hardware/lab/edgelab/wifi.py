"""mac80211_hwsim Wi-Fi in the guest: radios, hostapd access points per security class,
and wpa_supplicant stations in their own network namespace.

Every AP class is one hostapd configuration; the same table drives the association tests,
the beacon fixtures (tests/data/wifi/beacons) and the evil twin.
"""

# ruff: noqa: S105, S108 - lab-only credentials; /tmp paths are inside the guest
from __future__ import annotations

import re
import time
from dataclasses import dataclass

from .vm import GuestError, LabVM

__all__ = ["AP_CLASSES", "CLASSES_BY_NAME", "ApClass", "Radio", "Station", "hwsim", "in_netns",
           "link", "move_to_netns", "spawn_ap", "start_ap", "start_station", "wait_ap",
           "wait_connected", "wait_log"]

PSK = "edgeguard-lab-psk"
SAE_PASSWORD = "edgeguard-lab-sae"
_RADIUS = ("ieee8021x=1\nown_ip_addr=127.0.0.1\nauth_server_addr=127.0.0.1\n"
           "auth_server_port=1812\nauth_server_shared_secret=edgeguard-lab\n")


@dataclass(frozen=True)
class ApClass:
    """One way to configure an AP: ``security`` is what edgeguard should classify it as
    (the names of edgeguard.wifi.config.WifiSecurity); ``akms`` the RSN AKM suite types of
    the 00-0F-AC OUI it advertises; ``station`` the wpa_supplicant network block that joins
    it (empty: not joined by the tests)."""

    name: str
    security: str
    akms: tuple[int, ...]
    hostapd: str
    station: str = ""
    extra_bss: str = ""  # a second BSS on the same radio (OWE transition)


AP_CLASSES: tuple[ApClass, ...] = (
    ApClass("open", "open", (), "", "key_mgmt=NONE"),
    ApClass("wep", "wep", (), 'wep_default_key=0\nwep_key0="eglab"\nauth_algs=1\n',
            'key_mgmt=NONE\nwep_key0="eglab"\nwep_tx_keyidx=0'),
    ApClass("wpa-tkip", "wpa-tkip", (),
            f"wpa=1\nwpa_key_mgmt=WPA-PSK\nwpa_pairwise=TKIP\nwpa_passphrase={PSK}\n",
            f'proto=WPA\nkey_mgmt=WPA-PSK\npairwise=TKIP\ngroup=TKIP\npsk="{PSK}"'),
    ApClass("wpa-wpa2-mixed", "wpa-tkip", (2,),
            f"wpa=3\nwpa_key_mgmt=WPA-PSK\nwpa_pairwise=TKIP\nrsn_pairwise=CCMP\n"
            f"wpa_passphrase={PSK}\n"),
    ApClass("wpa2-psk", "wpa2-psk", (2,),
            f"wpa=2\nwpa_key_mgmt=WPA-PSK\nrsn_pairwise=CCMP\nwpa_passphrase={PSK}\n",
            f'key_mgmt=WPA-PSK\npsk="{PSK}"'),
    ApClass("wpa2-psk-sha256-ft", "wpa2-psk", (4, 6),
            f"wpa=2\nwpa_key_mgmt=WPA-PSK-SHA256 FT-PSK\nrsn_pairwise=CCMP\n"
            f"wpa_passphrase={PSK}\nieee80211w=1\nmobility_domain=a1b2\n"
            "nas_identifier=eglab.example\nft_psk_generate_local=1\n"),
    ApClass("wpa3-sae", "wpa3-sae", (8,),
            f"wpa=2\nwpa_key_mgmt=SAE\nrsn_pairwise=CCMP\nsae_password={SAE_PASSWORD}\n"
            "ieee80211w=2\nsae_pwe=0\n",
            f'key_mgmt=SAE\nsae_password="{SAE_PASSWORD}"\nieee80211w=2'),
    ApClass("wpa3-sae-h2e", "wpa3-sae", (8,),
            f"wpa=2\nwpa_key_mgmt=SAE\nrsn_pairwise=CCMP\nsae_password={SAE_PASSWORD}\n"
            "ieee80211w=2\nsae_pwe=2\n"),
    ApClass("sae-transition", "sae-transition", (2, 8),
            f"wpa=2\nwpa_key_mgmt=WPA-PSK SAE\nrsn_pairwise=CCMP\nwpa_passphrase={PSK}\n"
            f"sae_password={SAE_PASSWORD}\nieee80211w=1\n"),
    ApClass("owe", "owe", (18,), "wpa=2\nwpa_key_mgmt=OWE\nrsn_pairwise=CCMP\nieee80211w=2\n"),
    # hostapd's own hwsim tests name the partner BSS by BSSID and SSID: with
    # owe_transition_ifname the open BSS's first beacons lack the element.
    ApClass("owe-transition", "open", (),
            'owe_transition_bssid={bssid_owe}\nowe_transition_ssid="{ssid}-owe"\n',
            extra_bss="bss={iface}_owe\nbssid={bssid_owe}\nssid={ssid}-owe\n"
                      "ignore_broadcast_ssid=1\nwpa=2\nwpa_key_mgmt=OWE\nrsn_pairwise=CCMP\n"
                      'ieee80211w=2\nowe_transition_bssid={bssid}\nowe_transition_ssid="{ssid}"\n'),
    ApClass("wpa2-enterprise", "wpa2-enterprise", (1,),
            "wpa=2\nwpa_key_mgmt=WPA-EAP\nrsn_pairwise=CCMP\n" + _RADIUS),
    ApClass("wpa3-enterprise", "wpa3-enterprise", (5,),
            "wpa=2\nwpa_key_mgmt=WPA-EAP-SHA256\nrsn_pairwise=CCMP\nieee80211w=2\n" + _RADIUS),
    ApClass("wpa3-enterprise-192", "wpa3-enterprise-192", (12,),
            "wpa=2\nwpa_key_mgmt=WPA-EAP-SUITE-B-192\nrsn_pairwise=GCMP-256\n"
            "group_cipher=GCMP-256\ngroup_mgmt_cipher=BIP-GMAC-256\nieee80211w=2\n" + _RADIUS),
    ApClass("fils-sha256", "wpa2-enterprise", (14,),
            "wpa=2\nwpa_key_mgmt=FILS-SHA256\nrsn_pairwise=CCMP\nieee80211w=1\n"
            "fils_realm=eglab.example\n" + _RADIUS),
)
CLASSES_BY_NAME = {c.name: c for c in AP_CLASSES}


@dataclass(frozen=True)
class Radio:
    phy: str
    iface: str
    mac: str


def hwsim(vm: LabVM, radios: int) -> list[Radio]:
    """(Re)load mac80211_hwsim with ``radios`` radios and return them in order."""
    vm.sh("rmmod mac80211_hwsim 2>/dev/null || true; "
          f"modprobe mac80211_hwsim radios={radios}; udevadm settle")
    out = vm.sh("for p in /sys/class/ieee80211/*; do for n in $p/device/net/*; do "
                "echo $(basename $p) $(basename $n) $(cat $n/address); done; done").stdout
    found = [Radio(*line.split()) for line in out.splitlines() if line.strip()]
    found.sort(key=lambda r: int(r.phy.removeprefix("phy")))
    if len(found) != radios:
        raise GuestError(f"hwsim: expected {radios} radios, found {found}")
    return found


def _wait_log(vm: LabVM, log: str, pattern: str, timeout: float, pid: int) -> str:
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = vm.run("/bin/cat", log, check=False).stdout
        if re.search(pattern, text):
            return text
        if vm.wait(pid) is not None:
            raise GuestError(f"{log}: process exited before {pattern!r}:\n{text}")
        time.sleep(0.5)
    raise TimeoutError(f"{log}: no {pattern!r} within {timeout} s:\n{text}")


def hostapd_conf(cls: ApClass, radio: Radio, ssid: str, channel: int) -> str:
    owe_mac = radio.mac[:-2] + "01"
    body = (f"interface={radio.iface}\ndriver=nl80211\nssid={ssid}\nhw_mode=g\n"
            f"channel={channel}\nctrl_interface=/run/hostapd\n" + cls.hostapd)
    if cls.extra_bss:
        body += cls.extra_bss
    return body.format(iface=radio.iface, bssid=radio.mac, bssid_owe=owe_mac, ssid=ssid)


def in_netns(netns: str | None, *argv: str) -> tuple[str, ...]:
    return ("/usr/sbin/ip", "netns", "exec", netns, *argv) if netns else argv


def spawn_ap(vm: LabVM, cls: ApClass, radio: Radio, *, ssid: str, channel: int = 1,
             netns: str | None = None) -> tuple[int, str]:
    """Start hostapd for ``cls`` on ``radio`` without waiting; returns (pid, log).
    With ``netns`` the radio must already be in that namespace."""
    conf = f"/tmp/hostapd-{radio.iface}.conf"
    log = f"/tmp/hostapd-{radio.iface}.log"
    vm.put(conf, hostapd_conf(cls, radio, ssid, channel))
    vm.run("/bin/rm", "-f", log)
    return vm.spawn(*in_netns(netns, "/usr/sbin/hostapd", "-t", conf), log=log), log


def wait_ap(vm: LabVM, pid: int, log: str, timeout: float = 60) -> None:
    """Wait until hostapd says AP-ENABLED (raises if it exits first)."""
    _wait_log(vm, log, r"AP-ENABLED", timeout, pid)


def start_ap(vm: LabVM, cls: ApClass, radio: Radio, *, ssid: str, channel: int = 1,
             timeout: float = 60, netns: str | None = None) -> int:
    """Start hostapd for ``cls`` on ``radio``; returns its pid once AP-ENABLED."""
    pid, log = spawn_ap(vm, cls, radio, ssid=ssid, channel=channel, netns=netns)
    wait_ap(vm, pid, log, timeout)
    return pid


@dataclass(frozen=True)
class Station:
    pid: int
    netns: str | None
    radio: Radio
    log: str


def move_to_netns(vm: LabVM, netns: str, *radios: Radio) -> None:
    """Create ``netns`` (if needed) and move the radios' wiphys into it."""
    vm.sh(f"[ -e /run/netns/{netns} ] || ip netns add {netns}; "
          + "; ".join(f"iw phy {r.phy} set netns name {netns}" for r in radios))


def start_station(vm: LabVM, radio: Radio, *, ssid: str, network: str, netns: str | None,
                  bssid: str | None = None) -> Station:
    """Run wpa_supplicant for one network on ``radio`` (moved into ``netns`` first unless
    that is None: then it stays in the root namespace, where the daemon watches)."""
    if netns:
        move_to_netns(vm, netns, radio)
    conf = f"/tmp/wpas-{radio.iface}.conf"
    log = f"/tmp/wpas-{radio.iface}.log"
    extra = f"\n    bssid={bssid}" if bssid else ""
    lines = "\n    ".join(network.splitlines())
    vm.put(conf, "ctrl_interface=/run/wpa_supplicant\nsae_pwe=2\n"
                 f'network={{\n    ssid="{ssid}"\n    scan_ssid=1\n    {lines}{extra}\n}}\n')
    vm.run("/bin/rm", "-f", log)
    pid = vm.spawn(*in_netns(netns, "/usr/sbin/wpa_supplicant", "-D", "nl80211", "-i",
                             radio.iface, "-c", conf, "-t"), log=log)
    return Station(pid, netns, radio, log)


def wait_connected(vm: LabVM, sta: Station, timeout: float = 60) -> str:
    """Wait for CTRL-EVENT-CONNECTED; returns the supplicant log so far."""
    return _wait_log(vm, sta.log, r"CTRL-EVENT-CONNECTED", timeout, sta.pid)


def wait_log(vm: LabVM, sta: Station, pattern: str, timeout: float = 60) -> str:
    """Wait for ``pattern`` (a regex) in the supplicant log."""
    return _wait_log(vm, sta.log, pattern, timeout, sta.pid)


def link(vm: LabVM, sta: Station) -> str:
    """``iw dev IFACE link`` as the station sees it."""
    return vm.run(*in_netns(sta.netns, "/usr/sbin/iw", "dev", sta.radio.iface, "link"),
                  check=False).stdout
