"""The ``--json`` contract: every reporting command, run on real inputs, prints one JSON
object per line that validates against docs/schema/edgeguard-ecs.schema.json, with the
offender of a network finding in ``source.*`` and its victims in ``destination.*``.

Real inputs: the labelled corpus captures and tests/data/pcaps for ``replay``; an audit
log written by AuditWriter (through ``replay --audit`` and the media engine) for ``audit
tail`` and ``audit verify``; recorded uevents through the media engine, served on a real
control socket, for ``media list``; a running daemon for ``status``. Commands that need
root (``media list`` on loop devices, ``net blocks`` against nft) are checked in
tests/linux (see CONTRACT_TESTS). The exit codes each command documents in its ``--help``
(docs/cli.md) are asserted beside the output.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from edgeguard.audit.writer import AuditWriter
from edgeguard.cli import build_parser
from edgeguard.cli._docs import walk
from edgeguard.clock import SystemClock
from edgeguard.media.allow import AllowStore
from edgeguard.media.engine import MediaEngine
from edgeguard.media.replay import SimulatedKernel, replay
from edgeguard.media.service import MediaComponent, load_catalogue
from edgeguard.media.source import load_recording
from edgeguard.policy.load import load_policy
from tests.conftest import ROOT, run_edgeguard
from tests.support.control import serve_control
from tests.support.daemon import Daemon
from tests.support.schema import validate_lines
from tests.unit.net.netdata import CORPUS, PCAPS

HAVE_CORPUS = (CORPUS / "labels.yaml").exists()
needs_corpus = pytest.mark.skipif(not HAVE_CORPUS, reason="no labelled corpus")
UEVENTS = ROOT / "tests" / "data" / "uevents"
MEDIA_POLICY = ROOT / "tests" / "data" / "media" / "policy.yaml"

#: Every command that takes --json -> the test files that run it on real input and
#: validate its lines. A new reporting command fails test_every_json_command_is_covered
#: until it is listed here with a contract test.
CONTRACT_TESTS: dict[tuple[str, ...], tuple[str, ...]] = {
    ("replay",): ("tests/unit/test_json_contract.py",),
    ("status",): ("tests/unit/test_json_contract.py",),
    ("audit", "tail"): ("tests/unit/test_json_contract.py",),
    ("audit", "verify"): ("tests/unit/test_json_contract.py",),
    ("media", "list"): ("tests/unit/test_json_contract.py",
                        "tests/linux/media/test_media_json_contract.py"),
    ("media", "replay"): ("tests/unit/test_json_contract.py",),
    ("net", "blocks"): ("tests/linux/nft/test_daemon_nft.py",),
    ("net", "unblock"): ("tests/linux/nft/test_daemon_nft.py",),
    ("net", "block"): ("tests/linux/nft/test_daemon_nft.py",),
    ("wifi", "classify"): ("tests/unit/wifi/test_classify_capture.py",),
    ("wifi", "status"): ("tests/unit/wifi/test_cli_wifi.py",
                         "tests/linux/wifi/test_daemon_killswitch.py"),
    ("install",): ("tests/unit/test_json_contract.py",),
    ("uninstall",): ("tests/unit/test_json_contract.py",),
    ("kiosk", "devices"): ("tests/unit/kiosk/test_kiosk_cli.py",
                           "tests/unit/kiosk/test_kiosk_daemon.py"),
}


def _json_commands() -> dict[tuple[str, ...], argparse.ArgumentParser]:
    return {path: parser for path, parser in walk(build_parser())
            if any("--json" in a.option_strings for a in parser._actions)}


def test_every_json_command_is_covered() -> None:
    commands = _json_commands()
    missing = sorted(set(commands) - set(CONTRACT_TESTS))
    assert not missing, f"--json commands without a contract test: {missing}"
    for path in commands:
        for name in CONTRACT_TESTS[path]:
            text = (ROOT / name).read_text()
            assert "validate_lines" in text, f"{name} never validates {path}"
            assert f'"{path[-1]}"' in text, f"{name} never runs {' '.join(path)}"


def test_every_json_command_documents_its_exit_codes() -> None:
    for path, parser in _json_commands().items():
        assert "Exit" in (parser.description or ""), f"edgeguard {' '.join(path)} --help"
    root = build_parser()
    assert "0 ok" in (root.epilog or "")
    assert "2 usage or input error" in (root.epilog or "")
    cli_md = (ROOT / "docs" / "cli.md").read_text()
    assert "Exit status: 0 ok; 1 findings present" in cli_md


# -- replay -------------------------------------------------------------------------------
def _labels() -> dict[str, Any]:
    labels: dict[str, Any] = yaml.safe_load((CORPUS / "labels.yaml").read_text())["files"]
    return labels


def _corpus_files() -> list[str]:
    if not HAVE_CORPUS:
        return []
    return sorted(name for name in _labels() if (CORPUS / name).exists())


def _is_mac(text: str) -> bool:
    return text.count(":") == 5 and "." not in text and len(text) == 17


@needs_corpus
@pytest.mark.parametrize("name", _corpus_files())
def test_replay_json_on_the_corpus_names_the_labelled_actors(name: str) -> None:
    label = _labels()[name]
    done = run_edgeguard(["replay", "--json", str(CORPUS / name)], timeout=300)
    rows = validate_lines(done.stdout)
    expected = label.get("expected") or []
    assert done.returncode == (1 if expected else 0), done.stderr
    assert bool(rows) == bool(expected)
    # actor of the label (an IP, or a MAC for a spoofer) -> its MAC
    actors: dict[tuple[str, str, str], str | None] = {}
    for e in expected:
        mac = e.get("actor_mac") or (e["actor"] if _is_mac(e["actor"]) else None)
        for who in filter(None, (e["actor"], e.get("actor_ip"))):
            actors[(e["kind"], e["subtype"], who)] = mac
    benign = set(label.get("benign_hosts") or ())
    seen = set()
    for row in rows:
        finding = row["edgeguard"]["finding"]
        src = row["source"]
        actor = src.get("ip") or src["mac"]
        key = (finding["kind"], finding["subtype"], actor)
        assert key in actors, f"{name}: unlabelled finding {key}"
        if actors[key] is not None:
            assert src["mac"] == actors[key], f"{name}: {key} source.mac"
        assert actor not in benign
        # the victims are destination.*, never the actor itself
        assert row["destination"].get("ip") != src.get("ip")
        assert row["event"]["kind"] == "alert"
        assert row["event"]["action"] == \
            f"{finding['kind']}-{finding['subtype']}"
        seen.add(key)
    # every labelled finding is reported under its actor (IP or MAC)
    for e in expected:
        names = {e["actor"], e.get("actor_ip")}
        assert any((e["kind"], e["subtype"], n) in seen for n in names), \
            f"{name}: {e['kind']}/{e['subtype']} by {e['actor']} missing"


@needs_corpus
def test_replay_json_nmap_scans_source_is_the_scanner_and_target_the_destination() -> None:
    label = _labels()["scans.pcap"]
    scanners = {e["actor"]: e for e in label["expected"]}
    done = run_edgeguard(["replay", "--json", str(CORPUS / "scans.pcap")], timeout=300)
    assert done.returncode == 1, done.stderr
    rows = validate_lines(done.stdout)
    assert {r["source"]["ip"] for r in rows} == set(scanners)
    for row in rows:
        e = scanners[row["source"]["ip"]]
        assert row["source"]["mac"] == e["actor_mac"]
        assert row["destination"]["ip"] in e["targets"]
        assert row["edgeguard"]["scan"]["type"] == e["subtype"]
        assert row["network"]["transport"] == ("udp" if e["subtype"] == "udp" else "tcp")


def test_replay_json_on_the_crafted_filter_cases() -> None:
    done = run_edgeguard(["replay", "--json", str(PCAPS / "filter_cases.pcap")])
    assert done.returncode == 1, done.stderr
    rows = validate_lines(done.stdout)
    assert rows
    for row in rows:
        assert row["event"]["kind"] == "alert"
        assert "ip" in row["source"]
        assert "mac" in row["source"]


def test_replay_exit_2_on_unreadable_input(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"\x00" * 64)
    assert run_edgeguard(["replay", "--json", str(junk)]).returncode == 2
    assert run_edgeguard(["replay", "--json", str(tmp_path / "absent.pcap")]).returncode == 2
    assert run_edgeguard(["replay", "--no-such-option", str(junk)]).returncode == 2


# -- audit tail / audit verify on a log AuditWriter wrote -----------------------------------
def _media_engine(audit: Any, state: Path) -> tuple[MediaEngine, SimulatedKernel]:
    policy = load_policy([MEDIA_POLICY]).policy
    catalogue, error = load_catalogue(policy.media)
    assert error is None
    kernel = SimulatedKernel()
    engine = MediaEngine(config=policy.media, mode=policy.media.mode or policy.mode,
                         catalogue=catalogue, allows=AllowStore(state / "allows.json",
                                                                SystemClock()),
                         block=kernel, audit=audit, clock=SystemClock())
    return engine, kernel


def _media_recordings() -> list[Path]:
    return [UEVENTS / "02-trust-luks-partition.json", UEVENTS / "03-trust-plaintext.json",
            UEVENTS / "01-non-trust-add-remove.json"]


@pytest.fixture
def audit_log(tmp_path: Path) -> Path:
    """A real audit log: network alerts from two corpus replays (two writers, one chain)
    and media verdicts from the media engine, in small segments so it rotates."""
    log = tmp_path / "audit"
    for name in ("evasive_dev.pcap", "floods_dev.pcap") if HAVE_CORPUS else ():
        done = run_edgeguard(["replay", str(CORPUS / name), "--audit", str(log)], timeout=300)
        assert done.returncode == 1, done.stderr
    if not HAVE_CORPUS:
        done = run_edgeguard(["replay", str(PCAPS / "filter_cases.pcap"), "--audit", str(log)])
        assert done.returncode == 1, done.stderr
    writer = AuditWriter(log, clock=SystemClock(), host="contract-test", segment_size=4096)
    try:
        engine, kernel = _media_engine(writer, tmp_path)
        for recording in _media_recordings():
            replay(engine, kernel, load_recording(recording))
    finally:
        writer.close()
    return log


def _segments(log: Path) -> list[Path]:
    older = sorted(log.glob("audit-*.jsonl"), key=lambda p: int(p.stem.split("-")[1]))
    return [*older, log / "audit.jsonl"]


def test_audit_tail_json_prints_the_records_as_written(audit_log: Path) -> None:
    on_disk = [line for seg in _segments(audit_log) for line in seg.read_bytes().splitlines()]
    assert len(_segments(audit_log)) > 2  # rotated: tail reads across segments
    done = run_edgeguard(["audit", "tail", "--json", "-n", str(len(on_disk)), str(audit_log)])
    assert done.returncode == 0, done.stderr
    records = validate_lines(done.stdout, records=True)
    assert done.stdout.encode().splitlines() == on_disk
    assert [r["event"]["sequence"] for r in records] == list(range(1, len(records) + 1))
    alerts = [r for r in records if r["event"]["kind"] == "alert"]
    assert alerts
    assert all("source" in r for r in alerts)
    media = [r for r in records if "volume" in r]
    assert {r["event"]["action"] for r in media} >= {"usb-write-allowed", "usb-read-only"}
    if HAVE_CORPUS:
        scanners = {e["actor"] for e in _labels()["evasive_dev.pcap"]["expected"]}
        scans = [r for r in alerts if r["edgeguard"]["finding"]["kind"] == "scan"]
        assert {r["source"]["ip"] for r in scans} == scanners
    last3 = run_edgeguard(["audit", "tail", "--json", "-n", "3", str(audit_log)])
    assert last3.stdout.encode().splitlines() == on_disk[-3:]


def test_audit_tail_exit_2_on_bad_input(tmp_path: Path) -> None:
    assert run_edgeguard(["audit", "tail", "--json", str(tmp_path / "none")]).returncode == 2
    (tmp_path / "log").mkdir()
    assert run_edgeguard(["audit", "tail", "-n", "-1", str(tmp_path / "log")]).returncode == 2


def test_audit_verify_json_intact_broken_and_unreadable(audit_log: Path) -> None:
    total = sum(len(seg.read_bytes().splitlines()) for seg in _segments(audit_log))
    done = run_edgeguard(["audit", "verify", "--json", str(audit_log)])
    assert done.returncode == 0, done.stdout
    (doc,) = validate_lines(done.stdout)
    assert doc["event"]["outcome"] == "success"
    assert doc["edgeguard"]["audit"]["records"] == total
    # edit one record in an older segment: exit 1 naming its sequence
    seg = _segments(audit_log)[1]
    lines = seg.read_bytes().splitlines()
    victim = orjson.loads(lines[1])
    lines[1] = lines[1].replace(b'"message":"', b'"message":"edited ', 1)
    seg.write_bytes(b"\n".join(lines) + b"\n")
    broken = run_edgeguard(["audit", "verify", "--json", str(audit_log)])
    assert broken.returncode == 1
    (doc,) = validate_lines(broken.stdout)
    assert doc["event"]["outcome"] == "failure"
    assert doc["event"]["sequence"] == victim["event"]["sequence"]
    assert run_edgeguard(["audit", "verify", "--json", str(audit_log / "nope")]).returncode == 2


def test_audit_verify_fleet_json_over_the_segments_as_received(audit_log: Path,
                                                               tmp_path: Path) -> None:
    """The same log as a collector would hold it (syslog prefix, one file): one valid row."""
    collector = tmp_path / "collector"
    collector.mkdir()
    with (collector / "received.log").open("wb") as fh:
        for seg in _segments(audit_log):
            for line in seg.read_bytes().splitlines():
                fh.write(b"<110>1 - contract-test edgeguard - - - " + line + b"\n")
    total = sum(len(seg.read_bytes().splitlines()) for seg in _segments(audit_log))
    done = run_edgeguard(["audit", "verify", "--fleet", str(collector), "--json"])
    assert done.returncode == 0, done.stdout
    (row,) = validate_lines(done.stdout)
    assert row["edgeguard"]["fleet"]["status"] == "verified"
    assert row["edgeguard"]["audit"]["records"] == total


# -- media list (recorded uevents through the engine, on a real control socket) -------------
@pytest.fixture
def media_socket(tmp_path: Path) -> Iterator[Path]:
    from edgeguard.audit.sink import MemorySink  # noqa: PLC0415

    engine, kernel = _media_engine(MemorySink(), tmp_path)
    # a trust stick: LUKS2 on loop0p2 (writable), plaintext on loop0p1 (read-only)
    replay(engine, kernel, load_recording(_media_recordings()[0]))
    component = MediaComponent(block=kernel)
    component.engine = engine
    sock = tmp_path / "control.sock"
    with serve_control(sock, {"media.list": component.cmd_list}):
        yield sock


def test_media_list_json(media_socket: Path) -> None:
    done = run_edgeguard(["media", "list", "--json", "--socket", str(media_socket)])
    assert done.returncode == 0, done.stderr
    rows = validate_lines(done.stdout)
    assert all(r["event"]["action"] == "usb-storage-state" for r in rows)
    nodes = {r["volume"]["device_name"]: r for r in rows}
    assert set(nodes) == {"/dev/loop0", "/dev/loop0p1", "/dev/loop0p2"}
    assert {r["volume"]["serial_number"] for r in rows} == {"EGM-TRUST-0042"}
    luks = nodes["/dev/loop0p2"]
    assert luks["volume"]["file_system_type"] == "crypto_LUKS"
    assert luks["volume"]["writable"] is True
    assert luks["edgeguard"]["media"]["verdict"] == "write-allowed"
    assert luks["edgeguard"]["media"]["trust"]["device_id"] == "IT-0042"
    assert nodes["/dev/loop0p1"]["volume"]["writable"] is False


def test_media_list_without_a_daemon_exits_3(tmp_path: Path) -> None:
    done = run_edgeguard(["media", "list", "--json", "--socket", str(tmp_path / "no.sock")])
    assert done.returncode == 3  # no daemon
    assert done.stdout == ""


def test_media_replay_json() -> None:
    done = run_edgeguard(["media", "replay", "--json", "--policy", str(MEDIA_POLICY),
                          str(UEVENTS / "02-trust-luks-partition.json")])
    assert done.returncode == 0, done.stderr
    rows = validate_lines(done.stdout)
    assert "usb-write-allowed" in {r["event"]["action"] for r in rows}
    assert run_edgeguard(["media", "replay", str(UEVENTS / "absent.json")]).returncode == 2


# -- status of a running daemon -----------------------------------------------------------
@pytest.fixture
def daemon() -> Iterator[Daemon]:
    # a short directory: the control socket path must fit sun_path
    with tempfile.TemporaryDirectory(prefix="eg-contract-") as tmp:
        policy = Path(tmp) / "policy.yaml"
        policy.write_text("media:\n  enabled: false\nmode: monitor\n")
        with Daemon.running(Path(tmp), policy) as d:
            yield d


def test_status_json_of_a_running_daemon(daemon: Daemon) -> None:
    done = run_edgeguard(["status", "--json", "--socket", str(daemon.sock)])
    assert done.returncode == 0, done.stderr
    (row,) = validate_lines(done.stdout)
    assert row["event"] == {"kind": "state", "category": ["host"], "type": ["info"],
                            "action": "daemon-status"}
    assert row["process"]["pid"] == daemon.proc.pid
    eg = row["edgeguard"]
    assert eg["mode"] == "monitor"
    records = daemon.records()
    assert eg["audit"]["chain_id"] == records[0]["edgeguard"]["chain_id"]  # type: ignore[index]
    assert eg["audit"]["sequence"] >= 1
    assert eg["policy"]["digest"] == daemon.status()["policy_digest"]
    text = run_edgeguard(["status", "--socket", str(daemon.sock)])
    assert text.returncode == 0
    assert f"pid {daemon.proc.pid}" in text.stdout


def test_status_without_a_daemon_exits_3(tmp_path: Path) -> None:
    done = run_edgeguard(["status", "--json", "--socket", str(tmp_path / "no.sock")])
    assert done.returncode == 3  # no daemon
    assert done.stdout == ""


# -- install / uninstall into a scratch root ----------------------------------------------
def test_install_and_uninstall_json(tmp_path: Path) -> None:
    done = run_edgeguard(["install", "--profile", "gateway", "--root", str(tmp_path),
                          "--exec", "/usr/bin/edgeguard", "--json"])
    assert done.returncode == 0, done.stderr
    rows = validate_lines(done.stdout)
    created = {r["file"]["path"] for r in rows if r["event"]["action"] == "install-created"}
    assert created
    assert all((tmp_path / p.lstrip("/")).exists() for p in created)
    done = run_edgeguard(["uninstall", "--root", str(tmp_path), "--json"])
    assert done.returncode == 0, done.stderr
    rows = validate_lines(done.stdout)
    assert {r["event"]["outcome"] for r in rows} == {"success"}
