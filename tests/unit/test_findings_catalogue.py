"""Every (kind, subtype) the code can raise is registered in edgeguard/findings.py and
documented in docs/findings.md; nothing documented there is stale; the policy checker
refuses rules the catalogue does not know.

The catalogue is a leaf module; the producers' own constants (``KIND``/``SUBTYPES``) must
agree with it. Here
the code is read as well: every ``Finding(...)`` whose kind or subtype is spelled
literally, and every Wi-Fi refusal (``Assessment(False, "<subtype>", ...)``), must be in
the registry, and the corpus replays and the kiosk/radio enumerations must only produce
registered pairs.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from edgeguard.findings import (
    FINDING_TYPES,
    WIFI_REFUSALS,
    Area,
    area_of,
    catalogue_markdown,
    kinds,
)
from edgeguard.kiosk import guard as kiosk_usb
from edgeguard.kiosk import radio as kiosk_radio
from edgeguard.kiosk.config import RadioKind
from edgeguard.kiosk.rfkill import RadioType
from edgeguard.media import evidence as media
from edgeguard.net.detect import arp, bittorrent, flood, scan, sweep
from edgeguard.net.replay import PacketClock, ReplayResult, iter_findings
from edgeguard.policy.load import PolicyError, load_policy
from tests.conftest import ROOT
from tests.unit.net.netdata import CORPUS, PCAPS

PACKAGE = ROOT / "edgeguard"
DOC = ROOT / "docs" / "findings.md"
REGISTERED = {(f.kind, f.subtype) for f in FINDING_TYPES}


def _documented() -> dict[str, set[str]]:
    """kind -> subtypes named in the first cell of a table row of its ``## `kind` `` section."""
    out: dict[str, set[str]] = {}
    kind = None
    for line in DOC.read_text().splitlines():
        heading = re.match(r"^## `([a-z0-9-]+)`\s*$", line)
        if heading:
            kind = heading.group(1)
            out[kind] = set()
        elif line.startswith("## "):
            kind = None
        elif kind is not None and line.startswith("| `"):
            first = line.split("|")[1]
            out[kind] |= set(re.findall(r"`([a-z0-9-]+)`", first))
    return out


def test_registry_has_no_duplicates() -> None:
    assert len(REGISTERED) == len(FINDING_TYPES)


def test_every_registered_finding_is_documented() -> None:
    documented = _documented()
    missing = [(k, s) for k, s in sorted(REGISTERED) if s not in documented.get(k, set())]
    assert not missing, f"not in docs/findings.md: {missing}"


def test_nothing_documented_is_stale() -> None:
    documented = {(k, s) for k, subs in _documented().items() for s in subs}
    assert documented - REGISTERED == set()
    assert set(_documented()) == set(kinds())


def _module_strings(tree: ast.Module) -> dict[str, str]:
    """Module-level ``NAME = "literal"`` assignments."""
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) \
                and isinstance(node.value.value, str):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    out[target.id] = node.value.value
    return out


def _finding_calls() -> list[tuple[Path, int, str | None, str | None]]:
    """(file, line, kind, subtype) of every ``Finding(...)``; None where computed."""
    calls = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text())
        names = _module_strings(tree)
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id == "Finding"):
                continue
            args = {k.arg: k.value for k in node.keywords}
            resolved: list[str | None] = []
            for key in ("kind", "subtype"):
                value = args.get(key)
                if isinstance(value, ast.Constant) and isinstance(value.value, str):
                    resolved.append(value.value)
                elif isinstance(value, ast.Name) and value.id in names:
                    resolved.append(names[value.id])
                else:
                    resolved.append(None)
            calls.append((path, node.lineno, resolved[0], resolved[1]))
    return calls


def test_every_finding_in_the_code_uses_a_registered_kind_and_subtype() -> None:
    calls = _finding_calls()
    assert len(calls) >= 9  # every producer: 5 network detectors, wifi x2, media, kiosk x2
    for path, line, kind, subtype in calls:
        where = f"{path.relative_to(ROOT)}:{line}"
        assert kind is not None, f"{where}: kind must be a literal or a module constant"
        assert kind in kinds(), f"{where}: kind {kind!r} is not in edgeguard/findings.py"
        if subtype is not None:
            assert (kind, subtype) in REGISTERED, f"{where}: {kind}/{subtype} not registered"


