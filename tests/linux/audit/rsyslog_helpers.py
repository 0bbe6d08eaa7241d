"""A real rsyslogd on loopback with its own config and certificates (helpers)."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import ROOT

#: The receiver config docs/shipping.md shows byte for byte (tests/unit/test_docs_examples.py).
RSYSLOG_CONF = ROOT / "docs" / "examples" / "rsyslog-edgeguard.conf"
#: The ``@NAME@`` placeholders of RSYSLOG_CONF, all filled in by :func:`render_conf`.
PLACEHOLDERS = ("WORKDIR", "CA_FILE", "CERT_FILE", "KEY_FILE", "OUTPUT", "ADDRESS",
                "TCP_PORT", "TLS_PORT")
RSYSLOGD = "/usr/sbin/rsyslogd"
OPENSSL = "/usr/bin/openssl"


def render_conf(values: dict[str, object]) -> str:
    """RSYSLOG_CONF with every placeholder replaced; nothing else is changed."""
    assert set(values) == set(PLACEHOLDERS), sorted(set(values) ^ set(PLACEHOLDERS))
    text = RSYSLOG_CONF.read_text()
    for key, value in values.items():
        text = text.replace(f"@{key}@", str(value))
    return text


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def make_certs(directory: Path) -> dict[str, Path]:
    """A throwaway CA and a server certificate for localhost / 127.0.0.1."""
    d = directory
    def run(*args: str) -> None:
        subprocess.run([OPENSSL, *args], check=True, capture_output=True)
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    run("req", "-x509", *ec, "-days", "2", "-subj", "/CN=edgeguard test CA",
        "-keyout", str(d / "ca.key"), "-out", str(d / "ca.pem"))
    run("req", *ec, "-subj", "/CN=localhost", "-keyout", str(d / "server.key"),
        "-out", str(d / "server.csr"))
    (d / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run("x509", "-req", "-in", str(d / "server.csr"), "-CA", str(d / "ca.pem"), "-CAkey",
        str(d / "ca.key"), "-CAcreateserial", "-days", "2", "-extfile", str(d / "ext.cnf"),
        "-out", str(d / "server.pem"))
    return {"ca": d / "ca.pem", "cert": d / "server.pem", "key": d / "server.key"}


@dataclass
class Rsyslog:
    directory: Path
    conf: Path
    output: Path
    tcp_port: int
    tls_port: int
    ca: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert self.proc is None
        self.proc = start_receiver(
            "rsyslogd",
            [RSYSLOGD, "-n", "-f", str(self.conf), "-i", str(self.directory / "rsyslogd.pid")],
            self.directory / "rsyslogd.err", (self.tcp_port, self.tls_port))

    def stop(self) -> None:
        stop_receiver(self.proc)
        self.proc = None

    def lines(self) -> list[bytes]:
        return received_lines(self.output)


def start_receiver(name: str, argv: Sequence[str], errors: Path, ports: Iterable[int],
                   env: Mapping[str, str] | None = None, timeout: float = 20
                   ) -> subprocess.Popen[bytes]:
    """Start a receiver (rsyslogd, syslog-ng) and wait until it listens on every port."""
    proc = subprocess.Popen(list(argv), stdout=subprocess.DEVNULL, stderr=errors.open("ab"),
                            env=dict(env) if env is not None else None)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            for port in ports:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(errors.read_text()) from None
            time.sleep(0.1)
    stop_receiver(proc)
    raise RuntimeError(f"{name} did not listen: {errors.read_text()}")


def stop_receiver(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def received_lines(output: Path) -> list[bytes]:
    try:
        return output.read_bytes().splitlines()
    except FileNotFoundError:
        return []
