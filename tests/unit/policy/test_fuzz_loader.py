"""Fuzz the policy loader (issue 16 §4): YAML with aliases, anchors, tags, deep nesting,
and mutated valid policies. Whatever the input, the loader returns a policy or raises
:class:`PolicyError`; nothing else escapes, and each input stays within a time and a
memory bound.

``EDGEGUARD_FUZZ_EXAMPLES`` is the total number of inputs over the four tests below
(CI default 3,000). Time is bounded per input (CPU seconds); memory per input is
measured with tracemalloc on one input in MEMORY_SAMPLE (it costs 5x), and the whole
process's peak resident size is bounded at the end.
"""

from __future__ import annotations

import itertools
import os
import resource
import time
import tracemalloc
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeguard.policy.load import PolicyError, load_texts, shipped_policy

EXAMPLES = int(os.environ.get("EDGEGUARD_FUZZ_EXAMPLES", "3000"))
PER_TEST = max(1, EXAMPLES // 4)
#: Per input: CPU time (an input is at most a few kB) and Python heap at its peak.
SECONDS_PER_INPUT = 2.0
BYTES_PER_INPUT = 32 << 20
MEMORY_SAMPLE = 50
PEAK_RSS_KB = 512 << 10
_counter = itertools.count()

SETTINGS = settings(max_examples=PER_TEST, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck))

DATA = Path(__file__).resolve().parents[2] / "data" / "policies"
SEEDS = [p.read_text(errors="replace") for p in sorted((DATA / "good").glob("*.yaml"))] + [
    shipped_policy(name)[1].decode() for name in ("default", "gateway", "kiosk")]

#: Fragments that reach the loader's corners: anchors, aliases (also recursive),
#: merge keys, Python and unknown tags, flow and block nesting, odd scalars.
FRAGMENTS = [
    "&a ", "*a", "&b [*a, *a]", "<<: *a", "!!python/object:os.system", "!!python/name:x",
    "!!python/object/apply:os.system ['true']", "!!binary aGk=", "!!set {a}", "!!omap []",
    "!!str ", "!!int ", "!!float ", "!!bool ", "!!null ", "!custom ", "! ", "!<tag:x> ",
    "[" * 40, "]" * 40, "{" * 40, "}" * 40, "- " * 40, "\n" + "  " * 40 + "x: 1",
    "1" + "0" * 5000, "0x" + "f" * 300, "1e999", ".nan", "-.inf", "2026-13-45", "0o777",
    "'", '"', "\\", "\t", "\x00", "\x85", "\ufeff", "---", "...", "%YAML 1.1\n", "? ",
    ": ", ", ", "#", "|", ">", "~", "null", "yes", "on", "0951", "10.0.0.0/33", "1h",
    "64KiB", "-1", "99999999999999999999", "id: x", "kind: scan", "severity: severe",
]


def _load(data: bytes) -> None:
    """The loader's contract: a policy, or PolicyError naming where; nothing else."""
    try:
        load_texts([("fuzz.yaml", data)])
    except PolicyError as exc:
        issues = exc.issues
    else:
        return
    assert issues
    assert all(str(issue).startswith(("fuzz.yaml:", "<embedded")) for issue in issues)


def assert_bounded_load(text: str | bytes) -> None:
    data = text.encode(errors="surrogatepass") if isinstance(text, str) else text
    measure = next(_counter) % MEMORY_SAMPLE == 0
    if measure:
        tracemalloc.start()
    started = time.process_time()
    try:
        _load(data)
    finally:
        spent = time.process_time() - started
        peak = tracemalloc.get_traced_memory()[1] if measure else 0
        if measure:
            tracemalloc.stop()
    assert spent < SECONDS_PER_INPUT, (spent, data[:200])
    assert peak < BYTES_PER_INPUT, (peak, data[:200])


@st.composite
def mutated_policy(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(text)))
        how = draw(st.sampled_from(["insert", "delete", "duplicate", "replace"]))
        piece = draw(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=8)))
        end = min(len(text), at + draw(st.integers(0, 40)))
        if how == "insert":
            text = text[:at] + piece + text[at:]
        elif how == "delete":
            text = text[:at] + text[end:]
        elif how == "duplicate":
            text = text[:end] + text[at:end] + text[end:]
        else:
            text = text[:at] + piece + text[end:]
    return text


SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(),
                    st.text(max_size=20), st.sampled_from(FRAGMENTS))
TREES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4),
    st.dictionaries(st.one_of(st.sampled_from(
        ["mode", "media", "rules", "network", "wifi", "audit", "kiosk", "daemon", "id",
         "kind", "enabled", "trusted_devices", "severity_actions", "version"]),
        st.text(max_size=8)), inner, max_size=4)), max_leaves=30)


@st.composite
def tagged_tree(draw: st.DrawFn) -> str:
    """A generated policy-shaped tree, dumped, then given anchors, aliases and tags."""
    tree = draw(st.dictionaries(st.sampled_from(
        ["mode", "media", "rules", "network", "wifi", "audit", "kiosk", "daemon"]),
        TREES, min_size=1, max_size=4))
    text = yaml.safe_dump(tree, default_flow_style=draw(st.booleans()))
    lines = text.splitlines()
    for _ in range(draw(st.integers(0, 4))):
        index = draw(st.integers(0, max(0, len(lines) - 1)))
        tag = draw(st.sampled_from(["&a ", "*a", "!!python/object:os.system ", "!!map ",
                                    "!!seq ", "!!str ", "<<: *a", "&a [*a]"]))
        if lines:
            key, sep, rest = lines[index].partition(": ")
            lines[index] = f"{key}{sep}{tag}{rest}" if sep else f"{tag}{lines[index]}"
    return "\n".join(lines) + "\n"


@st.composite
def deep(draw: st.DrawFn) -> str:
    depth = draw(st.integers(1, 3000))
    style = draw(st.sampled_from(["flow-list", "flow-map", "block", "mixed"]))
    if style == "flow-list":
        body = "[" * depth + "]" * depth
    elif style == "flow-map":
        body = "{a: " * depth + "1" + "}" * depth
    elif style == "block":
        depth = min(depth, 300)
        body = "\n" + "".join("  " * (i + 1) + "k:\n" for i in range(depth))
    else:
        body = "[{a: " * (depth // 2) + "1" + "}]" * (depth // 2)
    cut = draw(st.integers(0, len(body)))
    return f"{draw(st.sampled_from(['media', 'rules', 'x']))}: " + body[:cut] + body[cut:]


@SETTINGS
@given(mutated_policy())
def test_mutated_valid_policies(text: str) -> None:
    assert_bounded_load(text)


@SETTINGS
@given(tagged_tree())
def test_generated_trees_with_anchors_aliases_and_tags(text: str) -> None:
    assert_bounded_load(text)


@SETTINGS
@given(deep())
def test_deep_nesting(text: str) -> None:
    assert_bounded_load(text)


@SETTINGS
@given(st.binary(max_size=512) | st.text(max_size=512).map(str.encode))
def test_arbitrary_bytes(data: bytes) -> None:
    assert_bounded_load(data)


@pytest.fixture(scope="module", autouse=True)
def peak_before() -> int:
    """The process's peak resident size (kB) before this module's first test: what the
    rest of the suite reached is not the loader's."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def test_process_stayed_small(peak_before: int) -> None:
    """After every input above: the peak resident size grew by less than PEAK_RSS_KB."""
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before < PEAK_RSS_KB
