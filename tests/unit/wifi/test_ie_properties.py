"""Property and fuzz tests for the IE parser and classifier.

The fuzz tests feed >= 100k inputs (random element lists, and mutations of every
annotated vector) and require that classification never raises and that anything the
parser rejects is classified "unknown".
"""

from __future__ import annotations

import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeguard.wifi.classify import classify
from edgeguard.wifi.config import WifiSecurity
from edgeguard.wifi.ie import MalformedElement, parse_elements
from edgeguard.wifi.suites import Suite

from .vectors import load_vectors

PROPS = settings(max_examples=400, deadline=None, database=None)

suites = st.builds(Suite, st.sampled_from([0x000FAC, 0x0050F2, 0x506F9A, 0x004096]),
                   st.integers(0, 255))


def suite_bytes(s: Suite) -> bytes:
    return s.oui.to_bytes(3, "big") + bytes([s.type])


def rsn_fields(group: Suite, pairwise: list[Suite], akms: list[Suite], caps: int,
               pmkids: list[bytes], mgmt: Suite) -> list[bytes]:
    """The RSN body field by field, as 9.4.2.24 lays it out."""
    return [
        struct.pack("<H", 1),
        suite_bytes(group),
        struct.pack("<H", len(pairwise)) + b"".join(map(suite_bytes, pairwise)),
        struct.pack("<H", len(akms)) + b"".join(map(suite_bytes, akms)),
        struct.pack("<H", caps),
        struct.pack("<H", len(pmkids)) + b"".join(pmkids),
        suite_bytes(mgmt),
    ]


rsn_parts = st.builds(
    rsn_fields, suites, st.lists(suites, min_size=1, max_size=4),
    st.lists(suites, min_size=1, max_size=4), st.integers(0, 0xFFFF),
    st.lists(st.binary(min_size=16, max_size=16), max_size=3), suites,
)


@PROPS
@given(rsn_parts)
def test_rsn_round_trip(parts: list[bytes]) -> None:
    body = b"".join(parts)
    rsn = parse_elements(bytes([48, len(body)]) + body).rsn
    assert rsn is not None
    assert suite_bytes(rsn.group) == parts[1]
    assert b"".join(map(suite_bytes, rsn.pairwise)) == parts[2][2:]
    assert b"".join(map(suite_bytes, rsn.akms)) == parts[3][2:]
    assert struct.pack("<H", rsn.capabilities) == parts[4]
    assert b"".join(rsn.pmkids) == parts[5][2:]
    assert rsn.group_mgmt is not None
    assert suite_bytes(rsn.group_mgmt) == parts[6]
    assert rsn.trailing == 0


@PROPS
@given(rsn_parts, st.integers(1, 7))
def test_rsn_may_stop_at_any_field_boundary(parts: list[bytes], keep: int) -> None:
    body = b"".join(parts[:keep])
    rsn = parse_elements(bytes([48, len(body)]) + body).rsn
    assert rsn is not None
    assert rsn.akms_defaulted == (keep < 4)


@PROPS
@given(rsn_parts, st.data())
def test_rsn_cut_inside_a_field_is_malformed(parts: list[bytes], data: st.DataObject) -> None:
    full = b"".join(parts)
    boundaries = {sum(len(p) for p in parts[:i]) for i in range(len(parts) + 1)}
    cut = data.draw(st.integers(1, len(full) - 1).filter(lambda n: n not in boundaries))
    body = full[:cut]
    try:
        parse_elements(bytes([48, len(body)]) + body)
    except MalformedElement:
        return
    raise AssertionError(f"cut at {cut} parsed")  # pragma: no cover


@PROPS
@given(st.lists(st.tuples(st.integers(1, 47), st.binary(max_size=20)), max_size=6),
       st.sampled_from(load_vectors()))
def test_unrelated_elements_do_not_change_the_class(extra: list[tuple[int, bytes]],
                                                    vec: object) -> None:
    padding = b"".join(bytes([eid, len(body)]) + body for eid, body in extra if eid != 0)
    base = classify(vec.ies, vec.privacy)  # type: ignore[attr-defined]
    if base.reason.startswith("malformed"):
        return
    assert classify(padding + vec.ies, vec.privacy).security is base.security  # type: ignore[attr-defined]


def _check(ies: bytes, privacy: bool) -> None:
    got = classify(ies, privacy)
    try:
        parse_elements(ies)
    except MalformedElement:
        assert got.security is WifiSecurity.UNKNOWN


VECTORS = [v.ies for v in load_vectors()]
#: Each example checks this many inputs: 12,500 examples x 8 = 100,000 fuzz inputs.
INPUTS_PER_EXAMPLE = 8
FUZZ = settings(max_examples=12_500, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))


@FUZZ
@given(st.binary(max_size=96), st.integers(0, len(VECTORS) - 1), st.integers(0, 255),
       st.booleans())
def test_fuzz(noise: bytes, index: int, where: int, privacy: bool) -> None:
    """Random bytes, and every vector spliced, cut and flipped by them: never an exception."""
    vec = VECTORS[index]
    other = VECTORS[(index + where) % len(VECTORS)]
    at = where % (len(vec) + 1)
    inputs = (
        noise,
        vec[:at] + noise + vec[at:],
        vec[:at],
        vec[:at] + noise[:1],
        vec + other,
        vec[:at] + other,
        noise + vec,
        bytes(b ^ noise[i % len(noise)] if noise and i == at else b for i, b in enumerate(vec)),
    )
    assert len(inputs) == INPUTS_PER_EXAMPLE
    for ies in inputs:
        _check(ies, privacy)
