"""A command line that feels native: a closed pipe is not an error, and a usage error
shows the usage of the subcommand that was misused."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from ops_trail import school_week

from tests.conftest import ROOT, edgeguard_argv, edgeguard_env, run_edgeguard
from tests.unit.net.netdata import CORPUS

PCAP = CORPUS / "scans.pcap"


def _head_1(argv: list[str]) -> tuple[int, str, bytes]:
    """``edgeguard ARGV | head -1`` with a real pipe: (our exit, our stderr, head's out)."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=edgeguard_env(), cwd=ROOT)
    assert proc.stdout is not None
    assert proc.stderr is not None
    head = subprocess.run(["head", "-1"], stdin=proc.stdout, capture_output=True, timeout=120,
                          check=False)
    proc.stdout.close()  # only head holds the read end now; it has exited
    err = proc.stderr.read().decode()
    return proc.wait(timeout=120), err, head.stdout


@pytest.mark.skipif(not PCAP.exists(), reason="no shared capture corpus")
@pytest.mark.parametrize("fmt", [[], ["--json"]], ids=["text", "json"])
def test_replay_into_head_exits_quietly(fmt: list[str]) -> None:
    code, err, out = _head_1(edgeguard_argv("replay", *fmt, str(PCAP)))
    assert out.count(b"\n") == 1  # head got its line: there were findings to print
    assert code in (0, 141)
    assert "Broken pipe" not in err
    assert "Exception ignored" not in err
    assert err == ""


def test_audit_tail_into_head_exits_quietly(tmp_path: Path) -> None:
    school_week(tmp_path / "audit", time.time())
    code, err, out = _head_1(edgeguard_argv("audit", "tail", "--all", "-n", "100000",
                                            str(tmp_path / "audit")))
    assert out.count(b"\n") == 1
    assert code in (0, 141)
    assert err == ""


@pytest.mark.parametrize(("argv", "usage"), [
    (["audit", "tail", "--bogus"], "usage: edgeguard audit tail"),
    (["audit", "tail", "--since", "whenever", "/nonexistent"], None),
    (["report", "--bogus"], "usage: edgeguard report"),
    (["check", "--nope"], "usage: edgeguard check"),
    (["net", "blocks", "--nope"], "usage: edgeguard net blocks"),
])
def test_a_usage_error_prints_that_subcommands_usage(argv: list[str],
                                                       usage: str | None) -> None:
    done = run_edgeguard(argv)
    assert done.returncode == 2
    if usage is not None:
        assert done.stderr.startswith(usage), done.stderr
        assert "unrecognized arguments" in done.stderr


def test_a_bad_time_is_a_usage_error(tmp_path: Path) -> None:
    done = run_edgeguard(["audit", "tail", "--since", "whenever", str(tmp_path)])
    assert done.returncode == 2
    assert "expected today" in done.stderr


def test_an_unknown_command_lists_every_command() -> None:
    done = run_edgeguard(["frobnicate"])
    assert done.returncode == 2
    for name in ("audit", "check", "replay", "report", "run"):
        assert name in done.stderr
