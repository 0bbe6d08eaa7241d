"""Wi-Fi and VPN policy: 802.11 security floor, approved networks, VPN kill switch."""
