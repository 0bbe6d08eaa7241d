"""``edgeguard replay`` loads what the chosen file and options need, nothing more (issue
23: start-up dominated replays of small files). Without ``--audit`` the decision path
(decision engine, pipeline, structlog, asyncio, the audit writer) stays unloaded; the
daemon, pyroute2 and the Wi-Fi/media services always do. Times are measured by
bench/startup.py, not asserted here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, edgeguard_env
from tests.unit.cli_ops.test_cli_startup import _modules_after
from tests.unit.net.netdata import PCAPS

FILE = str(PCAPS / "bt_split.pcap")
NEVER = ("edgeguard.daemon.run", "edgeguard.daemon.control", "pyroute2",
         "edgeguard.wifi.service", "edgeguard.media.service", "edgeguard.audit.shipd",
         "edgeguard.actions.nftables.apply", "edgeguard.net.capture", "edgeguard.net.worker")
#: What a replay without ``--audit`` never uses: the action base and what it imports.
ACTIONS = ("edgeguard.actions.base", "edgeguard.findings", "edgeguard.audit", "difflib")
WITH_AUDIT = ("edgeguard.daemon.pipeline", "edgeguard.decision", "edgeguard.audit.writer",
              "structlog", "asyncio")


def _loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in names))


def test_replay_without_audit_loads_no_decision_path() -> None:
    code, modules = _modules_after("replay", FILE)
    assert code in (0, 1)  # findings or none: it ran
    assert "edgeguard.net.detect.scan" in modules  # the detectors it needs did load
    assert _loaded(modules, NEVER + WITH_AUDIT + ACTIONS) == []


def test_replay_with_audit_loads_the_decision_path(tmp_path: Path) -> None:
    """The check above is not vacuous: ``--audit`` does load what it leaves out."""
    code, modules = _modules_after("replay", FILE, "--audit", str(tmp_path / "audit"))
    assert code in (0, 1)
    assert _loaded(modules, WITH_AUDIT)
    assert _loaded(modules, NEVER) == []


def test_replay_help_loads_no_detectors() -> None:
    code, modules = _modules_after("replay", "--help")
    assert code == 0
    assert _loaded(modules, ("edgeguard.net.detect", "edgeguard.net.replay", *NEVER,
                             *WITH_AUDIT)) == []


#: What the shipped policy's precompiled network section spares a plain replay: PyYAML,
#: the loader, the converter and the whole model (every other area's config), ECS, orjson.
POLICY_PARSE = ("yaml", "edgeguard.policy.load", "edgeguard.policy.yamltree",
                "edgeguard.policy.convert", "edgeguard.policy.model", "edgeguard.media.config",
                "edgeguard.wifi.config", "edgeguard.kiosk.config", "edgeguard.audit.config")
JSON_OUTPUT = ("orjson", "edgeguard.ecs")


def test_plain_replay_parses_no_policy_and_loads_no_json() -> None:
    code, modules = _modules_after("replay", FILE)
    assert code == 1  # the file has findings: the detectors ran with the shipped policy
    assert "edgeguard.net.config" in modules
    assert _loaded(modules, POLICY_PARSE + JSON_OUTPUT + ("importlib.resources",)) == []


def test_json_replay_loads_the_json_path_only() -> None:
    code, modules = _modules_after("replay", "--json", FILE)
    assert code == 1
    assert set(JSON_OUTPUT) <= modules
    assert _loaded(modules, POLICY_PARSE) == []


def test_a_policy_file_is_parsed_and_validated_as_before(tmp_path: Path) -> None:
    """The precompiled path is for the shipped layers alone: a file given is read,
    parsed and validated, and a bad one is refused with its line, as it always was."""
    good = tmp_path / "good.yaml"
    good.write_text("network:\n  scan:\n    min_failed_contacts: 9\n")
    code, modules = _modules_after("replay", "--policy", str(good), FILE)
    assert code == 1
    assert _loaded(modules, ("yaml", "edgeguard.policy.convert", "edgeguard.policy.model"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("network:\n  scan:\n    min_failed_contacts: many\n")
    done = subprocess.run([sys.executable, "-m", "edgeguard", "replay", "--policy", str(bad),
                           FILE], capture_output=True, text=True, env=edgeguard_env(),
                          cwd=ROOT, timeout=60, check=False)
    assert done.returncode == 2
    assert f"{bad}:3:" in done.stderr
    assert "min_failed_contacts" in done.stderr
