"""A minimal libtorrent peer for live tests and the demo (run with Debian's /usr/bin/python3,
the interpreter python3-libtorrent is built for).

    lt_peer.py seed  DIR IP PORT        # makes DIR/payload.bin + DIR/payload.torrent, seeds
    lt_peer.py leech DIR IP PORT SEED_IP SEED_PORT TORRENT [TIMEOUT]

No DHT, LSD, UPnP or NAT-PMP: the leecher is given the seeder's address, so the only
traffic is the BitTorrent peer wire protocol between the two (a real handshake, real
pieces). The leecher exits 0 once the download completed and verified.
"""

from __future__ import annotations

import os
import sys
import time

import libtorrent as lt  # type: ignore[import-not-found]


def _session(ip: str, port: int) -> lt.session:
    return lt.session({
        "listen_interfaces": f"{ip}:{port}",
        "enable_dht": False, "enable_lsd": False, "enable_upnp": False,
        "enable_natpmp": False, "outgoing_interfaces": ip,
        "allow_multiple_connections_per_ip": True,
        "enable_incoming_utp": False, "enable_outgoing_utp": False,
        "in_enc_policy": 2, "out_enc_policy": 2,  # plaintext: the handshake is visible
        "alert_mask": 0,
    })


def seed(directory: str, ip: str, port: int) -> None:
    payload = os.path.join(directory, "payload.bin")
    with open(payload, "wb") as fh:
        fh.write(os.urandom(1 << 20))
    fs = lt.file_storage()
    lt.add_files(fs, payload)
    torrent = lt.create_torrent(fs, piece_size=1 << 16)
    lt.set_piece_hashes(torrent, directory)
    path = os.path.join(directory, "payload.torrent")
    with open(path, "wb") as fh:
        fh.write(lt.bencode(torrent.generate()))
    ses = _session(ip, port)
    ses.add_torrent({"ti": lt.torrent_info(path), "save_path": directory,
                     "flags": lt.torrent_flags.seed_mode})
    print("SEEDING", flush=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        time.sleep(0.5)


def leech(directory: str, ip: str, port: int, seed_ip: str, seed_port: int, torrent: str,
          timeout: float) -> int:
    ses = _session(ip, port)
    handle = ses.add_torrent({"ti": lt.torrent_info(torrent), "save_path": directory})
    handle.connect_peer((seed_ip, seed_port))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if handle.status().is_seeding:
            print("COMPLETE", flush=True)
            return 0
        time.sleep(0.2)
    print(f"INCOMPLETE {handle.status().progress:.2f}", flush=True)
    return 1


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "seed":
        seed(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        sys.exit(leech(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5],
                       int(sys.argv[6]), sys.argv[7],
                       float(sys.argv[8]) if len(sys.argv) > 8 else 30.0))