def test_every_wifi_refusal_in_the_code_is_registered() -> None:
    refusals = set()
    for path in sorted((PACKAGE / "wifi").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                    and node.func.id == "Assessment" and len(node.args) >= 2 \
                    and isinstance(node.args[0], ast.Constant) and node.args[0].value is False \
                    and isinstance(node.args[1], ast.Constant):
                refusals.add(node.args[1].value)
    assert refusals, "the Wi-Fi verdict code no longer builds Assessment(False, ...)"
    assert refusals == set(WIFI_REFUSALS)


def test_every_radio_the_policy_can_keep_off_has_its_subtypes() -> None:
    kept_off = [RadioType.BLUETOOTH, *(RadioType[k.name] for k in RadioKind)]
    for radio in kept_off:
        name = radio.name.lower()  # what RfkillEvent.type_name gives the finding
        assert {("radio", f"{name}-radio"), ("radio", f"{name}-unblocked")} <= REGISTERED


#: captures of normal traffic that must give no finding (issue 19's false-alarm classes)
QUIET = {"benign.pcap", "close.pcap", "lone_probes.pcap", "oneway.pcap", "oneway_scan.pcap",
         "p2p.pcap", "success.pcap", "tls_odd_ports.pcap"}
#: a link type replay refuses (tested in tests/unit/net/test_replay_issue19.py)
UNREADABLE = {"link_user0.pcap"}


def _captures() -> list[Path]:
    return sorted(p for p in [*CORPUS.glob("*.pcap"), *PCAPS.glob("*.pcap")]
                  if p.name not in UNREADABLE)


@pytest.mark.parametrize("capture", _captures(), ids=lambda p: p.name)
def test_replayed_findings_are_registered(capture: Path) -> None:
    network = load_policy([]).policy.network  # the embedded default, as `edgeguard replay`
    seen = {(f.kind, f.subtype) for f in iter_findings(capture, network, PacketClock(),
                                                         ReplayResult())}
    assert bool(seen) == (capture.name not in QUIET)
    assert seen <= REGISTERED


@pytest.mark.parametrize(("kind", "subtypes", "area"), [
    (scan.KIND, scan.SUBTYPES, Area.NETWORK),
    (sweep.KIND, sweep.SUBTYPES, Area.NETWORK),
    (bittorrent.KIND, bittorrent.SUBTYPES, Area.NETWORK),
    (arp.KIND, arp.SUBTYPES, Area.NETWORK),
    (flood.KIND, flood.SUBTYPES, Area.NETWORK),
    (media.FINDING_KIND, media.SUBTYPES, Area.MEDIA),
    (kiosk_usb.FINDING_KIND, kiosk_usb.SUBTYPES, Area.KIOSK),
    (kiosk_radio.FINDING_KIND, kiosk_radio.SUBTYPES, Area.KIOSK),
], ids=lambda v: v if isinstance(v, str) else "")
def test_producers_agree_with_the_catalogue(kind: str, subtypes: tuple[str, ...],
                                            area: Area) -> None:
    assert area_of(kind) is area
    assert set(subtypes) <= set(kinds()[kind])


def test_findings_doc_carries_the_generated_catalogue() -> None:
    assert catalogue_markdown() in DOC.read_text(), "run scripts/regen-docs.sh"


def _check(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    with pytest.raises(PolicyError) as exc:
        load_policy([path], require_safe=False)
    return [str(issue).replace(str(path), "FILE") for issue in exc.value.issues]


def test_a_misspelt_kind_is_refused_with_a_suggestion(tmp_path: Path) -> None:
    issues = _check(tmp_path, "rules:\n  - id: p2p\n    kind: bitorrent\n")
    assert issues == ["FILE:3:11: rules[p2p].kind: unknown finding kind 'bitorrent' (did you "
                      "mean 'bittorrent'?) (docs/findings.md lists every kind)"]


def test_a_misspelt_subtype_is_refused(tmp_path: Path) -> None:
    issues = _check(tmp_path, "rules:\n  - id: nm\n    kind: scan\n    subtype: nmap-synn\n")
    assert len(issues) == 1
    assert issues[0].startswith("FILE:4:14: rules[nm].subtype: 'scan' has no subtype "
                                "'nmap-synn' (did you mean")


def test_an_action_the_area_cannot_carry_out_is_refused(tmp_path: Path) -> None:
    issues = _check(tmp_path, "rules:\n  - id: ro\n    kind: scan\n"
                              "    actions: [log, read-only]\n")
    assert issues == ["FILE:4:20: rules[ro].actions: no network component provides "
                      "'read-only' for 'scan' findings (it can: block, drop-flow, log, "
                      "rate-limit)"]


def test_edgeguard_check_exits_2_naming_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("rules:\n  - id: p2p\n    kind: bitorrent\n")
    proc = subprocess.run([sys.executable, "-m", "edgeguard", "check", str(path)],
                          capture_output=True, text=True, check=False, cwd=ROOT)
    assert proc.returncode == 2
    assert f"{path}:3:11: rules[p2p].kind" in proc.stdout + proc.stderr


def test_valid_rules_for_every_area_pass(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("rules:\n"
                    "  - {id: a, kind: usb, subtype: non-trust, actions: [read-only]}\n"
                    "  - {id: b, kind: wifi, subtype: public, actions: [disconnect]}\n"
                    "  - {id: c, kind: usb-device, actions: [deauthorize]}\n"
                    "  - {id: d, kind: flood, subtype: syn-flood, actions: [rate-limit]}\n")
    assert len(load_policy([path], require_safe=False).policy.rules) >= 4
