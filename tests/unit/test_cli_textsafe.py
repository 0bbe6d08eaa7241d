"""Hostile strings reach the terminal escaped; --json stays exact; hostile files give a
clear error, not a traceback (issue 16 §4)."""

from __future__ import annotations

import io
import math
import struct
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeguard.cli._common import print_table
from edgeguard.ecs import MAX_EPOCH, iso_timestamp, timestamp_in_range
from edgeguard.textsafe import CONTROL_CHARACTERS, EscapingWriter, escape
from tests.conftest import ROOT, run_edgeguard
from tests.unit.wifi.dot11_build import mgmt, pcap, radiotap, recorded

DATA = ROOT / "tests" / "data"
#: Clears the screen, sets the window title (OSC ... BEL), returns to the line start.
HOSTILE_SSID = b"\x1b[2J\x1b]0;X\x07\r"


def test_escape_shows_every_control_and_keeps_text() -> None:
    assert escape("caf\u00e9 \t tab\nline") == "caf\u00e9 \t tab\nline"
    assert escape("\x1b[2J\x1b]0;t\x07\r\x7f\x9b\u202e\u2066") == (
        "\\u001b[2J\\u001b]0;t\\u0007\\u000d\\u007f\\u009b\\u202e\\u2066")
    assert all(chr(c) not in escape("".join(map(chr, CONTROL_CHARACTERS)))
               for c in CONTROL_CHARACTERS)


@given(st.text())
@settings(max_examples=300, deadline=None)
def test_escape_is_printable_idempotent_and_json_exact(text: str) -> None:
    shown = escape(text)
    assert not any(ord(ch) in CONTROL_CHARACTERS for ch in shown)
    assert escape(shown) == shown
    # \uXXXX is a JSON escape of the same character: JSON text passed through the
    # escaping stream still decodes to exactly the same value
    assert orjson.loads(escape(orjson.dumps(text).decode())) == text


def test_the_escaping_stream_and_tables(capsys: pytest.CaptureFixture[str]) -> None:
    raw = io.BytesIO()
    stream = EscapingWriter(raw, encoding="utf-8", write_through=True)
    assert stream.write("a\x1bb\n") == 4
    assert raw.getvalue() == b"a\\u001bb\n"
    stream.detach()
    print_table([{"model": "\x1b[2Jfake row\r", "serial": "S1"}], ["model", "serial"])
    out = capsys.readouterr().out.splitlines()
    assert "\x1b" not in "".join(out)
    assert out[1].index("S1") == out[0].index("SERIAL")  # columns still line up


def _hostile_capture(tmp_path: Path) -> Path:
    item = next(r for r in recorded() if r.name == "wpa2-psk.beacon")
    assert item.ies[0] == 0  # the SSID element comes first: replace it
    ies = bytes([0, len(HOSTILE_SSID)]) + HOSTILE_SSID + item.ies[2 + item.ies[1]:]
    frame = radiotap(2437) + mgmt(8, item.label["bssid"], item.label["capability"], ies)
    path = tmp_path / "hostile.pcap"
    path.write_bytes(pcap([frame]))
    return path


def test_wifi_classify_shows_a_hostile_ssid_escaped(tmp_path: Path) -> None:
    path = _hostile_capture(tmp_path)
    table = run_edgeguard(["wifi", "classify", str(path)])
    assert table.returncode in (0, 1), table.stderr
    assert "\x1b" not in table.stdout
    assert "\x07" not in table.stdout
    assert "\r" not in table.stdout
    # shown escaped, whole (31 characters fit the 32-wide column)
    assert "\\u001b[2J\\u001b]0;X\\u0007\\u000d" in table.stdout
    assert len(table.stdout.splitlines()) >= 2  # the header and the row, no faked lines
    as_json = run_edgeguard(["wifi", "classify", "--json", str(path)])
    (row,) = [orjson.loads(x) for x in as_json.stdout.splitlines()]
    assert row["edgeguard"]["wifi"]["ssid"] == HOSTILE_SSID.decode()  # exact


def test_a_hostile_file_name_in_an_error_is_escaped(tmp_path: Path) -> None:
    missing = tmp_path / "\x1b]0;title\x07.pcap"
    done = run_edgeguard(["wifi", "classify", str(missing)])
    assert done.returncode == 2
    assert "\x1b" not in done.stderr
    assert "\x07" not in done.stderr
    assert "]0;title" in done.stderr


# -- far-future capture times -------------------------------------------------------------
def test_iso_timestamp_clamps_instead_of_raising() -> None:
    assert iso_timestamp(1e15) == "9999-12-31T23:59:59.000000Z"
    assert iso_timestamp(math.inf) == iso_timestamp(MAX_EPOCH)
    assert iso_timestamp(-1e300) == "0001-01-01T00:00:00.000000Z"
    assert iso_timestamp(math.nan) == "0001-01-01T00:00:00.000000Z"
    assert not timestamp_in_range(math.nan)
    assert timestamp_in_range(1_800_000_000.0)
    assert iso_timestamp(0.5) == "1970-01-01T00:00:00.500000Z"


def _future_pcapng(src: Path, dst: Path) -> None:
    """``src`` (pcap) as pcapng with if_tsresol 10^0 and times ~year 31 million."""
    data = src.read_bytes()
    order = "<" if data[:4] in (bytes.fromhex("d4c3b2a1"), bytes.fromhex("4d3cb2a1")) else ">"
    linktype = struct.unpack_from(order + "I", data, 20)[0]

    def block(kind: int, body: bytes) -> bytes:
        body += b"\0" * ((-len(body)) % 4)
        return struct.pack("<II", kind, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))

    out = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    tsresol = struct.pack("<HHB3x", 9, 1, 0) + struct.pack("<HH", 0, 0)
    out += block(1, struct.pack("<HHI", linktype, 0, 65535) + tsresol)
    off, i = 24, 0
    while off + 16 <= len(data):
        _sec, _frac, caplen, wire = struct.unpack_from(order + "IIII", data, off)
        frame = data[off + 16:off + 16 + caplen]
        off += 16 + caplen
        ticks = 10**15 + i
        i += 1
        out += block(6, struct.pack("<IIIII", 0, ticks >> 32, ticks & 0xFFFFFFFF, caplen, wire)
                     + frame)
    dst.write_bytes(out)


def test_replay_json_of_a_far_future_capture_clamps_and_counts(tmp_path: Path) -> None:
    src = DATA / "pcaps" / "filter_cases.pcap"
    path = tmp_path / "future.pcapng"
    _future_pcapng(src, path)
    done = run_edgeguard(["replay", "--json", "--counters", str(path)])
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 1, done.stderr  # findings, printed
    rows = [orjson.loads(x) for x in done.stdout.splitlines()]
    assert rows
    assert {r["@timestamp"] for r in rows} == {"9999-12-31T23:59:59.000000Z"}
    counters = dict(line.rsplit(" ", 1) for line in done.stderr.splitlines() if " " in line)
    assert int(counters["timestamps_clamped"]) == len(rows)
    assert "clamped" in done.stderr


# -- media replay of a recording that is not one -----------------------------------------
@pytest.mark.parametrize("content", ["{}", "[]", '{"bursts": 5}', '{"bursts": [5]}'])
def test_media_replay_of_a_non_recording_is_a_clear_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "rec.json"
    path.write_text(content)
    done = subprocess.run([sys.executable, "-m", "edgeguard", "media", "replay", str(path)],
                          capture_output=True, text=True, timeout=60, check=False,
                          env=None)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "expected {'bursts': [[uevent, ...], ...]}" in done.stderr
