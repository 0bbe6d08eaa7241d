"""The README links every document, and the glossary explains the terms issue 21 names."""

from __future__ import annotations

import re

from tests.conftest import ROOT

TERMS = ("BPF", "TRW", "MSE/PE", "SAE", "OWE", "epoch", "ECS", "BLKROSET", "uTP", "DHT",
         "LUKS")


def test_readme_links_every_doc() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [p.name for p in sorted((ROOT / "docs").glob("*.md"))
               if f"docs/{p.name}" not in readme]
    assert missing == []


def test_glossary_defines_the_terms_staff_will_not_know() -> None:
    glossary = (ROOT / "docs" / "glossary.md").read_text()
    defined = set(re.findall(r"^\| \*\*([^*]+)\*\*", glossary, re.M))
    words = {w.strip() for entry in defined for w in re.split(r",|\(|\)", entry)}
    missing = [t for t in TERMS if t not in words and not any(t in e for e in defined)]
    assert missing == []
