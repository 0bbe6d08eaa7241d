"""``edgeguard audit tail`` filters and presentation (issue 21, "See what happened")."""

from __future__ import annotations

import os
import pty
import subprocess
from pathlib import Path

import orjson
from ops_trail import HOSTILE_SSID, Truth

from tests.conftest import ROOT, edgeguard_argv, edgeguard_env, run_edgeguard

Week = tuple[Path, Truth, float]


def _tail(directory: Path, *extra: str, env: dict[str, str] | None = None) -> list[str]:
    done = run_edgeguard(["audit", "tail", "-n", "1000", *extra, str(directory)], env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def _json(directory: Path, *extra: str) -> list[dict[str, object]]:
    return [orjson.loads(x) for x in _tail(directory, "--json", *extra)]


def test_bookkeeping_is_hidden_unless_asked(week: Week) -> None:
    directory, truth, _ = week
    plain = _tail(directory)
    every = _tail(directory, "--all")
    assert not any("audit-checkpoint" in x or "audit-segment-start" in x for x in plain)
    assert any("audit-checkpoint" in x for x in every)
    assert any("audit-segment-start" in x for x in every)
    assert len(plain) == truth.records + 1  # the one finding before the window


def test_since_and_until_take_ages_and_iso_times(week: Week) -> None:
    directory, _, now = week
    recent = _json(directory, "--since", "2d")
    assert recent
    stamps = [_epoch(r) for r in recent]
    assert min(stamps) >= now - 2 * 86400 - 5
    older = _json(directory, "--until", "2d")
    assert max(_epoch(r) for r in older) < now - 2 * 86400 + 5
    assert len(recent) + len(older) == len(_json(directory))
    iso = _json(directory, "--since", "2001-01-01T00:00:00Z", "--until", "now")
    assert len(iso) == len(_json(directory))


def _epoch(rec: dict[str, object]) -> float:
    import datetime as dt  # noqa: PLC0415

    stamp = str(rec["@timestamp"]).replace("Z", "+00:00")
    return dt.datetime.fromisoformat(stamp).timestamp()


def test_kind_severity_outcome_and_host(week: Week) -> None:
    directory, truth, _ = week
    wifi = _json(directory, "--kind", "wifi")
    assert len(wifi) == sum(truth.wifi.values())
    severe = _json(directory, "--severity", "severe")
    assert [r["event"]["action"] for r in severe] == [r["event"]["action"] for r in wifi]  # type: ignore[index]
    moderate_up = _json(directory, "--severity", "moderate")
    assert len(moderate_up) > len(severe)
    failed = _json(directory, "--outcome", "failure", "--kind", "block")
    assert len(failed) == truth.blocks_failed
    one = _json(directory, "--host", "10.0.1.3")
    assert len(one) == truth.offenders["10.0.1.3"]
    assert _json(directory, "--address", "10.0.0.7", "--kind", "block", "--outcome",
                 "success").__len__() == truth.blocks


def test_kind_takes_the_first_word_of_an_action(week: Week) -> None:
    directory, truth, _ = week
    usb = _json(directory, "--kind", "usb")
    plugged = sum(sum(c.values()) for c in truth.media.values())
    assert len(usb) == 2 * plugged  # a disk and its partition each time
    assert {r["event"]["action"] for r in usb} == {"usb-read-only", "usb-write-allowed"}  # type: ignore[index]


def test_n_counts_matching_records_not_lines(week: Week) -> None:
    directory, _, _ = week
    done = run_edgeguard(["audit", "tail", "--json", "-n", "2", "--kind", "usb-write-allowed",
                          str(directory)])
    assert len(done.stdout.splitlines()) == 2  # one plug-in (disk and partition), far back
    two = run_edgeguard(["audit", "tail", "--json", "-n", "2", "--kind", "wifi", str(directory)])
    assert [orjson.loads(x)["edgeguard"]["finding"]["subtype"]
            for x in two.stdout.splitlines()] == ["public", "unlisted"]


def test_local_time_by_default_utc_when_asked(week: Week) -> None:
    directory, _, _ = week
    local = _tail(directory, "--kind", "wifi", env={"TZ": "Asia/Kolkata"})
    utc = _tail(directory, "--kind", "wifi", "--utc", env={"TZ": "Asia/Kolkata"})
    assert all(x.split()[0].endswith("+0530") for x in local)
    assert all(x.split()[0].endswith("Z") for x in utc)
    assert [x.split()[1:] for x in local] == [x.split()[1:] for x in utc]


def test_severity_monitor_and_would_be_actions_are_shown(week: Week) -> None:
    directory, _, _ = week
    lines = _tail(directory, "--kind", "scan")
    monitor = [x for x in lines if "[monitor]" in x]
    assert monitor
    assert all("would block (nft: drop 10.0.0.7 for 1h)" in x for x in monitor)
    assert all(" MODERATE " in x for x in lines)
    assert all(x.split()[2:5] == ["alert", "scan-syn", "success"] for x in lines)


def test_hostile_text_is_escaped(week: Week) -> None:
    directory, _, _ = week
    lines = _tail(directory, "--kind", "wifi")
    public = [x for x in lines if "public" in x]
    assert public
    assert all("\x1b" not in x for x in lines)
    assert all("\\u001b[2J" in x for x in public)
    assert HOSTILE_SSID not in "\n".join(lines)


def _on_a_terminal(directory: Path, env: dict[str, str]) -> bytes:
    master, slave = pty.openpty()
    proc = subprocess.Popen(edgeguard_argv("audit", "tail", "--kind", "wifi", str(directory)),
                            stdout=slave, stderr=subprocess.PIPE, env=edgeguard_env(env),
                            cwd=ROOT)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    assert proc.wait(timeout=60) == 0
    return out


def test_colour_on_a_terminal_only_and_never_with_no_color(week: Week) -> None:
    directory, _, _ = week
    env = {"NO_COLOR": ""}  # set but empty: colour stays on (no-color.org)
    coloured = _on_a_terminal(directory, env)
    assert b"\x1b[1;31mSEVERE\x1b[0m" in coloured
    assert b"\x1b[" not in _on_a_terminal(directory, {"NO_COLOR": "1"})
    piped = run_edgeguard(["audit", "tail", "--kind", "wifi", str(directory)])
    assert "SEVERE" in piped.stdout
    assert "\x1b[" not in piped.stdout
