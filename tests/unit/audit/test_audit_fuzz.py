"""Malformed logs are reported, never a crash: the verifier, the shipped-copy reader,
the tail renderer and the segment reader take arbitrary bytes and JSON."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import orjson
from audit_helpers import write_log
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeguard.audit.follow import SegmentTail, render_line
from edgeguard.audit.keys import ExportedKey
from edgeguard.audit.verify import verify_paths

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.text(max_size=10)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["event", "sequence", "hash", "action", "edgeguard", "audit",
                         "previous_sequence", "previous_hash", "chain_id", "checkpoint",
                         "head_sequence", "epoch", "mac", "@timestamp", "x"]), inner,
        max_size=5),
    max_leaves=12)

scalars = st.none() | st.booleans() | st.integers(-5, 50) | st.text(max_size=4) | st.floats(
    allow_nan=False, allow_infinity=False) | st.lists(st.integers(-5, 50), max_size=2)


@st.composite
def lookalikes(draw: st.DrawFn) -> bytes:
    """Records shaped like the writer's own (header, checkpoint, prune) with odd types."""
    action = draw(st.sampled_from(["audit-segment-start", "audit-checkpoint",
                                   "audit-segment-pruned", "scan-syn"]))
    rec = {"event": {"action": action, "sequence": draw(scalars), "hash": draw(scalars)},
           "edgeguard": {"chain_id": draw(scalars),
                         "audit": {"previous_sequence": draw(scalars),
                                   "previous_hash": draw(scalars),
                                   "previous_segment": draw(scalars),
                                   "unclean_tail_bytes": draw(scalars),
                                   "pruned_last_sequence": draw(scalars),
                                   "pruned_last_hash": draw(scalars)},
                         "checkpoint": {"head_sequence": draw(scalars),
                                        "head_hash": draw(scalars), "epoch": draw(scalars),
                                        "sealed": draw(scalars), "mac": draw(scalars),
                                        "key_id": draw(scalars)}},
           "@timestamp": draw(scalars)}
    return orjson.dumps(rec) + b"\n"


_BASE: dict[str, bytes] = {}


def _base() -> dict[str, bytes]:
    if not _BASE:
        with tempfile.TemporaryDirectory() as tmp:
            log = write_log(Path(tmp) / "log", 12, segment_size=1500)
            _BASE.update({p.name: p.read_bytes() for p in log.iterdir()})
    return _BASE


def _tamper(data: st.DataObject) -> tuple[Path, tempfile.TemporaryDirectory[str]]:
    tmp = tempfile.TemporaryDirectory()
    log = Path(tmp.name) / "log"
    log.mkdir()
    base = _base()
    for name, content in base.items():
        (log / name).write_bytes(content)
    name = data.draw(st.sampled_from(sorted(base)))
    lines = base[name].splitlines(keepends=True)
    index = data.draw(st.integers(0, len(lines)))
    junk: Any = data.draw(st.one_of(json_values.map(lambda v: orjson.dumps(v) + b"\n"),
                                    st.binary(max_size=80), lookalikes()))
    lines[index:index + 1] = [junk]
    (log / name).write_bytes(b"".join(lines))
    return log, tmp


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_verify_reports_any_garbage_without_crashing(data: st.DataObject) -> None:
    log, tmp = _tamper(data)
    with tmp:
        key = ExportedKey("0123456789abcdef", b"k" * 32)
        for result in (verify_paths([log], against=[log / "audit.jsonl"]),
                       verify_paths(sorted(log.iterdir()), key=key)):
            assert result.problem is None or result.problem.reason
        tail = SegmentTail(log, 0)
        tail.poll(10_000)
        tail.close()


@settings(max_examples=200, deadline=None)
@given(st.one_of(json_values.map(orjson.dumps), st.binary(max_size=200)))
def test_render_line_takes_anything(line: bytes) -> None:
    assert isinstance(render_line(line), str)
