"""The table built from policy, and a real ``nft -j list ruleset`` read back.

``data/nft_ruleset.json`` was listed from a gateway namespace after the tests' pipeline
blocked, rate-limited and flow-dropped a few sources; it also holds a *foreign*
``table ip edgeguard`` whose set must never be mistaken for ours.
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from edgeguard.actions.nftables.config import EnforcementConfig
from edgeguard.actions.nftables.ruleset import (
    COMMENT_MAX,
    FAMILY,
    TABLE,
    Entry,
    Tag,
    parse_entries,
    parse_rule_counters,
    rebuild_commands,
    remove_commands,
)
from edgeguard.events import ActionKind

DATA = Path(__file__).parent / "data" / "nft_ruleset.json"


def listing() -> list[dict[str, Any]]:
    return list(json.loads(DATA.read_text())["nftables"])


def test_real_listing_parses_to_our_entries_only() -> None:
    entries = {(e.set, e.key): e for e in parse_entries(listing())}
    assert set(entries) == {
        ("blockmac", "02:00:5e:00:53:01"),
        ("block4", "192.0.2.7"), ("block4", "192.0.2.8"),
        ("block6", "2001:db8::7"),
        ("flow4", ("192.0.2.7", "192.0.2.200", "tcp", 51413, 6881)),
        ("flow6", ("2001:db8::7", "2001:db8:1::1", "udp", 51413, 6881)),
        ("pair4", ("192.0.2.8", "192.0.2.9", "tcp")),
        ("pair4", ("192.0.2.8", "192.0.2.10", "tcp")),
        ("limitmac", "02:00:5e:00:53:02"),
        ("limit4", "192.0.2.7"), ("limit4", "192.0.2.66"), ("limit4", "192.0.2.8"),
        ("limit6", "2001:db8::7"),
    }  # the foreign `table ip edgeguard` element 192.0.2.1 is not among them
    block = entries[("block4", "192.0.2.7")]
    assert block.tag == Tag("scan-rule", "scan/syn", "scan:192.0.2.7:0")
    assert block.action is ActionKind.BLOCK
    assert block.timeout == 3600
    assert 0 < block.expires <= 3600
    flow = entries[("flow6", ("2001:db8::7", "2001:db8:1::1", "udp", 51413, 6881))]
    assert flow.describe() == "udp [2001:db8::7]:51413 <-> [2001:db8:1::1]:6881"
    assert flow.addresses == ("2001:db8::7", "2001:db8:1::1")
    pair = entries[("pair4", ("192.0.2.8", "192.0.2.10", "tcp"))]
    assert pair.describe() == "tcp 192.0.2.8 <-> 192.0.2.10"
    assert pair.tag.finding_id == "bittorrent:192.0.2.8:handshake"


def test_real_listing_rule_counters() -> None:
    counters = parse_rule_counters(listing())
    assert set(counters) == {"block-mac", "limit-mac", "block4", "block6", "flow4",
                             "flow4-reply", "flow6", "flow6-reply", "pair4", "pair4-reply",
                             "pair6", "pair6-reply", "limit4", "limit6", "block4-to",
                             "block6-to"}
    assert all(v >= 0 for v in counters.values())


def test_tag_round_trip_and_cap() -> None:
    tag = Tag("port-scan", "scan/syn", "scan:10.0.0.7|with|bars")
    assert Tag.parse(tag.comment()) == tag
    long = Tag("r", "k/s", "é" * 200)
    assert len(long.comment().encode()) <= COMMENT_MAX
    assert Tag.parse(None) == Tag("", "", "")
    assert Tag.parse("free text") == Tag("", "", "free text")


def _objects(cmds: list[Any]) -> list[dict[str, Any]]:
    out = []
    for cmd in cmds:
        ((_, body),) = cmd.items()
        ((_, obj),) = body.items()
        out.append(obj)
    return out


def test_rebuild_is_one_document_that_only_names_our_table() -> None:
    carried = [Entry("block4", "192.0.2.9", 60, 42, Tag("r", "scan/syn", "id"))]
    cmds = rebuild_commands(EnforcementConfig(set_size=128),
                            [ipaddress.ip_network("10.0.0.0/24"),
                             ipaddress.ip_network("10.0.0.0/25"),
                             ipaddress.ip_network("2001:db8::/64")], carried)
    assert [next(iter(c)) for c in cmds[:3]] == ["add", "delete", "add"]  # replace, atomically
    for obj in _objects(cmds):
        assert obj["family"] == FAMILY
        assert obj.get("table", obj.get("name")) == TABLE or obj.get("table") == TABLE
    sets = {o["name"]: o for o in _objects(cmds) if "type" in o and "hook" not in o}
    assert all(s["size"] == 128 for n, s in sets.items() if not n.startswith("allow"))
    allow4 = [o for o in _objects(cmds) if o.get("name") == "allow4" and "elem" in o]
    assert allow4[0]["elem"] == [{"prefix": {"addr": "10.0.0.0", "len": 24}}]  # collapsed
    (carried_cmd,) = [o for o in _objects(cmds) if o.get("name") == "block4" and "elem" in o]
    assert carried_cmd["elem"][0]["elem"]["timeout"] == 42  # the time it had left
    json.dumps({"nftables": cmds})  # serialisable as is


def test_remove_only_names_our_table() -> None:
    for obj in _objects(remove_commands()):
        assert (obj["family"], obj["name"]) == (FAMILY, TABLE)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["set", "rule", "elem", "val", "name", "table", "family", "comment",
                         "concat", "expr", "counter", "timeout", "expires", "packets"]),
        inner, max_size=5),
    max_leaves=30)
_elems = st.lists(st.fixed_dictionaries({"elem": st.dictionaries(
    st.sampled_from(["val", "timeout", "expires", "comment"]), _json, max_size=4)}), max_size=4)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from(["set", "rule", "table"]),
                                st.fixed_dictionaries({"elem": _elems, "expr": _json}),
                                max_size=2), max_size=5))
def test_parsers_never_raise_on_malformed_listings(items: list[dict[str, Any]]) -> None:
    for i, item in enumerate(items):
        for key in ("set", "rule"):
            body = item.get(key)
            if isinstance(body, dict):  # aim at our sets, so element parsing is reached
                body.update({"family": FAMILY, "table": TABLE,
                             "name": ("block4", "flow6", "blockmac")[i % 3]})
    try:
        parse_entries(items)
        parse_rule_counters(items)
    except (TypeError, ValueError, AttributeError, KeyError) as exc:  # pragma: no cover
        raise AssertionError(f"parser raised {exc!r}") from exc
