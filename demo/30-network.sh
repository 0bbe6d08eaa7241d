# Network: a real nmap scan and a real BitTorrent exchange between two throwaway network
# namespaces joined by a veth pair. The daemon captures in one of them (kernel-filtered
# AF_PACKET, its own worker process) and writes the findings to the shared audit log.
say "network watch: namespaces egc-demo-a (10.231.9.10) and egc-demo-b (10.231.9.20)"
NET_A=egc-demo-a NET_B=egc-demo-b VETH_A=egcdemoa VETH_B=egcdemob
IPCMD=/usr/sbin/ip
$IPCMD netns add "$NET_A"
on_exit "$IPCMD netns del $NET_A 2>/dev/null"
$IPCMD netns add "$NET_B"
on_exit "$IPCMD netns del $NET_B 2>/dev/null"
$IPCMD link add "$VETH_A" netns "$NET_A" type veth peer name "$VETH_B" netns "$NET_B"
$IPCMD -n "$NET_A" addr add 10.231.9.10/24 dev "$VETH_A"
$IPCMD -n "$NET_B" addr add 10.231.9.20/24 dev "$VETH_B"
for ns_dev in "$NET_A:$VETH_A" "$NET_B:$VETH_B"; do
  $IPCMD -n "${ns_dev%%:*}" link set "${ns_dev#*:}" up
  $IPCMD -n "${ns_dev%%:*}" link set lo up
done

# the daemon runs inside egc-demo-b, watching its veth
printf 'network:\n  enabled: true\n  interfaces: [%s]\n' "$VETH_B" > "$DEMO_TMP/network.yaml"
NET_REAL_EG=$EG
printf '#!/bin/sh\nexec %s netns exec %s "%s" "$@"\n' "$IPCMD" "$NET_B" "$NET_REAL_EG" \
  > "$DEMO_TMP/eg-in-b"
chmod +x "$DEMO_TMP/eg-in-b"
EG="$DEMO_TMP/eg-in-b" eg_start --policy "$DEMO_TMP/network.yaml"
sleep 1

say "a pupil's machine (10.231.9.10) runs an nmap SYN scan of the other"
run $IPCMD netns exec "$NET_A" nmap -n -Pn -sS -T4 --max-retries 0 -p 1-200 -oG - 10.231.9.20 \
  | grep -v "^#"

say "and a BitTorrent exchange (python3-libtorrent seeder in a, leecher in b)"
mkdir -p "$DEMO_TMP/bt-seed" "$DEMO_TMP/bt-leech"
$IPCMD netns exec "$NET_A" /usr/bin/python3 tests/linux/net/lt_peer.py seed \
  "$DEMO_TMP/bt-seed" 10.231.9.10 51413 > "$DEMO_TMP/bt-seed.log" 2>&1 &
NET_SEED_PID=$!
on_exit "kill $NET_SEED_PID 2>/dev/null"
for _ in $(seq 1 100); do
  grep -q SEEDING "$DEMO_TMP/bt-seed.log" 2>/dev/null && break
  sleep 0.1
done
run $IPCMD netns exec "$NET_B" /usr/bin/python3 tests/linux/net/lt_peer.py leech \
  "$DEMO_TMP/bt-leech" 10.231.9.20 6881 10.231.9.10 51413 "$DEMO_TMP/bt-seed/payload.torrent" 40
kill "$NET_SEED_PID" 2>/dev/null || true

sleep 4  # scan findings are emitted when the detector's window closes
say "the daemon saw it (capture counters: kernel drops, decoded packets, findings)"
run "$NET_REAL_EG" status --socket "$SOCK"
eg_stop
EG=$NET_REAL_EG

say "the same detectors over a capture file: edgeguard replay (exit 1 = findings)"
run "$EG" replay tests/data/pcaps/filter_cases.pcap || true
