"""The ``wifi:`` section of the policy (Wi-Fi security floor and VPN kill switch).

Every key is declared with its default, meaning and unit; ``docs/wifi.md`` lists them.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from dataclasses import dataclass

from edgeguard.events import Mode
from edgeguard.policy.types import Duration, IPNetwork, MacAddress, setting

__all__ = ["ApprovedNetwork", "VpnConfig", "VpnEndpoint", "WifiConfig", "WifiSecurity"]


class WifiSecurity(enum.Enum):
    """Security classes, weakest first (the order is :attr:`rank`).

    The order answers "how little does an outsider need to join or read the traffic":
    no-credential networks (open, then OWE, which encrypts but lets anyone join, so it is
    *public*) rank below any network with a credential; broken ciphers (WEP, then WPA1 or
    any TKIP) below CCMP/GCMP; a pre-shared key (offline dictionary attack on one captured
    handshake) below SAE transition (SAE clients are safe, old clients still use PSK), below
    SAE; per-user enterprise credentials at the top, WPA3 (management frame protection
    required) above WPA2, and the 192-bit Suite-B mode above both. ``unknown`` (anything
    we cannot parse or do not recognise) ranks lowest: it fails closed.
    """

    UNKNOWN = "unknown"
    OPEN = "open"
    OWE = "owe"
    WEP = "wep"
    WPA_TKIP = "wpa-tkip"
    WPA2_PSK = "wpa2-psk"
    SAE_TRANSITION = "sae-transition"
    WPA3_SAE = "wpa3-sae"
    WPA2_ENTERPRISE = "wpa2-enterprise"
    WPA3_ENTERPRISE = "wpa3-enterprise"
    WPA3_ENTERPRISE_192 = "wpa3-enterprise-192"

    @property
    def rank(self) -> int:
        return _RANK[self]

    @property
    def public(self) -> bool:
        """Anyone can join without a credential (the policy's "public Wi-Fi")."""
        return self in (WifiSecurity.OPEN, WifiSecurity.OWE)

    def at_least(self, floor: WifiSecurity) -> bool:
        return self.rank >= floor.rank


_RANK = {member: index for index, member in enumerate(WifiSecurity)}

_ENDPOINT = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<v4>[0-9.]+)):(?P<port>[0-9]{1,5})"
                       r"(?:/(?P<proto>udp|tcp))?$")


class VpnEndpoint(str):
    """A VPN server: ``198.51.100.7:51820`` or ``[2001:db8::7]:1194/tcp`` (udp default)."""

    ip: ipaddress.IPv4Address | ipaddress.IPv6Address
    port: int
    protocol: str

    @classmethod
    def parse(cls, text: str) -> VpnEndpoint:
        match = _ENDPOINT.match(text.strip())
        if not match:
            raise ValueError(f"expected a VPN endpoint like '198.51.100.7:51820' or "
                             f"'[2001:db8::7]:1194/tcp', got {text!r}")
        ip = ipaddress.ip_address(match.group("v6") or match.group("v4"))
        port = int(match.group("port"))
        if not 0 < port < 65536:
            raise ValueError(f"port out of range in {text!r}")
        proto = match.group("proto") or "udp"
        host = f"[{ip}]" if ip.version == 6 else str(ip)
        out = cls(f"{host}:{port}/{proto}")
        out.ip, out.port, out.protocol = ip, port, proto
        return out


@dataclass(frozen=True, slots=True)
class ApprovedNetwork:
    ssid: str = setting(None, "The network name (exact, case-sensitive).")
    bssids: tuple[MacAddress, ...] = setting(
        (), "If set, only these access points; others with this SSID are rogue.")
    security: WifiSecurity = setting(
        WifiSecurity.WPA2_PSK, "The weakest security this network may offer; a BSS with this "
        "SSID offering less is refused and reported as an evil twin.")
    trusted: bool = setting(False, "A trust network: no VPN needed while associated to it.")

    def __post_init__(self) -> None:
        if self.ssid is None:
            raise ValueError("approved network needs 'ssid'")
        if not 0 < len(self.ssid.encode()) <= 32:
            raise ValueError("ssid must be 1 to 32 bytes")
        if self.security is WifiSecurity.UNKNOWN:
            raise ValueError("security 'unknown' would accept anything; name a class")


@dataclass(frozen=True, slots=True)
class VpnConfig:
    required: bool = setting(
        True, "Off trusted networks, all traffic must use the VPN (the kill switch).")
    interfaces: tuple[str, ...] = setting(
        ("wg*", "tun*"), "The VPN interfaces; a trailing '*' matches a prefix (wg*, tun*).")
    endpoints: tuple[VpnEndpoint, ...] = setting(
        (), "VPN servers reachable outside the tunnel, 'ip:port[/udp|/tcp]'.")
    allow_dhcp: bool = setting(
        True, "Let DHCP (v4 67/68, v6 546/547) and IPv6 neighbour discovery out on any "
        "interface, so the machine can get an address before the tunnel is up.")
    allow_lan: tuple[IPNetwork, ...] = setting(
        (), "Local networks reachable outside the tunnel (a printer); none by default.")
    verify_interval: Duration = setting(
        Duration(30), "How often the engaged table is checked and restored if someone "
        "removed it (also checked on every link and route change).", unit="duration",
        minimum=1.0, maximum=3600.0)
    engage_without_wifi: bool = setting(
        True, "Keep the switch engaged while no Wi-Fi network is associated (wired or "
        "offline): only a trusted Wi-Fi network lifts it.")

    def __post_init__(self) -> None:
        for index, name in enumerate(self.interfaces):
            if not re.fullmatch(r"[A-Za-z0-9_.-]{1,15}\*?", name):
                raise ValueError(f"interfaces[{index}]: not an interface name or prefix*")


@dataclass(frozen=True, slots=True)
class WifiConfig:
    enabled: bool = setting(False, "Watch Wi-Fi associations (nl80211) and run the kill switch.")
    mode: Mode | None = setting(None, "monitor | enforce; defaults to the global mode.")
    interfaces: tuple[str, ...] = setting((), "Wi-Fi interfaces to watch; all when empty.")
    minimum_security: WifiSecurity = setting(
        WifiSecurity.WPA2_PSK, "Weakest security accepted on networks not listed in "
        "approved_networks (the order is in docs/wifi.md).")
    allow_unlisted: bool = setting(
        True, "Accept networks not in approved_networks when they meet minimum_security and "
        "are not public; false refuses every unlisted network.")
    approved_networks: tuple[ApprovedNetwork, ...] = setting((), "Approved networks.")
    backoff: Duration = setting(
        Duration(300), "After a policy disconnect, every re-association to that BSS within "
        "this time is refused again at once.", unit="duration", minimum=0.0, maximum=86400.0)
    rogue_detection: bool = setting(
        True, "Report approved SSIDs seen in scan results from unknown BSSIDs or with weaker "
        "security than approved (evil twins).")
    wpa_supplicant_dir: str = setting(
        "/run/wpa_supplicant", "wpa_supplicant control sockets; used for DISCONNECT and "
        "BSSID_IGNORE when present, else nl80211 DISCONNECT.")
    vpn: VpnConfig = setting(VpnConfig(), "VPN kill switch.")

    def __post_init__(self) -> None:
        if self.minimum_security is WifiSecurity.UNKNOWN:
            raise ValueError("minimum_security: 'unknown' would accept anything; name a class")
        seen: set[str] = set()
        for index, net in enumerate(self.approved_networks):
            if net.ssid in seen:
                raise ValueError(f"approved_networks[{index}]: duplicate ssid {net.ssid!r}")
            seen.add(net.ssid)
