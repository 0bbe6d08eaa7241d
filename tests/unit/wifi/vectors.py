"""Load the annotated IE vectors in tests/data/wifi/vectors/ies.yaml."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

DATA = Path(__file__).resolve().parents[2] / "data" / "wifi"
VECTORS = DATA / "vectors" / "ies.yaml"


@dataclass(frozen=True)
class Vector:
    name: str
    note: str
    privacy: bool
    ies: bytes
    expect: dict[str, Any]


def hex_lines(text: str) -> bytes:
    """Hex with one field per line and ``#`` comments, as the vector files write it."""
    return bytes.fromhex(" ".join(line.split("#", 1)[0] for line in text.splitlines()))


def load_vectors() -> list[Vector]:
    raw = yaml.safe_load(VECTORS.read_text())
    return [Vector(v["name"], v["note"], v["privacy"], hex_lines(v["ies"]), v["expect"])
            for v in raw]
