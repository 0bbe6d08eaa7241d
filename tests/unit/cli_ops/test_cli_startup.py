"""Start-up stays light: ``--version`` and ``check`` load neither the daemon, pyroute2 nor
the detectors (issue 21: every command used to take ~0.46 s, 12.8x a bare Python). The
time ratios are measured by bench/startup.py, not asserted here."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from edgeguard.cli import COMMANDS, build_parser
from tests.conftest import ROOT, edgeguard_env

HEAVY = ("edgeguard.daemon", "pyroute2", "edgeguard.net.detect", "edgeguard.net.inspect",
         "edgeguard.wifi.service", "edgeguard.media.service", "edgeguard.audit.shipd")

_PROBE = """
import sys
from edgeguard.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print("\\nMODULES " + " ".join(sorted(sys.modules)), file=sys.stderr)
sys.exit(code)
"""


def _modules_after(*argv: str) -> tuple[int, set[str]]:
    done = subprocess.run([sys.executable, "-c", _PROBE, *argv], capture_output=True,
                          text=True, env=edgeguard_env(), cwd=ROOT, timeout=60, check=False)
    line = next(x for x in done.stderr.splitlines() if x.startswith("MODULES "))
    return done.returncode, set(line.split()[1:])


@pytest.mark.parametrize("argv", [("--version",), ("check",), ("report", "--help")])
def test_light_commands_do_not_load_the_daemon_or_detectors(argv: tuple[str, ...]) -> None:
    code, modules = _modules_after(*argv)
    assert code == 0
    loaded = sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))
    assert loaded == [], f"edgeguard {' '.join(argv)} imported {loaded}"


def test_the_probe_would_see_a_heavy_import() -> None:
    """The check above is not vacuous: ``run --help`` does load the daemon."""
    code, modules = _modules_after("run", "--help")
    assert code == 0
    assert "edgeguard.daemon.run" in modules or "edgeguard.daemon" in modules


def test_the_command_table_names_every_command_and_its_module() -> None:
    """COMMANDS (what lazy start-up imports) matches what the modules register."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == set(COMMANDS)
    for name, module in COMMANDS.items():
        lazy = sys.modules[f"edgeguard.cli.{module}"]
        probe = argparse.ArgumentParser()
        lazy.register(probe.add_subparsers())
        assert name in probe._subparsers._group_actions[0].choices, (name, module)  # type: ignore[union-attr]


def test_every_command_module_is_in_the_table() -> None:
    modules = {p.stem for p in (ROOT / "edgeguard" / "cli").glob("*.py")
               if not p.stem.startswith("_")}
    assert modules == set(COMMANDS.values())


def test_check_of_the_shipped_policy_loads_no_yaml_parser() -> None:
    """With no policy file, ``check`` takes the precompiled policy: no PyYAML, converter or
    reference (they load for a file, ``--host`` on an enabled network watch, ``--reference``)."""
    from edgeguard.policy.load import default_layers  # noqa: PLC0415

    if default_layers():
        pytest.skip("this host has /etc/edgeguard policy files: check parses them")
    code, modules = _modules_after("check")
    assert code == 0
    assert {"yaml", "edgeguard.policy.yamltree", "edgeguard.policy.convert",
            "edgeguard.policy.reference"} & modules == set()
    _code, with_reference = _modules_after("check", "--reference")
    assert "edgeguard.policy.reference" in with_reference
