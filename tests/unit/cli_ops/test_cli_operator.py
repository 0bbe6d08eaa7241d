"""Issue 21, "tell the operator why" and "a command line that feels native":

* a refused ``edgeguard reload`` prints the errors (file:line) and its audit record has
  outcome failure (on the old main: "refused; running policy kept", outcome success);
* a command aimed at a feature the policy turns off says so (old: "unknown command
  'media.list'");
* ``net block`` / ``net unblock`` / ``net allow`` from the command line, ``net allow``
  writing a checked drop-in the daemon audits;
* one name per idea (``--socket``, ``--audit-dir``; old spellings hidden aliases),
  ``--profile`` wherever ``--policy`` is, every ``--help`` with a description and exit
  statuses, one exit status (3) for "no daemon".
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from edgeguard.cli import EXIT_STATUS, build_parser
from edgeguard.cli._common import EXIT_NO_DAEMON
from edgeguard.daemon.component import Peer, changing
from edgeguard.daemon.control import (
    CommandFailed,
    ControlServer,
    Request,
    disabled_features,
    request,
)
from edgeguard.policy.load import load_policy
from tests.conftest import run_edgeguard
from tests.support.daemon import Daemon

ROOT = Peer(pid=3, uid=0, gid=0)


# -- the control socket says why -------------------------------------------------------------
def test_a_failed_command_answers_its_reasons_and_is_audited_as_a_failure(
        tmp_path: Path) -> None:
    async def refuse(peer: Peer, args: Mapping[str, Any]) -> dict[str, Any]:
        raise CommandFailed("policy reload refused (2 errors)", ("a.yaml:3:12: x", "b: y"))

    audited: list[tuple[str, bool, str]] = []
    server = ControlServer(tmp_path / "s", {"reload": changing(refuse)},
                           on_change=lambda p, c, a, ok, e: audited.append((c, ok, e)),
                           disabled=disabled_features({"media": False, "network": True}))
    answer = asyncio.run(server.answer(Request("reload", {}), ROOT))
    assert answer == {"ok": False, "error": "policy reload refused (2 errors)",
                      "details": ["a.yaml:3:12: x", "b: y"]}
    assert audited == [("reload", False, "policy reload refused (2 errors); a.yaml:3:12: x; "
                                         "b: y")]
    media = asyncio.run(server.answer(Request("media.list", {}), ROOT))
    assert media["error"].startswith("media is disabled in the policy (media.enabled: false)")
    net = asyncio.run(server.answer(Request("net.nope", {}), ROOT))
    assert net["error"] == "unknown command 'net.nope'"  # enabled: a plain unknown command


# -- one name per idea, help everywhere -----------------------------------------------------
def _subparsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
                ) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield (*path, name), child
                yield from _subparsers(child, (*path, name))


def test_every_subcommand_help_has_a_description_and_its_exit_statuses() -> None:
    seen = list(_subparsers(build_parser()))
    assert len(seen) >= 30
    for path, parser in seen:
        text = parser.format_help()
        assert parser.description, f"edgeguard {' '.join(path)} --help has no description"
        assert "Exit" in text, f"edgeguard {' '.join(path)} --help names no exit status"
        assert "--control-socket" not in text, path  # hidden aliases stay hidden
        assert "--audit " not in text, path
        options = {o for a in parser._actions for o in a.option_strings}
        if "--policy" in options:
            assert "--profile" in options, f"edgeguard {' '.join(path)}: --policy, no --profile"
    assert "3 no daemon" in EXIT_STATUS


@pytest.mark.parametrize(("argv", "dest", "value"), [
    (["run", "--control-socket", "/x"], "socket", Path("/x")),
    (["run", "--socket", "/x"], "socket", Path("/x")),
    (["prepare", "--control-socket", "/x"], "socket", Path("/x")),
    (["status", "--control-socket", "/x"], "socket", Path("/x")),
    (["replay", "f.pcap", "--audit", "/d"], "audit_dir", Path("/d")),
    (["replay", "f.pcap", "--audit-dir", "/d"], "audit_dir", Path("/d")),
    (["run", "--audit-dir", "/d"], "audit_dir", Path("/d")),
    (["audit", "tail", "--audit-dir", "/d"], "audit_dir", Path("/d")),
    (["audit", "tail", "--profile", "kiosk"], "profile", "kiosk"),
    (["report", "--audit-dir", "/d"], "audit_dir", Path("/d")),
])
def test_old_spellings_still_work(argv: list[str], dest: str, value: object) -> None:
    assert getattr(build_parser().parse_args(argv), dest) == value


def test_lazy_help_of_a_new_command_has_its_exit_statuses() -> None:
    done = run_edgeguard(["net", "block", "--help"])
    assert done.returncode == 0
    assert "3 no daemon" in done.stdout.replace("\n", " ").replace("  ", " ")


# -- net block / unblock / allow without a daemon -------------------------------------------
@pytest.mark.parametrize("argv", [
    ["net", "block", "192.0.2.7", "--for", "1h", "--reason", "x"],
    ["net", "unblock", "192.0.2.7"],
    ["status"],
    ["reload"],
])
def test_no_daemon_is_one_exit_status(tmp_path: Path, argv: list[str]) -> None:
    done = run_edgeguard([*argv, "--socket", str(tmp_path / "none.sock")])
    assert done.returncode == EXIT_NO_DAEMON, done.stderr
    assert "cannot reach edgeguard" in done.stderr


@pytest.mark.parametrize("argv", [
    ["net", "block", "nonsense", "--for", "1h", "--reason", "x"],
    ["net", "block", "192.0.2.7", "--for", "2 fortnights", "--reason", "x"],
    ["net", "block", "192.0.2.7", "--reason", "x"],
    ["net", "allow", "10.0.0.7/8", "--rule", "port-scan", "--for", "1d", "--reason", "x"],
])
def test_bad_arguments_are_usage_errors(tmp_path: Path, argv: list[str]) -> None:
    done = run_edgeguard([*argv, "--socket", str(tmp_path / "none.sock")])
    assert done.returncode == 2, done.stderr


def test_allow_prints_writes_and_refuses_a_policy_that_would_not_load(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    base = ["net", "allow", "10.0.0.7", "--rule", "port-scan", "--for", "7d",
            "--reason", 'IT\'s "inventory" scanner\nextra: key', "--etc-dir", str(etc)]
    shown = run_edgeguard([*base, "--print"])
    assert shown.returncode == 0
    assert not etc.exists()  # --print writes nothing
    bad = run_edgeguard(["net", "allow", "10.0.0.7", "--rule", "port-scn", "--for", "7d",
                         "--reason", "x", "--etc-dir", str(etc), "--no-reload"])
    assert bad.returncode == 2
    assert "did you mean 'port-scan'" in bad.stderr
    assert not etc.exists()  # refused before anything is written
    done = run_edgeguard([*base, "--no-reload"])
    assert done.returncode == 0, done.stderr
    (drop_in,) = (etc / "policy.d").glob("*.yaml")
    assert drop_in.read_text().split("until:")[0] == shown.stdout.split("until:")[0]
    (exc,) = load_policy([drop_in]).policy.exceptions
    assert exc.reason == 'IT\'s "inventory" scanner\nextra: key'  # quoted, no key injected
    assert (exc.rule, str(exc.address)) == ("port-scan", "10.0.0.7/32")


# -- against a running daemon -----------------------------------------------------------------
def test_allow_reload_refusal_and_a_disabled_feature_with_a_daemon(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    (etc / "policy.d").mkdir(parents=True)
    main = etc / "policy.yaml"
    main.write_text("media:\n  enabled: false\nmode: monitor\n")
    drop_in = etc / "policy.d" / "60-allow-port-scan-10.0.0.7.yaml"
    drop_in.write_text("exceptions: []\n")
    sock = tmp_path / "control.sock"
    with Daemon.running(tmp_path, main, sock=sock, policy_files=(main, drop_in)) as daemon:
        allow = run_edgeguard(["net", "allow", "10.0.0.7", "--rule", "port-scan", "--for",
                               "7d", "--reason", "inventory", "--etc-dir", str(etc),
                               "--socket", str(sock)])
        assert allow.returncode == 0, allow.stderr
        assert "exceptions:" in drop_in.read_text()

        main.write_text("mode: enforce\nmedia:\n  enabled: perhaps\n")  # line 3, column 12
        refused = run_edgeguard(["reload", "--socket", str(sock)])
        assert refused.returncode == 1
        assert f"{main}:3:12: media.enabled" in refused.stderr
        assert "running policy" in refused.stderr

        media = run_edgeguard(["media", "list", "--socket", str(sock)])
        assert media.returncode == 1
        assert "media is disabled in the policy" in media.stderr
        assert "unknown command" not in media.stderr
        assert request(sock, "status")["mode"] == "monitor"  # the running policy stayed
        assert daemon.stop() == 0
        records = daemon.records()
    by_action: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_action.setdefault(record["event"]["action"], []).append(record)
    (added,) = by_action["policy-exception-added"]
    assert added["edgeguard"]["exception"]["id"] == "allow-port-scan-10.0.0.7"
    assert added["event"]["reason"] == "inventory"
    commands = [(r["edgeguard"]["control"]["command"], r["event"]["outcome"])
                for r in by_action["control-command"]]
    assert commands == [("reload", "success"), ("reload", "failure")]
    failed = by_action["control-command"][1]
    assert f"{main}:3:12" in failed["error"]["message"]
