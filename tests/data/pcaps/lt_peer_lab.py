#!/usr/bin/python3
"""(Copied from shared/corpus/scripts/lt_peer.py for make_issue19.sh.)
libtorrent (python3-libtorrent, run with /usr/bin/python3) peer for the namespace lab.

Nothing can leave the lab: the default DHT routers are replaced by lab peers, UPnP and NAT-PMP are
off, LSD is off unless --lsd (its multicast then stays on the lab bridge).
"""

import argparse
import sys
import time

import libtorrent as lt

ap = argparse.ArgumentParser()
ap.add_argument("mode", choices=["seed", "leech"])
ap.add_argument("--ip", required=True)
ap.add_argument("--port", type=int, default=6881)
ap.add_argument(
    "--torrent", required=True, help=".torrent file or magnet: URI (metadata then comes from peers)"
)
ap.add_argument("--dir", required=True)
ap.add_argument(
    "--dht", default="", help="comma list of ip:port DHT bootstrap nodes (empty: DHT off)"
)
ap.add_argument("--utp-only", action="store_true")
ap.add_argument("--tcp-only", action="store_true")
ap.add_argument("--enc", choices=["forced", "enabled", "disabled"], default="enabled")
ap.add_argument("--lsd", action="store_true")
ap.add_argument("--peer", action="append", default=[], help="ip:port to connect to directly")
ap.add_argument("--time", type=float, default=120, help="hard time limit, seconds")
ap.add_argument("--linger", type=float, default=3, help="seconds to stay after a leech completes")
a = ap.parse_args()

enc = {
    "forced": lt.enc_policy.forced,
    "enabled": lt.enc_policy.enabled,
    "disabled": lt.enc_policy.disabled,
}[a.enc]
settings = {
    "listen_interfaces": f"{a.ip}:{a.port}",
    "outgoing_interfaces": "eth0",
    "enable_dht": bool(a.dht),
    "dht_bootstrap_nodes": a.dht,
    "enable_lsd": a.lsd,
    "enable_upnp": False,
    "enable_natpmp": False,
    "enable_incoming_utp": not a.tcp_only,
    "enable_outgoing_utp": not a.tcp_only,
    "enable_outgoing_tcp": not a.utp_only,
    "enable_incoming_tcp": True,
    "allow_multiple_connections_per_ip": True,
    "out_enc_policy": enc,
    "in_enc_policy": enc,
    "alert_mask": lt.alert.category_t.error_notification
    | lt.alert.category_t.status_notification
    | lt.alert.category_t.dht_notification
    | lt.alert.category_t.tracker_notification
    | lt.alert.category_t.peer_notification,
}
if a.enc == "forced":  # RC4 for the whole stream: no plaintext BitTorrent handshake on the wire
    settings.update({"allowed_enc_level": lt.enc_level.rc4, "prefer_rc4": True})
s = lt.session(settings)
if a.torrent.startswith("magnet:"):
    atp = lt.parse_magnet_uri(a.torrent)
else:
    atp = lt.add_torrent_params()
    atp.ti = lt.torrent_info(a.torrent)
atp.save_path = a.dir
if a.mode == "seed":
    atp.flags |= lt.torrent_flags.seed_mode
h = s.add_torrent(atp)
for p in a.peer:
    ip, port = p.rsplit(":", 1)
    h.connect_peer((ip, int(port)))
t0 = time.time()
done = False
while time.time() < t0 + a.time:
    for al in s.pop_alerts():
        w = al.what()
        if (
            al.category() & lt.alert.category_t.error_notification
            or "tracker" in w
            or "dht_bootstrap" in w
            or w in ("peer_connect", "peer_disconnected", "lsd_peer")
        ):
            print(f"[{time.time() - t0:6.2f}] {w}: {al.message()}", flush=True)
    st = h.status()
    if a.mode == "leech" and st.is_seeding and not done:
        print(f"LEECH DONE in {time.time() - t0:.2f}s peers={st.num_peers}", flush=True)
        done = True
        t0 = time.time() - a.time + a.linger  # stay a.linger more seconds
    time.sleep(0.2)
st = h.status()
print(
    "final",
    a.mode,
    "progress",
    st.progress,
    "uploaded",
    st.all_time_upload,
    "downloaded",
    st.all_time_download,
    flush=True,
)
sys.exit(0 if (a.mode == "seed" or st.is_seeding) else 1)
