#!/usr/bin/env bash
# Captures of the traffic classes of issue 19, made with real programs in throwaway network
# namespaces (run as root from the repository root; about 2 minutes):
#   tests/data/pcaps/make_issue19.sh [part...]   parts: success oneway p2p close nmap lone links
#
# Lab: namespace i19c (the client/actor, 10.98.0.2, fd00:98::2) and i19s (the servers,
# 10.98.0.10 plus 10.98.0.100-124 for 25 web hosts and 10.98.0.130-162 for 33 resolvers),
# one veth pair, no default route, nothing bridged to any other interface. Every process is
# started here and ended by PID; the namespaces are deleted at the end.
#
# success.pcap     curl to 25 web hosts (python http.server) 0.4 s apart and dig to 33 resolvers
#                  (dnsmasq), 38 queries: every contact answered.              expected: none
# oneway.pcap      the same traffic, `tcpdump -Q out` on the client: no reply in the file.
#                                                                               expected: none
# oneway_scan.pcap nmap -sS of 200 ports, `tcpdump -Q out`: no reply in the file. expected: none
# p2p.pcap         p2p_peer.py (a Gnutella-like client: TCP and UDP to 30 peers on high ports,
#                  26 answer and exchange data, 4 closed; UDP to the subnet broadcast,
#                  255.255.255.255 and 239.255.255.250).                        expected: none
# close.pcap       30 HTTP/1.1 keep-alive flows to nginx opened *before* the capture, then
#                  closed during it: client FIN/ACK, nginx keep-alive timeout, client RST
#                  (SO_LINGER 0).                                               expected: none
# nmap1000.pcap    nmap -sS -T5 --min-rate 1500 of nmap's default 1000 ports. expected: scan/syn
# nmap_paced.pcap nmap -sS --min-rate 250 --max-rate 250 of the same 1000 ports: 4 s at a
#                  steady 250/s, the rate the masscan label asks for.           expected: scan/syn
# lone_probes.pcap one nmap -sN, -sF and -sX probe each (ports 22, 80, 443): 3 failed contacts,
#                  below scan.min_failed_contacts (4).                          expected: none
# utp_oneway.pcap libtorrent leecher (uTP only, plaintext) fetching from a libtorrent seeder on
#                  6881, links shaped to 4 Mbit/s; captured mid-stream (5 s after it began)
#                  with `tcpdump -Q out udp` on the leecher: only its uTP packets to 6881,
#                  carrying peer-wire messages (request, have...), no reply.
#                                                        expected: bittorrent/utp 10.98.0.2
# mse.pcap         libtorrent leecher, RC4 forced (MSE/PE), TCP only, no DHT/LSD/tracker, fetching
#                  from 4 libtorrent seeders on unrelated high ports (first 800 packets kept).
#                                                 expected: bittorrent/encrypted 10.98.0.2
# tls_odd_ports.pcap openssl s_client to s_server on 5 odd ports.              expected: none
# sll.pcap, sll2.pcap  `tcpdump -i any -y LINUX_SLL / LINUX_SLL2` in the client namespace
#                  during nmap -sS of 300 ports.                               expected: scan/syn
# rawip.pcap       tcpdump on a tun device (link type RAW; tun_link.py joins two tun devices
#                  like a VPN) during nmap -sS of 300 ports through it (172.31.98.1 -> .2).              expected: scan/syn
# The null/loopback, PPP and DLT_RAW variants are rewritten from rawip.pcap by relink.py.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-$here}
C=i19c S=i19s
PIDS=()
c() { ip netns exec "$C" "$@"; }
s() { ip netns exec "$S" "$@"; }
bg() { local n=$1; shift; ip netns exec "$n" "$@" >/dev/null 2>&1 & PIDS+=($!); }

down() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.5
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  ip netns del "$C" 2>/dev/null || true
  ip netns del "$S" 2>/dev/null || true
}
trap down EXIT

up() {
  ip netns add "$C"; ip netns add "$S"
  ip link add eth0 netns "$C" type veth peer name eth0 netns "$S"
  for n in "$C" "$S"; do
    ip -n "$n" link set lo up
    ip netns exec "$n" ethtool -K eth0 tx off tso off gso off gro off >/dev/null 2>&1 || true
    ip netns exec "$n" sysctl -qw net.ipv6.conf.eth0.accept_ra=0
  done
  ip -n "$C" link set eth0 address 02:98:00:00:00:02
  ip -n "$S" link set eth0 address 02:98:00:00:00:0a
  ip -n "$C" addr add 10.98.0.2/24 dev eth0
  ip -n "$S" addr add 10.98.0.10/24 dev eth0
  local i
  for i in $(seq 100 124) $(seq 130 162); do ip -n "$S" addr add "10.98.0.$i/32" dev eth0; done
  ip -n "$C" link set eth0 up; ip -n "$S" link set eth0 up
  if ip -n "$C" route show default | grep -q . || ip -n "$S" route show default | grep -q .; then
    echo "lab has a default route" >&2; exit 1
  fi
}

