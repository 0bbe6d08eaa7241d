"""``Nft`` runs a real subprocess: JSON in on stdin, kernel errors mapped to errno."""

from __future__ import annotations

import errno
import json
import sys
from pathlib import Path

import pytest

from edgeguard.actions.nftables.runner import Nft, NftError

FAKE = """\
import json, sys, time
doc = json.load(sys.stdin)
open({log!r}, "a").write(json.dumps(sys.argv[1:]) + "\\n" + json.dumps(doc) + "\\n")
cmd = doc["nftables"][0]
if "sleep" in cmd:
    time.sleep(5)
if "fail" in cmd:
    sys.stderr.write("internal:0:0-0: Error: Could not process rule: " + cmd["fail"] + "\\n")
    sys.exit(1)
if "list" in cmd:
    print(json.dumps({{"nftables": [{{"metainfo": {{}}}}, {{"set": {{"name": "block4"}}}}]}}))
if "garbage" in cmd:
    print("not json")
"""


@pytest.fixture
def nft(tmp_path: Path) -> tuple[Nft, Path]:
    log = tmp_path / "calls.log"
    script = tmp_path / "fake_nft.py"
    script.write_text(FAKE.format(log=str(log)))
    return Nft(prefix=[sys.executable, str(script)], nft="/usr/sbin/nft", timeout=2), log


def test_document_goes_to_stdin_with_json_flags(nft: tuple[Nft, Path]) -> None:
    runner, log = nft
    assert runner.run([{"add": {"table": {"family": "inet", "name": "edgeguard"}}}]) == []
    argv, doc = log.read_text().splitlines()
    assert json.loads(argv) == ["/usr/sbin/nft", "-j", "-f", "-"]
    assert json.loads(doc) == {"nftables": [{"add": {"table": {"family": "inet",
                                                                 "name": "edgeguard"}}}]}


def test_listing_is_returned(nft: tuple[Nft, Path]) -> None:
    runner, _ = nft
    assert runner.run([{"list": {}}]) == [{"metainfo": {}}, {"set": {"name": "block4"}}]


@pytest.mark.parametrize(("text", "number"), [
    ("File exists", errno.EEXIST), ("No such file or directory", errno.ENOENT),
    ("Too many open files in system", errno.ENFILE), ("Something new", None)])
def test_kernel_errors_map_to_errno(nft: tuple[Nft, Path], text: str, number: int | None) -> None:
    runner, _ = nft
    with pytest.raises(NftError) as info:
        runner.run([{"fail": text}])
    assert info.value.errno == number
    assert text in str(info.value)


def test_hung_or_missing_binary_and_bad_output_are_errors(nft: tuple[Nft, Path]) -> None:
    runner, _ = nft
    with pytest.raises(NftError, match="cannot run"):
        runner.run([{"sleep": 1}])
    with pytest.raises(NftError, match="invalid JSON"):
        runner.run([{"garbage": 1}])
    with pytest.raises(NftError, match="cannot run"):
        Nft(nft="/nonexistent/nft").run([{"list": {}}])
