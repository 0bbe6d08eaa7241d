"""Each way of tampering with the log makes ``edgeguard audit verify`` (a real subprocess)
fail and name the first bad sequence number and the reason."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from audit_helpers import LogFactory, find_line, lines_of, segments

from tests.conftest import run_edgeguard
from tests.support.schema import validate_lines


def target(log: Path) -> int:
    """A record in the middle of the second segment, with neighbours in the same file."""
    return _first_seq(segments(log)[1]) + 2


def edit_field(log: Path) -> None:
    path, i = find_line(log, target(log))
    lines = lines_of(path)
    rec = orjson.loads(lines[i])
    rec["message"] = "nothing to see"
    lines[i] = orjson.dumps(rec, option=orjson.OPT_SORT_KEYS) + b"\n"
    path.write_bytes(b"".join(lines))


def delete_line(log: Path) -> None:
    path, i = find_line(log, target(log))
    lines = lines_of(path)
    del lines[i]
    path.write_bytes(b"".join(lines))


def insert_forged(log: Path) -> None:
    """A made-up record claiming sequence 13, slipped in before the real one."""
    path, i = find_line(log, target(log))
    lines = lines_of(path)
    rec = orjson.loads(lines[i])
    rec["message"] = "nothing happened here"
    lines.insert(i, orjson.dumps(rec, option=orjson.OPT_SORT_KEYS) + b"\n")
    path.write_bytes(b"".join(lines))


def insert_copy(log: Path) -> None:
    path, i = find_line(log, target(log) - 1)
    lines = lines_of(path)
    lines.insert(i + 1, lines[i])
    path.write_bytes(b"".join(lines))


def swap_lines(log: Path) -> None:
    path, i = find_line(log, target(log))
    path2, j = find_line(log, target(log) + 1)
    assert path == path2
    lines = lines_of(path)
    lines[i], lines[j] = lines[j], lines[i]
    path.write_bytes(b"".join(lines))


def truncate_tail_mid_record(log: Path) -> None:
    active = segments(log)[-1]
    data = active.read_bytes()
    active.write_bytes(data[: len(data) - 20])


def remove_middle_segment(log: Path) -> None:
    segments(log)[2].unlink()


def remove_oldest_segment(log: Path) -> None:
    segments(log)[0].unlink()


def cut_rotated_segment_record(log: Path) -> None:
    """Whole last record of a rotated segment removed: the next header says it existed."""
    seg = segments(log)[2]
    lines = lines_of(seg)
    seg.write_bytes(b"".join(lines[:-1]))


def cut_rotated_segment_mid_record(log: Path) -> None:
    seg = segments(log)[2]
    data = seg.read_bytes()
    seg.write_bytes(data[: len(data) - 30])


def _first_seq(path: Path) -> int:
    return int(orjson.loads(lines_of(path)[0])["event"]["sequence"])


def _last_seq(path: Path) -> int:
    return int(orjson.loads(lines_of(path)[-1])["event"]["sequence"])


# (tamper, expected sequence (int or a function of the untampered log), reason)
CASES: list[tuple[Callable[[Path], None], int | Callable[[Path], int], str]] = [
    (edit_field, target, "edited"),
    (delete_line, target, "deleted"),
    (insert_forged, target, "inserted"),
    (insert_copy, lambda log: target(log) - 1, "inserted"),
    (swap_lines, target, "reordered"),
    (truncate_tail_mid_record, lambda log: _last_seq(segments(log)[-1]), "truncated"),
    (remove_middle_segment, lambda log: _first_seq(segments(log)[2]), "segment-missing"),
    (remove_oldest_segment, 1, "segment-missing"),
    (cut_rotated_segment_record, lambda log: _last_seq(segments(log)[2]), "truncated"),
    (cut_rotated_segment_mid_record, lambda log: _last_seq(segments(log)[2]), "truncated"),
]


@pytest.mark.parametrize(("tamper", "expected", "reason"), CASES,
                         ids=[c[0].__name__ for c in CASES])
def test_verify_names_first_bad_sequence(audit_log: LogFactory, tamper: Callable[[Path], None],
                                         expected: int | Callable[[Path], int],
                                         reason: str) -> None:
    log = audit_log(40, segment_size=2500)
    assert run_edgeguard(["audit", "verify", str(log)]).returncode == 0
    seq = expected(log) if callable(expected) else expected
    tamper(log)
    proc = run_edgeguard(["audit", "verify", str(log)])
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"first bad sequence {seq}: {reason}:" in proc.stdout, proc.stdout
    js = run_edgeguard(["audit", "verify", "--json", str(log)])
    doc = validate_lines(js.stdout)[0]
    assert (doc["event"]["sequence"], doc["event"]["reason"], doc["event"]["outcome"]) == \
        (seq, reason, "failure")


def test_intact_multi_segment_log_verifies(audit_log: LogFactory) -> None:
    log = audit_log(60)
    assert len(segments(log)) >= 5
    proc = run_edgeguard(["audit", "verify", str(log)])
    assert proc.returncode == 0, proc.stdout
    doc = validate_lines(run_edgeguard(["audit", "verify", "--json", str(log)]).stdout)[0]
    assert doc["event"]["outcome"] == "success"
    assert doc["edgeguard"]["audit"]["first_sequence"] == 1
    assert doc["edgeguard"]["audit"]["segments"] == len(segments(log))
    for path in segments(log):  # every record the writer makes follows the ECS schema
        validate_lines(path.read_bytes(), records=True)
    # files given one by one in any order verify the same
    shuffled = [str(p) for p in reversed(segments(log))]
    assert run_edgeguard(["audit", "verify", *shuffled]).returncode == 0


def test_a_single_rotated_segment_given_alone_is_a_partial_log(audit_log: LogFactory) -> None:
    log = audit_log(40)
    proc = run_edgeguard(["audit", "verify", str(segments(log)[2])])
    assert proc.returncode == 0
    assert "earlier segments were pruned or not given" in proc.stdout


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert run_edgeguard(["audit", "verify"]).returncode == 2
    assert run_edgeguard(["audit", "verify", str(tmp_path / "nope")]).returncode == 2
    assert run_edgeguard(["audit"]).returncode == 2
