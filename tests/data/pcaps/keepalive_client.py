#!/usr/bin/env python3
"""Open HTTP/1.1 keep-alive flows, *then* start the capture, then close them three ways
(for make_issue19.sh; lab namespaces only): a third close with FIN/ACK, a third half-close
(FIN/ACK) while the client's firewall answers the server's FIN/ACK with RST, a third
wait for the server's keep-alive timeout."""
from __future__ import annotations

import argparse
import shlex
import signal
import socket
import subprocess
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True)
    ap.add_argument("--flows", type=int, default=12)
    ap.add_argument("--capture-cmd", required=True)
    ap.add_argument("--reset-on", required=True, help="command: RST the server's FIN/ACK")
    ap.add_argument("--reset-off", required=True)
    a = ap.parse_args()
    flows = []
    for _ in range(a.flows):
        s = socket.create_connection((a.host, 80), timeout=3)
        s.sendall(f"GET /page.bin HTTP/1.1\r\nHost: {a.host}\r\n\r\n".encode())
        got = 0
        while got < 20000:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += len(chunk)
        flows.append(s)
    time.sleep(1)
    cap = subprocess.Popen(shlex.split(a.capture_cmd), stderr=subprocess.DEVNULL)
    time.sleep(2)
    third = a.flows // 3
    for s in flows[:third]:
        s.close()  # FIN/ACK
        time.sleep(0.2)
    # ... which the client's own firewall answers with RST (a stateful firewall or a
    # phone that dropped the flow's state does this)
    subprocess.run(shlex.split(a.reset_on), check=True)
    for s in flows[third:2 * third]:
        s.shutdown(socket.SHUT_WR)  # FIN/ACK; the server ACKs then sends FIN/ACK ...
        time.sleep(0.2)
        s.close()
    subprocess.run(shlex.split(a.reset_off), check=True)
    deadline = time.time() + 12
    for s in flows[2 * third:]:
        s.settimeout(max(0.1, deadline - time.time()))
        try:
            while s.recv(4096):
                pass
        except OSError:
            pass
        s.close()
    time.sleep(1.5)
    cap.send_signal(signal.SIGINT)
    cap.wait(5)


if __name__ == "__main__":
    main()
