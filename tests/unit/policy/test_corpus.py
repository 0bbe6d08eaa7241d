"""The good/bad policy corpus: every bad file gives exactly its expected messages.

Each ``bad/NAME.yaml`` has ``bad/NAME.expected`` beside it: the lines ``edgeguard check``
prints, with the file's path written as ``FILE``. Good files must load (layered on the
embedded default) and the CLI must accept them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeguard.policy.load import PolicyError, load_policy

DATA = Path(__file__).resolve().parents[2] / "data" / "policies"
BAD = sorted((DATA / "bad").glob("*.yaml"))
GOOD = sorted((DATA / "good").glob("*.yaml"))


def test_corpus_is_large_enough() -> None:
    assert len(BAD) >= 30
    assert len(GOOD) >= 3


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.stem)
def test_bad_policy_messages(path: Path) -> None:
    expected = path.with_suffix(".expected").read_text().splitlines()
    with pytest.raises(PolicyError) as info:
        load_policy([path])
    got = [str(issue).replace(str(path), "FILE") for issue in info.value.issues]
    assert got == expected


@pytest.mark.parametrize("path", GOOD, ids=lambda p: p.stem)
def test_good_policy_loads(path: Path) -> None:
    loaded = load_policy([path])
    assert loaded.sources[-1] == str(path)
    assert len(loaded.digest) == 64


@pytest.mark.parametrize("path", [BAD[0], GOOD[0]], ids=["bad", "good"])
def test_check_command_exit_codes(path: Path, eg) -> None:  # type: ignore[no-untyped-def]
    result = eg(["check", str(path)])
    if path.parent.name == "bad":
        assert result.returncode == 2
        assert str(path) in result.stderr
    else:
        assert result.returncode == 0, result.stderr
        assert "policy OK" in result.stdout


def test_every_error_reported_at_once(eg) -> None:  # type: ignore[no-untyped-def]
    path = DATA / "bad" / "many-errors.yaml"
    result = eg(["check", str(path)])
    assert result.returncode == 2
    assert result.stderr.count(str(path)) == 4
    assert "4 error(s)" in result.stderr
