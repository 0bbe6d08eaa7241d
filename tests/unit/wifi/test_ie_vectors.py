"""One test per annotated vector: the classifier reports what the vector file says."""

from __future__ import annotations

import pytest

from edgeguard.wifi.classify import classify
from edgeguard.wifi.config import WifiSecurity
from edgeguard.wifi.ie import MalformedElement, parse_elements

from .vectors import load_vectors

VECTORS = load_vectors()


@pytest.mark.parametrize("vec", VECTORS, ids=[v.name for v in VECTORS])
def test_vector(vec) -> None:
    got = classify(vec.ies, vec.privacy)
    for key, want in vec.expect.items():
        value = getattr(got, key)
        if key == "security":
            value = value.value
        elif isinstance(value, tuple):
            value = list(value)
        assert value == want, f"{vec.name}: {key} {value!r} != {want!r} ({got.reason})"


def test_every_class_has_a_vector() -> None:
    seen = {v.expect["security"] for v in VECTORS}
    assert seen == {s.value for s in WifiSecurity}


def test_malformed_vectors_raise_in_the_parser() -> None:
    """Vectors classified unknown for a malformed reason fail in parse_elements itself."""
    for vec in VECTORS:
        got = classify(vec.ies, vec.privacy)
        if got.reason.startswith("malformed"):
            with pytest.raises(MalformedElement):
                parse_elements(vec.ies)


def test_rsn_short_elements_take_defaults() -> None:
    elements = parse_elements(bytes.fromhex("30020100"))
    assert elements.rsn is not None
    assert elements.rsn.akms_defaulted
    assert str(elements.rsn.akms[0]) == "00-0F-AC:1"


def test_akm_numbers_past_nine_keep_their_number() -> None:
    """pyroute2 folds AKMs >= 10; the selector text must keep the real number."""
    body = bytes.fromhex("0100000fac04" "0100000fac04" "0300000fac0c000fac0d000fac18")
    elements = parse_elements(bytes([48, len(body)]) + body)
    assert elements.rsn is not None
    assert [str(s) for s in elements.rsn.akms] == ["00-0F-AC:12", "00-0F-AC:13", "00-0F-AC:24"]
