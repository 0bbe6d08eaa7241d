"""Fixtures for the detector tests: the dev corpus decoded once per session."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import pytest
import yaml

from edgeguard.clock import FakeClock
from edgeguard.net.bpfjit import compile_program
from edgeguard.net.config import NetworkConfig
from edgeguard.net.decode import DecodeCounters, decode
from edgeguard.net.detect import DetectorChain
from edgeguard.net.filter import build_filter
from edgeguard.net.inspect import filter_spec
from edgeguard.net.packet import Packet
from edgeguard.net.pcapfile import read_capture
from edgeguard.policy.load import load_policy


def _find_corpus() -> Path:
    """``$EDGEGUARD_CORPUS``, else ``shared/corpus`` next to the checkout (or next to
    the worktrees directory holding it)."""
    if os.environ.get("EDGEGUARD_CORPUS"):
        return Path(os.environ["EDGEGUARD_CORPUS"])
    root = Path(__file__).resolve().parents[4]
    for base in (root.parent, root.parent.parent):
        if (base / "shared" / "corpus" / "labels.yaml").exists():
            return base / "shared" / "corpus"
    return root.parent / "shared" / "corpus"


CORPUS = _find_corpus()


@functools.cache
def corpus_packets(name: str) -> tuple[Packet, ...]:
    """Decode one corpus pcap once per test session with the real reader and decoder."""
    counters = DecodeCounters()
    out = []
    for frame in read_capture(CORPUS / name):
        pkt = decode(frame.data, frame.ts, frame.wire_len, counters)
        if pkt is not None:
            out.append(pkt)
    return tuple(out)


@functools.cache
def corpus_prefiltered(name: str) -> tuple[Packet, ...]:
    """What the live pipeline would see: the real cBPF capture filter run over the
    frames first."""
    keep = compile_program(build_filter(filter_spec(shipped_network())))
    counters = DecodeCounters()
    out = []
    for frame in read_capture(CORPUS / name):
        snap = keep(frame.data, frame.wire_len)
        if snap:
            pkt = decode(frame.data[:snap], frame.ts, frame.wire_len, counters)
            if pkt is not None:
                out.append(pkt)
    return tuple(out)


@functools.cache
def corpus_labels() -> dict[str, dict[str, object]]:
    path = CORPUS / "labels.yaml"
    if not path.exists():
        return {}
    data = yaml.safe_load(path.read_text())
    files: dict[str, dict[str, object]] = data["files"]
    return files


def shipped_network(profile: str | None = "gateway") -> NetworkConfig:
    """The network section exactly as rules/*.yaml ship it."""
    return load_policy((), profile).policy.network


@pytest.fixture
def chain() -> DetectorChain:
    return DetectorChain(shipped_network(), FakeClock())
