"""``edgeguard replay`` loads what the chosen file and options need, nothing more (issue
23: start-up dominated replays of small files). Without ``--audit`` the decision path
(decision engine, pipeline, structlog, asyncio, the audit writer) stays unloaded; the
daemon, pyroute2 and the Wi-Fi/media services always do. Times are measured by
bench/startup.py, not asserted here."""

from __future__ import annotations

from pathlib import Path

from tests.unit.cli_ops.test_cli_startup import _modules_after
from tests.unit.net.netdata import PCAPS

FILE = str(PCAPS / "bt_split.pcap")
NEVER = ("edgeguard.daemon.run", "edgeguard.daemon.control", "pyroute2",
         "edgeguard.wifi.service", "edgeguard.media.service", "edgeguard.audit.shipd",
         "edgeguard.actions.nftables.apply", "edgeguard.net.capture", "edgeguard.net.worker")
WITH_AUDIT = ("edgeguard.daemon.pipeline", "edgeguard.decision", "edgeguard.audit.writer",
              "structlog", "asyncio")


def _loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in names))


def test_replay_without_audit_loads_no_decision_path() -> None:
    code, modules = _modules_after("replay", FILE)
    assert code in (0, 1)  # findings or none: it ran
    assert "edgeguard.net.detect.scan" in modules  # the detectors it needs did load
    assert _loaded(modules, NEVER + WITH_AUDIT) == []


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