CAP=
cap() {  # cap <ns> <file> tcpdump-args...
  local n=$1 f=$2; shift 2
  ip netns exec "$n" tcpdump -Z root -n -U -s 256 -B 65536 -w "$f" "$@" 2>/dev/null & CAP=$!
  sleep 1.5
}
cap_stop() { sleep 1.5; kill -INT "$CAP"; wait "$CAP" 2>/dev/null || true; }

servers() {
  local d=/tmp/i19www; mkdir -p "$d"; head -c 20000 /dev/urandom > "$d/page.bin"; echo small > "$d/small.txt"
  bg "$S" python3 -m http.server -d "$d" 8080
  bg "$S" dnsmasq -k -C /dev/null --no-resolv --no-hosts --address=/lab/10.98.0.10 -u root
  sleep 1
}

traffic_success() {
  local i
  for i in $(seq 100 124); do c curl -s -o /dev/null "http://10.98.0.$i:8080/page.bin"; sleep 0.4; done
  for i in $(seq 130 162); do c dig +short +tries=1 +time=2 "@10.98.0.$i" "host$i.lab" >/dev/null; done
  for i in 130 140 150 160 162; do c dig +short +tries=1 +time=2 "@10.98.0.$i" again.lab >/dev/null; done
}

part_success() { cap "$C" "$out/success.pcap" -i eth0; traffic_success; cap_stop; }
part_oneway() {
  cap "$C" "$out/oneway.pcap" -i eth0 -Q out; traffic_success; cap_stop
  cap "$C" "$out/oneway_scan.pcap" -i eth0 -Q out
  c nmap -n -Pn -sS -T4 --top-ports 200 10.98.0.10 >/dev/null; cap_stop
}
part_p2p() {
  bg "$S" python3 "$here/p2p_peer.py" serve --first-port 40000 --peers 26 --hosts 10.98.0.100-124
  sleep 1
  cap "$C" "$out/p2p.pcap" -i eth0
  c python3 "$here/p2p_peer.py" fanout --first-port 40000 --peers 30 --hosts 10.98.0.100-124
  cap_stop
}
part_close() {
  cat > /tmp/i19nginx.conf <<'EOF'
daemon off; worker_processes 1; pid /tmp/i19nginx.pid; error_log /dev/null;
events { worker_connections 64; }
http { access_log off; keepalive_timeout 8s; keepalive_requests 1000;
  server { listen 80; root /tmp/i19www; } }
EOF
  bg "$S" nginx -c /tmp/i19nginx.conf -e /dev/null
  sleep 1
  c python3 "$here/keepalive_client.py" --host 10.98.0.10 --flows 30 --capture-cmd \
    "tcpdump -Z root -n -U -s 256 -i eth0 -w $out/close.pcap" \
    --reset-on "nft -f $here/close_reset.nft" --reset-off "nft delete table inet i19reset"
}
part_nmap() {
  cap "$C" "$out/nmap1000.pcap" -i eth0
  c nmap -n -Pn -sS -T5 --min-rate 1500 10.98.0.10 >/dev/null; cap_stop
  cap "$C" "$out/nmap_paced.pcap" -i eth0
  c nmap -n -Pn -sS -T4 --min-rate 250 --max-rate 250 10.98.0.10 >/dev/null; cap_stop
}
part_lone() {
  cap "$C" "$out/lone_probes.pcap" -i eth0
  c nmap -n -Pn -sN -p 22 10.98.0.10 >/dev/null
  c nmap -n -Pn -sF -p 80 10.98.0.10 >/dev/null
  c nmap -n -Pn -sX -p 443 10.98.0.10 >/dev/null; cap_stop
}
part_utp() {
  local d=/tmp/i19bt; rm -rf "$d"; mkdir -p "$d/seed" "$d/leech"
  head -c $((8 << 20)) /dev/urandom > "$d/seed/payload.bin"
  /usr/bin/python3 -c "import libtorrent as lt, sys
fs = lt.file_storage(); lt.add_files(fs, '$d/seed/payload.bin')
t = lt.create_torrent(fs, piece_size=1 << 16); lt.set_piece_hashes(t, '$d/seed')
open('$d/x.torrent', 'wb').write(lt.bencode(t.generate()))"
  c tc qdisc add dev eth0 root tbf rate 4mbit burst 32kbit latency 400ms
  s tc qdisc add dev eth0 root tbf rate 4mbit burst 32kbit latency 400ms
  bg "$S" /usr/bin/python3 "$here/lt_peer_lab.py" seed --ip 10.98.0.10 --port 6881 --utp-only \
    --enc disabled --torrent "$d/x.torrent" --dir "$d/seed" --time 40
  sleep 2
  bg "$C" /usr/bin/python3 "$here/lt_peer_lab.py" leech --ip 10.98.0.2 --port 51413 --utp-only \
    --enc disabled --torrent "$d/x.torrent" --dir "$d/leech" --peer 10.98.0.10:6881 --time 30
  sleep 5   # mid-stream: the handshake and the first pieces are over
  cap "$C" "$out/utp_oneway.pcap" -i eth0 -Q out udp
  sleep 4; cap_stop
  c tc qdisc del dev eth0 root; s tc qdisc del dev eth0 root
}
part_mse() {  # three seeders on unrelated high ports, one leecher, RC4 forced, no DHT/LSD/tracker
  local d=/tmp/i19mse i port
  rm -rf "$d"; mkdir -p "$d/seed" "$d/leech"
  head -c $((4 << 20)) /dev/urandom > "$d/seed/payload.bin"
  /usr/bin/python3 -c "import libtorrent as lt
fs = lt.file_storage(); lt.add_files(fs, '$d/seed/payload.bin')
t = lt.create_torrent(fs, piece_size=1 << 16); lt.set_piece_hashes(t, '$d/seed')
open('$d/x.torrent', 'wb').write(lt.bencode(t.generate()))"
  local peers=()
  for i in 100:45001 101:51234 102:38211 103:60999; do
    port=${i#*:}
    bg "$S" /usr/bin/python3 "$here/lt_peer_lab.py" seed --ip "10.98.0.${i%%:*}" --port "$port" \
      --tcp-only --enc forced --torrent "$d/x.torrent" --dir "$d/seed" --time 40
    peers+=(--peer "10.98.0.${i%%:*}:$port")
  done
  sleep 2
  cap "$C" "$out/mse.pcap" -i eth0
  c timeout 30 /usr/bin/python3 "$here/lt_peer_lab.py" leech --ip 10.98.0.2 --port 50123 --tcp-only \
    --enc forced --torrent "$d/x.torrent" --dir "$d/leech" "${peers[@]}" --time 20 --linger 1 \
    >/dev/null 2>&1 || true
  cap_stop
  editcap -r "$out/mse.pcap" "$out/mse.tmp" 1-800 && mv "$out/mse.tmp" "$out/mse.pcap"  # openings
}
part_tls() {  # TLS on odd ports (openssl s_server/s_client): opaque after the hello, named by it
  local d=/tmp/i19tls i
  mkdir -p "$d"
  openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=lab -days 2 -keyout "$d/k.pem" \
    -out "$d/c.pem" >/dev/null 2>&1
  for i in 100:8443 101:9443 102:10443 103:4433 104:50443; do
    bg "$S" openssl s_server -quiet -accept "10.98.0.${i%%:*}:${i#*:}" -cert "$d/c.pem" \
      -key "$d/k.pem" -naccept 2
  done
  sleep 1
  cap "$C" "$out/tls_odd_ports.pcap" -i eth0
  for i in 100:8443 101:9443 102:10443 103:4433 104:50443; do
    head -c 300 /dev/urandom | base64 | c timeout 3 openssl s_client -quiet \
      -connect "10.98.0.${i%%:*}:${i#*:}" >/dev/null 2>&1 || true
  done
  cap_stop
}
part_links() {
  cap "$C" "$out/sll.pcap" -i any -y LINUX_SLL
  c nmap -n -Pn -sS -T4 --top-ports 300 10.98.0.10 >/dev/null; cap_stop
  cap "$C" "$out/sll2.pcap" -i any -y LINUX_SLL2
  c nmap -n -Pn -sS -T4 --top-ports 300 10.98.0.10 >/dev/null; cap_stop
  python3 "$here/tun_link.py" "$C" i19ta "$S" i19tb 60 & PIDS+=($!)
  sleep 3
  ip -n "$C" addr add 172.31.98.1/30 dev i19ta; ip -n "$S" addr add 172.31.98.2/30 dev i19tb
  ip -n "$C" link set i19ta up; ip -n "$S" link set i19tb up
  cap "$C" "$out/rawip.pcap" -i i19ta
  c nmap -n -Pn -sS -T4 --top-ports 300 172.31.98.2 >/dev/null; cap_stop
  python3 "$here/relink.py" "$out/rawip.pcap" "$out"
}

up
servers
parts=("$@"); [ ${#parts[@]} -eq 0 ] && parts=(success oneway p2p close nmap lone links)
for p in "${parts[@]}"; do echo "== $p"; "part_$p"; done
