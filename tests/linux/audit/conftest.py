"""Fixtures for the audit linux tests: a real rsyslogd (see rsyslog_helpers.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from rsyslog_helpers import RSYSLOGD, Rsyslog, free_port, make_certs, render_conf


@pytest.fixture
def rsyslog(tmp_path: Path) -> Iterator[Rsyslog]:
    if not os.access(RSYSLOGD, os.X_OK):
        pytest.skip("rsyslog is not installed (ci/apt.d/audit.txt)")
    work = tmp_path / "rsyslog"
    work.mkdir()
    certs = make_certs(work)
    rs = Rsyslog(work, work / "rsyslog.conf", work / "edgeguard.jsonl", free_port(),
                 free_port(), certs["ca"])
    rs.conf.write_text(render_conf({
        "WORKDIR": work, "CA_FILE": certs["ca"], "CERT_FILE": certs["cert"],
        "KEY_FILE": certs["key"], "OUTPUT": rs.output, "ADDRESS": "127.0.0.1",
        "TCP_PORT": rs.tcp_port, "TLS_PORT": rs.tls_port}))
    rs.start()
    try:
        yield rs
    finally:
        rs.stop()
