"""The capture filter over the labelled corpus: every packet a detector needs passes,
the bulk of established traffic is dropped.

Which frames a detector needs comes from the corpus labels: each expected finding has a
tshark display filter (``evidence.filter``) selecting its evidence frames; tshark gives
their frame numbers and the filter (run as cBPF, the kernel's semantics) must keep them.
Two kinds of evidence deliberately include bulk, and for those only the part a detector
needs is required: uTP evidence includes full-sized ST_DATA datagrams (the filter keeps
the control packets and every uTP datagram up to ``small_udp`` bytes), and MSE/PE
("encrypted") evidence includes the whole encrypted transfer (the filter keeps each
connection's opening segments, the key exchange).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml

from edgeguard.net.bpfjit import compile_program
from edgeguard.net.decode import DecodeCounters, decode
from edgeguard.net.filter import FilterSpec, build_filter
from edgeguard.net.pcapfile import Frame, read_capture
from tests.unit.net.netdata import CORPUS

pytestmark = pytest.mark.skipif(not (CORPUS / "labels.yaml").exists(), reason="no corpus")

SPEC = FilterSpec()
KEEP = compile_program(build_filter(SPEC), rand=lambda: 1)  # sampling off: worst case
TSHARK = shutil.which("tshark")


def _labels() -> dict[str, dict[str, object]]:
    data = yaml.safe_load((CORPUS / "labels.yaml").read_text())
    files: dict[str, dict[str, object]] = data["files"]
    return files


def _cases() -> Iterator[tuple[str, int, dict[str, object]]]:
    if not (CORPUS / "labels.yaml").exists():
        return
    for name, entry in _labels().items():
        for index, finding in enumerate(entry.get("expected") or []):  # type: ignore[attr-defined]
            yield name, index, finding


CASES = list(_cases())


def _frames(name: str) -> list[Frame]:
    return list(read_capture(CORPUS / name))


_FRAMES: dict[str, list[Frame]] = {}


def frames(name: str) -> list[Frame]:
    if name not in _FRAMES:
        _FRAMES[name] = _frames(name)
    return _FRAMES[name]


def _tshark(name: str, display_filter: str) -> list[int]:
    assert TSHARK
    out = subprocess.run(
        [TSHARK, "-n", "-r", str(CORPUS / name), "--enable-heuristic", "bt_utp_udp",
         "-Y", display_filter, "-T", "fields", "-e", "frame.number"],
        capture_output=True, text=True, check=True, timeout=120)
    return [int(line) for line in out.stdout.split()]


@pytest.fixture(scope="module")
def evidence() -> dict[tuple[str, int], list[int]]:
    if TSHARK is None:
        pytest.skip("tshark not installed")
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {(name, i): pool.submit(_tshark, name, str(f["evidence"]["filter"]))  # type: ignore[index]
                   for name, i, f in CASES}
        return {key: fut.result() for key, fut in futures.items()}


def _needed_utp(frame: Frame) -> bool:
    pkt = decode(frame.data, frame.ts, frame.wire_len, DecodeCounters())
    assert pkt is not None
    return pkt.payload_len <= SPEC.small_udp or pkt.payload[:1] != b"\x01"


def _openings(name: str, numbers: list[int]) -> set[int]:
    """Frame numbers of the first payload segment per TCP connection and direction."""
    seen: set[tuple[str, int, str, int]] = set()
    out: set[int] = set()
    for number in numbers:
        frame = frames(name)[number - 1]
        pkt = decode(frame.data, frame.ts, frame.wire_len, DecodeCounters())
        assert pkt is not None
        key = (pkt.src_ip, pkt.sport, pkt.dst_ip, pkt.dport)
        if pkt.payload_len and key not in seen:
            seen.add(key)
            out.add(number)
    return out


@pytest.mark.parametrize(("name", "index", "finding"), CASES,
                         ids=[f"{n}-{i}-{f['subtype']}" for n, i, f in CASES])  # type: ignore[index]
def test_filter_keeps_every_needed_evidence_frame(
        evidence: dict[tuple[str, int], list[int]], name: str, index: int,
        finding: dict[str, object]) -> None:
    numbers = evidence[(name, index)]
    assert numbers, "the label's filter selects no frame"
    if finding["subtype"] == "utp":
        needed = {n for n in numbers if _needed_utp(frames(name)[n - 1])}
    elif finding["subtype"] == "encrypted":
        needed = _openings(name, numbers)
    else:
        needed = set(numbers)
    assert needed
    dropped = sorted(n for n in needed if not KEEP(frames(name)[n - 1].data,
                                                   frames(name)[n - 1].wire_len))
    assert dropped == [], f"{len(dropped)} of {len(needed)} needed frames dropped: {dropped[:10]}"


def test_filter_drops_the_bulk_of_benign_traffic() -> None:
    bulk = kept = total = 0
    for frame in frames("benign.pcap"):
        total += 1
        passed = bool(KEEP(frame.data, frame.wire_len))
        kept += passed
        pkt = decode(frame.data, frame.ts, frame.wire_len, DecodeCounters())
        # bulk: established TCP data segments of full size (not a response's first
        # segment), and pure ACKs with options
        if pkt is not None and pkt.proto == 6 and pkt.tcp_flags & 0x17 == 0x10 and (
                pkt.payload_len > SPEC.mse_max or pkt.payload_len == 0) and (
                not pkt.payload.startswith((b"HTTP/", b"d8:a"))):
            bulk += 1
            assert not passed, f"bulk segment passed: {pkt}"
    dropped = 1 - kept / total
    print(f"benign.pcap: {total} frames, {kept} kept, {dropped:.1%} dropped, {bulk} bulk")
    assert bulk > total / 2
    assert dropped >= 0.85


def test_filter_keeps_openings_of_every_tcp_connection_with_a_bt_or_http_start() -> None:
    """Stateless check over all files: a payload starting with a detector's signature
    passes wherever it sits in a flow."""
    signatures = (b"\x13BitTorrent protocol", b"GET /", b"HTTP/1.", b"d1:")
    for path in sorted(CORPUS.glob("*.pcap")):
        for frame in frames(path.name):
            pkt = decode(frame.data, frame.ts, frame.wire_len, DecodeCounters())
            if pkt is not None and pkt.payload.startswith(signatures):
                assert KEEP(frame.data, frame.wire_len), (path.name, pkt)
