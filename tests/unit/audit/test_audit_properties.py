"""Hypothesis: any record content round-trips through the writer and verifies, and any
single-byte edit of any line is detected."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import orjson
from audit_helpers import lines_of, segments, write_log
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeguard.audit.chain import canonical
from edgeguard.audit.verify import verify_paths
from edgeguard.audit.writer import AuditWriter
from edgeguard.clock import FakeClock
from edgeguard.ecs import flatten
from edgeguard.events import AuditRecord, Endpoint

ints = st.integers(min_value=-(2**63), max_value=2**63)  # orjson: 64-bit integers
scalars = st.one_of(
    st.text(max_size=40),
    ints,
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
)
leaf = st.one_of(scalars, st.tuples(st.text(max_size=8), ints, st.booleans()),
                 st.lists(st.one_of(st.text(max_size=8), ints, st.floats(
                     allow_nan=False, allow_infinity=False)), max_size=4).map(tuple))
# Nested evidence: dotted names under distinct prefixes, so no name is both leaf and object.
names = st.lists(st.from_regex(r"[a-z_]{1,6}(\.[a-z_0-9]{1,6}){0,3}", fullmatch=True),
                 max_size=6, unique=True)


@st.composite
def evidence(draw: st.DrawFn) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for i, name in enumerate(draw(names)):
        out[f"labels.e{i}.{name}"] = draw(leaf)
    return out


records = st.builds(
    AuditRecord,
    action=st.text(min_size=1, max_size=20).filter(lambda a: not a.startswith("audit-")),
    message=st.text(max_size=200),
    source=st.one_of(st.none(), st.builds(Endpoint, ip=st.ip_addresses().map(str),
                                          port=st.integers(0, 65535))),
    fields=evidence())


def _expected(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(records, min_size=1, max_size=8))
def test_any_content_round_trips_and_verifies(batch: list[AuditRecord]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "log"
        writer = AuditWriter(log, clock=FakeClock(), host="h", segment_size=800)
        try:
            for record in batch:
                writer.write(record)
        finally:
            writer.close()
        assert writer.unrenderable == 0
        result = verify_paths([log])
        assert result.ok, result.problem
        written = [orjson.loads(line) for p in segments(log) for line in lines_of(p)]
        body = [r for r in written if not r["event"]["action"].startswith("audit-")]
        assert len(body) == len(batch)
        for record, rec in zip(batch, body, strict=True):
            flat = flatten(rec)
            assert flat["event.action"] == record.action
            assert flat["message"] == record.message
            for key, value in record.fields.items():
                assert flat[key] == _expected(value), key
        on_disk = b"".join(b"".join(lines_of(p)) for p in segments(log))
        for rec in written:  # what is on disk is exactly the canonical form the hash covers
            assert canonical(rec) + b"\n" in on_disk


_PRISTINE: dict[str, bytes] = {}


def _pristine_log() -> dict[str, bytes]:
    """One real multi-segment log, written once; each example edits a copy."""
    if not _PRISTINE:
        with tempfile.TemporaryDirectory() as tmp:
            log = write_log(Path(tmp) / "log", 12, segment_size=1200)
            _PRISTINE.update({p.name: p.read_bytes() for p in segments(log)})
    return _PRISTINE


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_single_byte_edit_is_detected(data: st.DataObject) -> None:
    pristine = _pristine_log()
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "log"
        log.mkdir()
        for name, content in pristine.items():
            (log / name).write_bytes(content)
        path = log / data.draw(st.sampled_from(sorted(pristine)))
        raw = bytearray(path.read_bytes())
        pos = data.draw(st.integers(0, len(raw) - 1))
        new = data.draw(st.integers(0, 255).filter(lambda b: b != raw[pos]))
        raw[pos] = new
        path.write_bytes(bytes(raw))
        result = verify_paths([log])
        assert not result.ok, (path.name, pos, chr(new))
