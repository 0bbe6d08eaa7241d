"""The examples in the docs are the ones that work.

* Every fenced ```yaml block in docs/*.md and README.md is a policy snippet and must pass
  ``edgeguard check`` (layered on the embedded default, as an administrator's drop-in
  would be). A YAML block that is not a policy says so with ``<!-- not-a-policy -->`` on
  the line before its fence. A block that starts like a policy but is not tagged
  ``yaml`` fails, so a snippet cannot escape the check by losing its tag.
* A block preceded by ``<!-- file: PATH -->`` (PATH relative to docs/) is that file byte
  for byte; docs/shipping.md shows the rsyslog receiver config this way, and the
  shipping tests (tests/linux/audit) run that same file.
* The Vector example (not runnable here: Vector is not packaged for Debian 12) is at
  least valid TOML.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import re
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

from edgeguard.policy.model import Policy
from tests.conftest import ROOT, run_edgeguard

DOCS = ROOT / "docs"
NOT_A_POLICY = "<!-- not-a-policy -->"
FILE_MARK = re.compile(r"^<!-- file: (\S+) -->$")
FENCE = re.compile(r"^```(\S*)\s*$")


@dataclasses.dataclass(frozen=True)
class Block:
    doc: Path
    line: int  # of the opening fence, 1-based
    lang: str
    marker: str  # the nearest non-blank line before the fence
    text: str

    def __str__(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line}"


def _blocks(doc: Path) -> list[Block]:
    lines = doc.read_text().split("\n")
    out = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        before = next((lines[k].strip() for k in range(i - 1, -1, -1) if lines[k].strip()), "")
        out.append(Block(doc, i + 1, m.group(1), before, "\n".join(lines[i + 1:end]) + "\n"))
        i = end + 1
    return out


def _docs() -> list[Path]:
    return [*sorted(DOCS.glob("*.md")), ROOT / "README.md"]


ALL_BLOCKS = [b for doc in _docs() for b in _blocks(doc)]
POLICY_SNIPPETS = [b for b in ALL_BLOCKS if b.lang == "yaml" and b.marker != NOT_A_POLICY]
FILE_BLOCKS = [b for b in ALL_BLOCKS if FILE_MARK.match(b.marker)]


def test_the_extractor_finds_the_examples() -> None:
    assert len(POLICY_SNIPPETS) >= 4
    assert {b.doc.name for b in POLICY_SNIPPETS} >= {"install.md", "shipping.md", "findings.md"}


@pytest.mark.parametrize("block", POLICY_SNIPPETS, ids=str)
def test_policy_snippet_passes_check(block: Block, tmp_path: Path) -> None:
    snippet = tmp_path / "snippet.yaml"
    snippet.write_text(block.text)
    done = run_edgeguard(["check", str(snippet)])
    assert done.returncode == 0, f"{block}: {done.stdout}{done.stderr}"
    assert done.stdout.startswith("policy OK")


def test_untagged_blocks_do_not_hide_policies() -> None:
    top = tuple(f"{f.name}:" for f in dataclasses.fields(Policy))
    for block in ALL_BLOCKS:
        if block.lang or block.doc.name == "cli.md":
            continue
        first = next((x for x in block.text.splitlines() if x and not x.startswith("#")), "")
        assert not first.startswith(top), f"{block}: a policy snippet must be tagged yaml"


def _rsyslog_helpers() -> ModuleType:
    path = ROOT / "tests" / "linux" / "audit" / "rsyslog_helpers.py"
    spec = importlib.util.spec_from_file_location("rsyslog_helpers_for_docs", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_file_blocks_are_the_files_byte_for_byte() -> None:
    assert FILE_BLOCKS
    for block in FILE_BLOCKS:
        m = FILE_MARK.match(block.marker)
        assert m is not None
        assert block.text.encode() == (DOCS / m.group(1)).read_bytes(), str(block)


def test_shipping_doc_shows_the_rsyslog_config_the_tests_run() -> None:
    helpers = _rsyslog_helpers()
    shown = {(DOCS / FILE_MARK.match(b.marker).group(1)).resolve()  # type: ignore[union-attr]
             for b in FILE_BLOCKS if b.doc.name == "shipping.md"}
    assert helpers.RSYSLOG_CONF.resolve() in shown
    conf = helpers.RSYSLOG_CONF.read_text()
    # the tests change nothing but the placeholders, and fill in every one of them
    assert set(re.findall(r"@([A-Z_]+)@", conf)) == set(helpers.PLACEHOLDERS)
    rendered = helpers.render_conf({k: f"<{k}>" for k in helpers.PLACEHOLDERS})
    assert not re.search(r"@[A-Z_]+@", rendered)
    assert rendered.count("\n") == conf.count("\n")
    # and the shipping tests use that fixture
    conftest = (ROOT / "tests" / "linux" / "audit" / "conftest.py").read_text()
    assert "render_conf(" in conftest


def test_vector_example_is_valid_toml() -> None:
    blocks = [b for b in ALL_BLOCKS if b.lang == "toml" and b.doc.name == "shipping.md"]
    assert blocks
    for block in blocks:
        config = tomllib.loads(block.text)
        assert config["sources"]["edgeguard"]["type"] == "file"
        assert any("/var/log/edgeguard/audit" in p
                   for p in config["sources"]["edgeguard"]["include"])
