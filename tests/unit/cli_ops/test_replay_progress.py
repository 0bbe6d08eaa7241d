"""A long ``replay`` shows frames, bytes, rate and ETA on a terminal and nothing when
piped (issue 21)."""

from __future__ import annotations

import io
import os
import pty
import subprocess
from collections.abc import Iterator

import pytest

from edgeguard.progress import RECORD_OVERHEAD, FrameProgress
from tests.conftest import ROOT, edgeguard_argv, edgeguard_env
from tests.unit.net.netdata import CORPUS

LONG_PCAP = CORPUS / "floods_dev.pcap"  # ~40k frames, a few seconds on this hardware


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class _Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _frames(n: int, clock: _Clock, step: float) -> Iterator[tuple[float, int, bytes, int]]:
    for i in range(n):
        clock.t += step
        yield (float(i), 60, b"x" * 60, 1)


def test_the_line_has_frames_bytes_rate_and_eta() -> None:
    clock, out = _Clock(), _Terminal()
    total = 4096 * (60 + RECORD_OVERHEAD)
    progress = FrameProgress(total, out, clock=clock)
    seen = list(progress.watch(_frames(4096, clock, 0.001)))
    assert len(seen) == 4096  # frames pass through unchanged
    drawn = out.getvalue()
    assert "\r\x1b[2K2,048 frames" in drawn  # first shown after SHOW_AFTER (1 s)
    assert "(50%)" in drawn
    assert "frames/s" in drawn
    assert "ETA 0:02" in drawn  # half done after ~2 s
    assert drawn.endswith("\r\x1b[2K")  # erased at the end


def test_a_short_job_and_a_pipe_print_nothing() -> None:
    clock, out = _Clock(), _Terminal()
    list(FrameProgress(10**6, out, clock=clock).watch(_frames(4096, clock, 0.0001)))
    assert out.getvalue() == ""  # done within SHOW_AFTER
    piped = io.StringIO()
    frames = _frames(4096, clock, 0.01)
    assert FrameProgress(10**6, piped, clock=clock).watch(frames) is frames  # untouched
    assert piped.getvalue() == ""


def _replay(stderr_on_pty: bool) -> tuple[int, bytes, bytes]:
    master, slave = pty.openpty()
    # at once: the compiled build replays the file faster than the default second
    proc = subprocess.Popen(edgeguard_argv("replay", "--progress-after", "0", str(LONG_PCAP)),
                            stdout=subprocess.PIPE,
                            stderr=slave if stderr_on_pty else subprocess.PIPE,
                            env=edgeguard_env({"TERM": "xterm"}), cwd=ROOT)
    os.close(slave)
    tty = b""
    while stderr_on_pty:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        tty += chunk
    os.close(master)
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out, tty if stderr_on_pty else err


@pytest.mark.skipif(not LONG_PCAP.exists(), reason="no shared capture corpus")
def test_replay_progress_on_a_terminal_and_silence_in_a_pipe() -> None:
    code, out_tty, err_tty = _replay(stderr_on_pty=True)
    code_piped, out_piped, err_piped = _replay(stderr_on_pty=False)
    assert code == code_piped == 1  # findings, either way
    assert out_tty == out_piped  # progress never touches stdout
    assert b" frames  " in err_tty
    assert b"B/s" in err_tty
    assert b"ETA " in err_tty
    assert err_piped == b""
