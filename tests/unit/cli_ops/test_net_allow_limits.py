"""Review defects of ``edgeguard net allow`` (issue 21, "handle a false alarm"):

* ``--rule p2p/bt`` wrote ``policy.d/60-allow-p2p/...`` (a sub-directory the loader never
  reads, while the command said the exception was in force) and ``--rule ../x`` wrote
  outside ``policy.d`` before anything was validated. Now the rule is checked against
  the policy first (nothing written when it is unknown), the file name is made of
  ``[A-Za-z0-9._-]`` only, and the file is checked to sit directly in ``policy.d``.
* an exception could be as wide (0.0.0.0/0) and as long (100 years) as anyone typed;
  now ``exception_limits`` caps both, for the command line (unless ``--force``) and for
  hand-written ``exceptions:`` entries (a file:line error).
"""

from __future__ import annotations

import datetime
import time
from pathlib import Path

import pytest

from edgeguard.cli import main
from edgeguard.policy.load import PolicyError, load_policy

SITE_RULES = """rules:
  - {id: p2p/bt, kind: bittorrent}
  - {id: ../escape, kind: scan}
"""


def allow(etc: Path, *args: str) -> int:
    return main(["net", "allow", *args, "--reason", "ticket 4711", "--etc-dir", str(etc),
                 "--no-reload"])


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.fixture
def etc(tmp_path: Path) -> Path:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "policy.yaml").write_text(SITE_RULES)
    return etc


def test_a_rule_with_a_slash_lands_directly_in_policy_d_and_is_read(etc: Path) -> None:
    assert allow(etc, "10.0.0.7", "--rule", "p2p/bt", "--for", "7d") == 0
    assert files_under(etc) == ["policy.d/60-allow-p2p-bt-10.0.0.7.yaml", "policy.yaml"]
    layers = [etc / "policy.yaml", *sorted((etc / "policy.d").glob("*.yaml"))]
    (exc,) = load_policy(layers).policy.exceptions
    assert exc.rule == "p2p/bt"  # the real rule id; only the file name is mapped
    assert exc.id == "allow-p2p-bt-10.0.0.7"


def test_a_traversing_rule_never_writes_outside_policy_d(etc: Path,
                                                         capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    assert allow(etc, "10.0.0.7", "--rule", "../escape", "--for", "1d") == 0
    assert files_under(etc.parent) == ["etc/policy.d/60-allow-escape-10.0.0.7.yaml",
                                       "etc/policy.yaml"]
    capsys.readouterr()
    assert allow(etc, "10.0.0.8", "--rule", "../../../tmp/x", "--for", "1d") == 2
    assert "nothing written: no rule" in capsys.readouterr().err
    assert files_under(etc.parent) == ["etc/policy.d/60-allow-escape-10.0.0.7.yaml",
                                       "etc/policy.yaml"]


@pytest.mark.parametrize("text", ["../", "/", "...", "-"])
def test_names_that_leave_nothing_are_refused(tmp_path: Path, text: str) -> None:
    from edgeguard.cli._net_allow import drop_in_path, file_part  # noqa: PLC0415

    with pytest.raises(ValueError, match="file name"):
        file_part(text)
    with pytest.raises(ValueError, match="file name"):
        drop_in_path(tmp_path, f"allow-{text}")


@pytest.mark.parametrize(("args", "message"), [
    (["0.0.0.0/0", "--rule", "port-scan", "--for", "1d"], "wider than /16"),
    (["10.0.0.0/15", "--rule", "port-scan", "--for", "1d"], "wider than /16"),
    (["2001:db8::/32", "--rule", "port-scan", "--for", "1d"], "wider than /48"),
    (["10.0.0.7", "--rule", "port-scan", "--for", "91d"], "exception_limits.longest"),
])
def test_too_wide_or_too_long_is_refused_unless_forced(
        etc: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    assert allow(etc, *args) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "--force" in err
    assert not (etc / "policy.d").exists()  # nothing written
    assert allow(etc, *args, "--force") == 0
    (drop_in,) = (etc / "policy.d").glob("*.yaml")
    assert "override_limits: true" in drop_in.read_text()
    (exc,) = load_policy([etc / "policy.yaml", drop_in]).policy.exceptions
    assert exc.override_limits


def test_the_limits_are_the_policys(etc: Path) -> None:
    (etc / "policy.yaml").write_text(SITE_RULES + "exception_limits:\n  widest_ipv4_prefix: 24\n"
                                     "  longest: 2d\n")
    assert allow(etc, "10.0.0.0/23", "--rule", "port-scan", "--for", "1d") == 2
    assert allow(etc, "10.0.0.0/24", "--rule", "port-scan", "--for", "3d") == 2
    assert allow(etc, "10.0.0.0/24", "--rule", "port-scan", "--for", "2d") == 0


def _iso(when: float) -> str:
    return datetime.datetime.fromtimestamp(when, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize(("address", "days", "message"), [
    ("0.0.0.0/0", 1, "wider than /16"),
    ("2001:db8::/47", 1, "wider than /48"),
    ("10.0.0.7", 365 * 100, "more than exception_limits.longest (90 days)"),
])
def test_a_hand_written_exception_beyond_the_limits_is_a_file_line_error(
        tmp_path: Path, address: str, days: int, message: str) -> None:
    until = _iso(time.time() + days * 86400)
    path = tmp_path / "p.yaml"
    path.write_text("mode: enforce\nexceptions:\n"
                    f"  - {{id: a, rule: port-scan, address: '{address}', until: '{until}', "
                    "reason: x}\n")
    with pytest.raises(PolicyError) as caught:
        load_policy([path])
    assert f"{path}:3:" in str(caught.value)
    assert message in str(caught.value)
    path.write_text(path.read_text().replace("reason: x}", "reason: x, override_limits: true}"))
    (exc,) = load_policy([path]).policy.exceptions
    assert exc.override_limits
