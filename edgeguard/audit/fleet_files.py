"""Which files a collector holds, in which order to read them, and the records in them
(:mod:`edgeguard.audit.fleet` verifies what this yields).

A first pass notes each file's lowest sequence per chain, so that a chain is read in
sequence order whatever the files' modification times say (an edited file is newer)."""

from __future__ import annotations

import heapq
import itertools
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeguard.audit.against import json_records
from edgeguard.audit.chain import get_path

__all__ = ["Survey", "fleet_records", "reading_order", "received_files", "survey_files"]


def received_files(directory: Path) -> list[Path]:
    """Every regular file under ``directory`` (by path; :func:`reading_order` orders them)."""
    found: list[Path] = []
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        for name in files:
            path = Path(root) / name
            try:
                if path.is_file():
                    found.append(path)
            except OSError:
                continue
    return sorted(found)


@dataclass(slots=True)
class Survey:
    """The first pass over one file: the lowest sequence of each chain in it, its hosts."""

    mtime: float
    firsts: dict[str, int] = field(default_factory=dict)
    hosts: set[str] = field(default_factory=set)


def survey_files(files: Sequence[Path]) -> dict[Path, Survey]:
    out: dict[Path, Survey] = {}
    for path in files:
        try:
            survey = Survey(path.stat().st_mtime)
        except OSError:
            continue
        for host, chain, seq, _, _ in fleet_records(path):
            survey.hosts.add(host)
            if seq < survey.firsts.get(chain, seq + 1):
                survey.firsts[chain] = seq
        out[path] = survey
    return out


def reading_order(surveys: Mapping[Path, Survey]) -> list[Path]:
    """Files so that, for every chain, a file starting at a lower sequence comes first
    (rotated, edited or copied files alike); ties and contradictions (which only a
    tampered copy has) by modification time, then path."""
    def key(path: Path) -> tuple[float, str]:
        return surveys[path].mtime, str(path)

    by_chain: dict[str, list[tuple[int, float, str, Path]]] = {}
    for path, survey in surveys.items():
        for chain, first in survey.firsts.items():
            by_chain.setdefault(chain, []).append((first, *key(path), path))
    after: dict[Path, set[Path]] = {p: set() for p in surveys}
    before_count = dict.fromkeys(surveys, 0)
    for entries in by_chain.values():
        ordered = [entry[-1] for entry in sorted(entries)]
        for earlier, later in itertools.pairwise(ordered):
            if later not in after[earlier]:
                after[earlier].add(later)
                before_count[later] += 1
    ready = [(key(p), p) for p, n in before_count.items() if n == 0]
    heapq.heapify(ready)
    order: list[Path] = []
    left = set(surveys)
    while left:
        if not ready:  # a cycle: take the oldest file left
            oldest = min(left, key=key)
            before_count[oldest] = 0
            ready.append((key(oldest), oldest))
        _, path = heapq.heappop(ready)
        if path not in left:
            continue
        left.discard(path)
        order.append(path)
        for later in after[path]:
            before_count[later] -= 1
            if before_count[later] == 0 and later in left:
                heapq.heappush(ready, (key(later), later))
    return order


def fleet_records(path: Path) -> Iterator[tuple[str, str, int, dict[str, Any], bytes]]:
    for rec, body in json_records(path):
        chain, seq = get_path(rec, "edgeguard.chain_id"), get_path(rec, "event.sequence")
        host = get_path(rec, "host.name")
        if not isinstance(chain, str) or not isinstance(seq, int) or isinstance(seq, bool):
            continue
        yield str(host or "?"), chain, seq, rec, body
