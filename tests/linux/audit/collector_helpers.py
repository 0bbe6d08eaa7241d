"""Real collectors on loopback, each run from its docs/examples/ config (helpers).

rsyslog (TCP, TLS; RELP and RELP over TLS with rsyslog-relp) and syslog-ng (TCP, TLS)
are started as processes of their own with their config, state and output in a tmp
directory, on free loopback ports.

syslog-ng-core and rsyslog conflict in Debian (both provide system-log-daemon), so the
syslog-ng binary is not installed: :func:`syslog_ng` unpacks Debian's syslog-ng-core
package (``apt-get download``) into :data:`SYSLOG_NG_CACHE` once and runs it from there
with its own library and module paths. Its library dependencies are in
ci/apt.d/audit.txt.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from tests.conftest import ROOT
from tests.linux.audit.rsyslog_helpers import received_lines, start_receiver, stop_receiver

EXAMPLES = ROOT / "docs" / "examples"
RSYSLOGD = "/usr/sbin/rsyslogd"
IMRELP = Path("/usr/lib/x86_64-linux-gnu/rsyslog/imrelp.so")
#: Where Debian's syslog-ng-core is unpacked (not installed: it conflicts with rsyslog).
SYSLOG_NG_CACHE = Path(os.environ.get("EDGEGUARD_SYSLOG_NG_CACHE",
                                      "/var/cache/edgeguard-tests/syslog-ng"))
SYSLOG_NG_VERSION = "3.38"


def render(example: str, values: Mapping[str, object]) -> str:
    """docs/examples/EXAMPLE with every ``@NAME@`` placeholder replaced, nothing else."""
    text = (EXAMPLES / example).read_text()
    for key, value in values.items():
        assert f"@{key}@" in text, (example, key)
        text = text.replace(f"@{key}@", str(value))
    left = re.findall(r"@[A-Z_]+@", text)
    assert not left, f"{example}: placeholders left: {left}"
    return text


@dataclass(frozen=True)
class SyslogNg:
    """An unpacked syslog-ng-core: the binary and the environment it runs with."""

    root: Path

    @property
    def binary(self) -> Path:
        return self.root / "usr" / "sbin" / "syslog-ng"

    def argv(self, *args: str) -> list[str]:
        modules = self.root / "usr" / "lib" / "syslog-ng" / SYSLOG_NG_VERSION
        return [str(self.binary), f"--module-path={modules}", *args]

    def env(self) -> dict[str, str]:
        return {**os.environ, "LD_LIBRARY_PATH": str(self.root / "usr" / "lib" / "syslog-ng")}


def syslog_ng() -> SyslogNg | None:
    """Debian's syslog-ng-core, unpacked into SYSLOG_NG_CACHE on first use (None: the
    package cannot be fetched here)."""
    ng = SyslogNg(SYSLOG_NG_CACHE)
    if ng.binary.exists():
        return ng
    debs = SYSLOG_NG_CACHE.parent / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    fetched = subprocess.run(["apt-get", "download", "syslog-ng-core"], cwd=debs,
                             capture_output=True, check=False, timeout=300)
    found = sorted(debs.glob("syslog-ng-core_*.deb"))
    if fetched.returncode != 0 and not found:
        return None
    tmp = SYSLOG_NG_CACHE.with_name(SYSLOG_NG_CACHE.name + ".tmp")
    subprocess.run(["rm", "-rf", str(tmp)], check=True)
    subprocess.run(["dpkg-deb", "-x", str(found[-1]), str(tmp)], check=True)
    tmp.rename(SYSLOG_NG_CACHE)
    return ng


def client_cert(directory: Path, ca: Path, ca_key: Path) -> tuple[Path, Path]:
    """A sender's certificate and key, signed by the test CA (mutual TLS)."""
    key, csr, cert = directory / "client.key", directory / "client.csr", directory / "client.pem"
    subprocess.run(["openssl", "req", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=kiosk-1",
                    "-keyout", str(key), "-out", str(csr)], check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey",
                    str(ca_key), "-CAcreateserial", "-days", "2", "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Collector:
    """One receiver process: started, stopped (mid-stream), its output read back."""

    name: str
    directory: Path
    argv: Sequence[str]
    ports: Mapping[str, int]  # transport -> port it listens on
    output: Path
    env: Mapping[str, str] | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def errors(self) -> Path:
        return self.directory / f"{self.name}.err"

    def start(self, timeout: float = 20) -> None:
        assert self.proc is None
        self.proc = start_receiver(self.name, self.argv, self.errors, self.ports.values(),
                                   self.env, timeout)

    def stop(self) -> None:
        stop_receiver(self.proc)
        self.proc = None

    def lines(self) -> list[bytes]:
        return received_lines(self.output)

    def keys(self) -> list[tuple[str, int]]:
        """(chain id, sequence) of every line received, in order of arrival."""
        out = []
        for line in self.lines():
            record = orjson.loads(line)
            out.append((record["edgeguard"]["chain_id"], record["event"]["sequence"]))
        return out


def rsyslog_relp(work: Path, certs: Mapping[str, Path]) -> Collector:
    ports = {"relp": free_port(), "relp-tls": free_port()}
    conf, output = work / "rsyslog-relp.conf", work / "received.jsonl"
    conf.write_text(render("rsyslog-relp-edgeguard.conf", {
        "WORKDIR": work, "CA_FILE": certs["ca"], "CERT_FILE": certs["cert"],
        "KEY_FILE": certs["key"], "OUTPUT": output, "ADDRESS": "127.0.0.1",
        "RELP_PORT": ports["relp"], "RELP_TLS_PORT": ports["relp-tls"]}))
    return Collector("rsyslog-relp", work, [RSYSLOGD, "-n", "-f", str(conf), "-i",
                                            str(work / "rsyslogd.pid")], ports, output)


def rsyslog(work: Path, certs: Mapping[str, Path]) -> Collector:
    ports = {"tcp": free_port(), "tls": free_port()}
    conf, output = work / "rsyslog.conf", work / "received.jsonl"
    conf.write_text(render("rsyslog-edgeguard.conf", {
        "WORKDIR": work, "CA_FILE": certs["ca"], "CERT_FILE": certs["cert"],
        "KEY_FILE": certs["key"], "OUTPUT": output, "ADDRESS": "127.0.0.1",
        "TCP_PORT": ports["tcp"], "TLS_PORT": ports["tls"]}))
    return Collector("rsyslog", work, [RSYSLOGD, "-n", "-f", str(conf), "-i",
                                       str(work / "rsyslogd.pid")], ports, output)


def syslog_ng_collector(ng: SyslogNg, work: Path, certs: Mapping[str, Path]) -> Collector:
    ports = {"tcp": free_port(), "tls": free_port()}
    conf, output = work / "syslog-ng.conf", work / "received.jsonl"
    conf.write_text(render("syslog-ng-edgeguard.conf", {
        "CA_FILE": certs["ca"], "CERT_FILE": certs["cert"], "KEY_FILE": certs["key"],
        "OUTPUT": output, "ADDRESS": "127.0.0.1", "TCP_PORT": ports["tcp"],
        "TLS_PORT": ports["tls"]}))
    argv = ng.argv("-F", "--no-caps", "-f", str(conf), "-R", str(work / "syslog-ng.persist"),
                   "-p", str(work / "syslog-ng.pid"), "-c", str(work / "syslog-ng.ctl"))
    return Collector("syslog-ng", work, argv, ports, output, env=ng.env())
