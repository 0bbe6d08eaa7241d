"""docs/cli.md, the man page and bash completion come from the parsers; they must agree."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from edgeguard.cli import build_parser
from edgeguard.cli._docs import render_markdown, walk
from tests.conftest import run_edgeguard

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def test_docs_cli_md_is_current() -> None:
    assert DOC.read_text() == render_markdown(build_parser()), (
        "docs/cli.md is stale: run `edgeguard manpage --markdown > docs/cli.md`")


def _doc_blocks() -> dict[str, str]:
    text = DOC.read_text()
    return {m.group(1): m.group(2) for m in
            re.finditer(r"^## `([^`]+)`\n\n```\n(.*?)\n```", text, re.S | re.M)}


PATHS = [p for p, _ in walk(build_parser())]


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "edgeguard")
def test_every_help_matches_the_docs(path: tuple[str, ...]) -> None:
    result = run_edgeguard([*path, "--help"], env={"COLUMNS": "90"})
    assert result.returncode == 0
    assert result.stdout.rstrip() == _doc_blocks()[" ".join(("edgeguard", *path))]


def test_manpage_has_every_command() -> None:
    result = run_edgeguard(["manpage"])
    assert result.returncode == 0
    assert result.stdout.startswith(".TH EDGEGUARD 8")
    for path in PATHS:
        assert ".SH " + " ".join(("edgeguard", *path)).upper() in result.stdout


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize(("line", "expected"), [
    ("edgeguard ", {"check", "run", "status", "completion"}),
    ("edgeguard ch", {"check"}),
    ("edgeguard run --pol", {"--policy"}),
    ("edgeguard completion ", {"bash"}),
])
def test_bash_completion(tmp_path: Path, line: str, expected: set[str]) -> None:
    script = tmp_path / "comp.sh"
    script.write_text(run_edgeguard(["completion", "bash"]).stdout)
    words = line.split(" ")
    probe = (f"source {script}; COMP_WORDS=({' '.join(repr(w) for w in words)}); "
             f"COMP_CWORD={len(words) - 1}; _edgeguard; printf '%s\\n' \"${{COMPREPLY[@]}}\"")
    out = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, check=True,
                         cwd=tmp_path)
    assert expected <= set(out.stdout.split())
