"""Golden replay output: every capture's findings and counters, written down once.

The compiled (mypyc) and pure-Python builds of ``edgeguard.net`` and any rewrite of a
detector's bookkeeping must give these exactly (byte-identical JSON). Regenerate only
when a finding is meant to change::

    .venv/bin/python -m tests.unit.net.golden_findings --write

Fields another layer adds later (e.g. ECS extras the decision sets) are not part of the
record, so they do not invalidate it; counters are compared for the names recorded.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

from edgeguard.events import Endpoint, Finding
from edgeguard.net.linktype import UnsupportedLinkType
from edgeguard.net.replay import ReplayResult, replay_file
from edgeguard.policy.load import load_policy
from tests.unit.net.netdata import CORPUS, PCAPS

__all__ = ["GOLDEN", "captures", "record"]

GOLDEN = Path(__file__).resolve().parent / "golden"


def captures() -> list[Path]:
    """The repository's captures and the shared corpus (when present)."""
    found = sorted(PCAPS.glob("*.pcap"))
    if CORPUS.is_dir():
        found += sorted(CORPUS.glob("*.pcap"))
    return found


def _endpoint(e: Endpoint | None) -> dict[str, Any] | None:
    return None if e is None else {"ip": e.ip, "mac": e.mac, "port": e.port}


def _finding(f: Finding) -> dict[str, Any]:
    return {"kind": f.kind, "subtype": f.subtype, "identifier": f.identifier,
            "message": f.message, "severity": f.severity.value, "transport": f.transport,
            "source": _endpoint(f.source),
            "destinations": [_endpoint(d) for d in f.destinations],
            "first_seen": f.first_seen, "last_seen": f.last_seen, "count": f.count,
            "evidence": {"type": type(f.evidence).__name__,
                         **dataclasses.asdict(f.evidence)}}


def record(path: Path) -> dict[str, Any]:
    """What replaying ``path`` with the default policy gives, as plain JSON data."""
    network = load_policy().policy.network
    try:
        result = replay_file(path, network)
    except UnsupportedLinkType as exc:
        return {"error": type(exc).__name__}
    return _as_record(result)


def _as_record(result: ReplayResult) -> dict[str, Any]:
    return {"findings": [_finding(f) for f in result.findings],
            "counters": dict(sorted(result.counters.items()))}


def dumps(data: dict[str, Any]) -> str:
    return json.dumps(data, sort_keys=True, indent=1) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description="write the golden replay records")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    GOLDEN.mkdir(exist_ok=True)
    for path in captures():
        text = dumps(record(path))
        target = GOLDEN / f"{path.stem}.json"
        if args.write:
            target.write_text(text)
        same = target.exists() and target.read_text() == text
        print(f"{path.name}: {'same' if same else 'DIFFERS'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
