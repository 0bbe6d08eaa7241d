"""``edgeguard report``: the numbers match the trail, in text and in one HTML page that a
real browser (Debian's chromium, headless) renders with its chart (issue 21)."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest
from ops_trail import HOSTILE_SERIAL, HOSTILE_SSID, Truth, school_week

from tests.conftest import run_edgeguard

Week = tuple[Path, Truth, float]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (ci/apt.d/report.txt installs it)")


def _chromium(*args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={profile}", *args],
            capture_output=True, text=True, timeout=120, check=False)


class _Dom(HTMLParser):
    """What the test reads back from the DOM chromium built."""

    def __init__(self) -> None:
        super().__init__()
        self.bars: list[dict[str, str | None]] = []
        self.by_id: dict[str, str] = {}
        self.urls: list[str] = []
        self.svgs = 0
        self.scripts = 0
        self._open_id: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "svg":
            self.svgs += 1
        if tag == "script":
            self.scripts += 1
        if tag == "rect" and a.get("class") == "bar":
            self.bars.append(a)
        self.urls += [v for k, v in attrs if k in ("src", "href") and v]
        self._open_id = a.get("id")

    def handle_endtag(self, tag: str) -> None:
        self._open_id = None

    def handle_data(self, data: str) -> None:
        if self._open_id is not None:
            self.by_id[self._open_id] = self.by_id.get(self._open_id, "") + data


def _report(week: Week, tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], Path]:
    directory, _, _ = week
    page = tmp_path / "report.html"
    done = run_edgeguard(["report", "--since", "7d", "--html", str(page), str(directory)])
    assert done.returncode == 0, done.stderr
    return done, page


def test_text_report_numbers_match_the_trail(week: Week, tmp_path: Path) -> None:
    _, truth, _ = week
    done, _ = _report(week, tmp_path)
    text = done.stdout
    assert f"{truth.records} records, {truth.findings} findings" in text
    for day, counts in truth.per_day.items():
        row = next(x for x in text.splitlines() if x.strip().startswith(day))
        assert int(row.split()[1]) == sum(counts.values())
        for kind, n in counts.items():
            assert f"{kind} {n}" in row
    top, n = truth.offenders.most_common(1)[0]
    assert re.search(rf"^\s+{re.escape(top)}\s+{n} findings$", text, re.M)
    assert f"Blocks made: {truth.blocks}, {truth.blocks_failed} failed; " \
           f"{truth.would_block} findings in monitor mode would have blocked" in text
    wifi = sum(truth.wifi.values())
    assert f"Wi-Fi refusals: {wifi} (public {truth.wifi['public']}, unlisted 1)" in text
    assert "Kingston DataTraveler SN123" in text
    assert f"read-only x{truth.media['Kingston DataTraveler SN123']['read-only']}" in text
    assert "Audit health: chain verified;" in text
    assert "10.9.9.9" not in text  # before the window
    assert "\x1b" not in text
    assert HOSTILE_SSID not in text


def test_html_is_one_self_contained_escaped_page(week: Week, tmp_path: Path) -> None:
    _, page = _report(week, tmp_path)
    html = page.read_text()
    assert "http://" not in html.replace("http://evil.example", "")  # only the quoted serial
    assert "https://" not in html
    assert "<script" not in html
    assert "<img" not in html  # the hostile serial is text, not an element
    assert "&lt;img src=&quot;http://evil.example/x&quot;&gt;" in html
    assert "\x1b" not in html
    assert "default-src 'none'" in html


@needs_chromium
def test_html_renders_in_chromium_with_the_numbers_of_the_trail(week: Week,
                                                                tmp_path: Path) -> None:
    _, truth, _ = week
    _, page = _report(week, tmp_path)
    dumped = _chromium("--dump-dom", page.resolve().as_uri())
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    dom = _Dom()
    dom.feed(dumped.stdout)
    assert dom.svgs == 1
    assert dom.scripts == 0
    assert dom.urls == []  # nothing to fetch: no src, no href
    chart: dict[str, dict[str, int]] = {}
    for bar in dom.bars:
        assert bar["data-day"] is not None
        assert bar["data-kind"] is not None
        chart.setdefault(bar["data-day"], {})[bar["data-kind"]] = int(bar["data-count"] or 0)
    assert chart == {day: dict(c) for day, c in truth.per_day.items()}
    assert int(dom.by_id["total-findings"]) == truth.findings
    assert int(dom.by_id["total-records"]) == truth.records
    assert int(dom.by_id["blocks-made"]) == truth.blocks
    assert int(dom.by_id["would-block"]) == truth.would_block
    assert int(dom.by_id["wifi-refusals"]) == sum(truth.wifi.values())
    assert dom.by_id["audit-health"].startswith("chain verified;")
    assert HOSTILE_SERIAL not in dumped.stdout


@needs_chromium
def test_html_paints_in_chromium(week: Week, tmp_path: Path) -> None:
    """A screenshot of the page is far from a blank page's (the chart and tables paint)."""
    _, page = _report(week, tmp_path)
    blank = tmp_path / "blank.html"
    blank.write_text("<!DOCTYPE html><html><body></body></html>")
    shots = []
    for name, source in (("page", page), ("blank", blank)):
        png = tmp_path / f"{name}.png"
        done = _chromium("--window-size=1200,1400", f"--screenshot={png}",
                         source.resolve().as_uri())
        assert png.exists(), done.stderr[-2000:]
        shots.append(png.stat().st_size)
    assert shots[0] > 10 * shots[1]


def test_a_broken_chain_is_reported_and_exits_1(tmp_path: Path) -> None:
    import time  # noqa: PLC0415

    directory = tmp_path / "audit"
    school_week(directory, time.time())
    segment = sorted(directory.glob("audit-*.jsonl"))[0] if list(
        directory.glob("audit-*.jsonl")) else directory / "audit.jsonl"
    data = segment.read_bytes()
    assert b"probed 25 ports" in data
    segment.write_bytes(data.replace(b"probed 25 ports", b"probed 2 ports", 1))  # an edit
    page = tmp_path / "r.html"
    done = run_edgeguard(["report", "--html", str(page), str(directory)])
    assert done.returncode == 1
    assert "CHAIN BROKEN (first bad sequence" in done.stdout
    assert 'class="bad"' in page.read_text()


def test_bad_input_exits_2(tmp_path: Path) -> None:
    assert run_edgeguard(["report", str(tmp_path / "none")]).returncode == 2
    assert run_edgeguard(["report", "--since", "last tuesday", str(tmp_path)]).returncode == 2


def test_old_records_are_skipped_unparsed_but_bookkeeping_is_kept(week: Week) -> None:
    from edgeguard.report.records import read_trail  # noqa: PLC0415
    from edgeguard.report.summary import summarise  # noqa: PLC0415

    directory, truth, _ = week
    every = list(read_trail(directory))
    recent = list(read_trail(directory, truth.since))
    old = [r for r in every if r.timestamp is not None and r.timestamp < truth.since]
    assert any(not r.internal for r in old)  # the trail has ordinary records to skip
    assert [r for r in recent if r.timestamp is not None and r.timestamp < truth.since
            and not r.internal] == []
    assert [r.sequence for r in every if r.internal] == \
        [r.sequence for r in recent if r.internal]
    whole, window = summarise(directory), summarise(directory, truth.since)
    assert whole.health == window.health
    assert window.findings == truth.findings
