"""The scan detector's open-UDP peaks are running maxima: after every step they equal
what counting all of a source's contacts afresh gives (the O(n)-per-contact code they
replace), including when answers lower the maximum."""

from __future__ import annotations

import random
from collections import Counter

from edgeguard.net.config import ScanThresholds
from edgeguard.net.detect.scan_state import PENDING, SEEN, SourceState, Tally, Trw


def _recount(state: SourceState) -> tuple[int, int]:
    open_keys = [k for k, o in state.contacts.items() if k[2] == 17 and o == SEEN]
    return (max(Counter(k[0] for k in open_keys).values(), default=0),
            max(Counter(k[1] for k in open_keys).values(), default=0))


def test_tally_maximum_follows_adds_and_removes() -> None:
    tally: Tally[str] = Tally()
    for key in "aab":
        tally.add(key)
    assert tally.top == 2
    tally.remove("a")
    assert tally.top == 1
    tally.remove("a")
    tally.remove("b")
    assert tally.top == 0


def test_open_udp_peaks_equal_a_full_recount_at_every_step() -> None:
    rng = random.Random(23)
    trw = Trw.from_config(ScanThresholds())
    state = SourceState("10.0.0.1", "", 4, 0.0)
    keys: list[tuple[str, int, int]] = []
    for step in range(3000):
        if keys and rng.random() < 0.3:  # an answer settles a random known contact
            state.outcome(rng.choice(keys), rng.random() < 0.5, "udp", trw)
        else:
            key = (f"10.0.{rng.randrange(4)}.{rng.randrange(20)}", rng.randrange(40),
                   rng.choice((6, 17, 17)))
            if state.add_contact(key, rng.choice((SEEN, SEEN, PENDING)), cap=1000):
                keys.append(key)
        assert state.open_udp_peaks() == _recount(state), f"step {step}"
    assert state.udp_open > 10  # both regimes were exercised
    assert state.overflow > 0
