"""Where the network tests find their captures (shared by unit, linux and bench code)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["CORPUS", "PCAPS"]

HERE = Path(__file__).resolve()
PCAPS = HERE.parents[2] / "data" / "pcaps"


def _corpus() -> Path:
    """The labelled corpus: ``$EDGEGUARD_CORPUS``, else ``shared/corpus`` beside the
    checkout or any parent (worktrees live one level deeper than the main checkout)."""
    if os.environ.get("EDGEGUARD_CORPUS"):
        return Path(os.environ["EDGEGUARD_CORPUS"])
    for base in HERE.parents:
        candidate = base / "shared" / "corpus"
        if candidate.is_dir():
            return candidate
    return HERE.parents[3].parent / "shared" / "corpus"


CORPUS = _corpus()
