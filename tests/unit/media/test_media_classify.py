"""The media policy as a pure function: trust match, encryption, verdicts."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml
from media_harness import media_policy

from edgeguard.media.catalogue import CatalogueError, HardwareCatalogue, shipped_catalogue_path
from edgeguard.media.classify import Verdict, encryption_of, evaluate, match_trust
from edgeguard.media.config import NonTrustMode
from edgeguard.media.uevent import BlockDevice

CATALOGUE = HardwareCatalogue.load(shipped_catalogue_path())
REGISTER = media_policy().media.trusted_devices


def disk(serial: str = "EGM-TRUST-0042", vid: str = "0951", pid: str = "1666",
         size: int | None = 64 * 2**20, **kw: object) -> BlockDevice:
    return BlockDevice(name="sdb", devtype="disk", parent=None, usb=True, vendor_id=vid,
                       product_id=pid, serial=serial, size=size, **kw)  # type: ignore[arg-type]


def part(n: int, fs: str | None, version: str | None = None, **kw: object) -> BlockDevice:
    base = disk(**kw)  # type: ignore[arg-type]
    return dataclasses.replace(base, name=f"sdb{n}", devtype="partition", parent="sdb",
                               fs_type=fs, fs_version=version, size=None)


@pytest.mark.parametrize(("fs", "version", "expected"), [
    ("crypto_LUKS", "1", "luks1"), ("crypto_LUKS", "2", "luks2"), ("crypto_LUKS", None, "luks"),
    ("BitLocker", "2", "bitlocker"), ("vfat", "FAT32", None), (None, None, None),
])
def test_encryption_of(fs: str | None, version: str | None, expected: str | None) -> None:
    assert encryption_of(part(1, fs, version)) == expected


def test_full_match_records_every_attribute() -> None:
    m = match_trust(disk(), 64 * 2**20, REGISTER)
    assert m.trusted
    assert m.device_id == "IT-0042"
    assert m.matched == ("vendor_id", "product_id", "serial")


@pytest.mark.parametrize(("dev", "mismatched"), [
    (disk(vid="0781", pid="5567"), ("vendor_id", "product_id")),
    (disk(pid="1667"), ("product_id",)),
])
def test_serial_match_alone_is_not_trusted(dev: BlockDevice, mismatched: tuple[str, ...]) -> None:
    m = match_trust(dev, dev.size, REGISTER)
    assert not m.trusted
    assert m.candidate == "IT-0042"
    assert m.mismatched == mismatched


@pytest.mark.parametrize("dev", [disk(serial="EGM-TRUST-0042X"), disk(serial=None)])  # type: ignore[arg-type]
def test_other_serial_is_not_trusted_and_names_no_candidate(dev: BlockDevice) -> None:
    """Same vid:pid as a registered stick is every stick of that model: no candidate."""
    m = match_trust(dev, dev.size, REGISTER)
    assert not m.trusted
    assert m.candidate is None


def test_registered_size_must_match() -> None:
    ok = match_trust(disk("EGM-SIZED-0070"), 64 * 2**20, REGISTER)
    assert ok.trusted
    assert "size" in ok.matched
    bad = match_trust(disk("EGM-SIZED-0070"), 128 * 2**20, REGISTER)
    assert not bad.trusted
    assert bad.mismatched == ("size",)


def test_non_trust_read_only_and_kiosk_blocked() -> None:
    config = media_policy().media
    nodes = evaluate(disk("NOPE"), [part(1, "vfat", serial="NOPE")], config, CATALOGUE, None)
    assert {a.verdict for a in nodes} == {Verdict.READ_ONLY}
    kiosk = dataclasses.replace(config, non_trust=NonTrustMode.BLOCKED)
    nodes = evaluate(disk("NOPE"), [part(1, "vfat", serial="NOPE")], kiosk, CATALOGUE, None)
    assert {a.verdict for a in nodes} == {Verdict.BLOCKED}
    assert not any(a.verdict.writable for a in nodes)


def test_trust_luks_whole_disk_is_writable() -> None:
    nodes = evaluate(disk(fs_type="crypto_LUKS", fs_version="2"), [], media_policy().media,
                     CATALOGUE, None)
    assert [(a.verdict, a.encryption) for a in nodes] == [(Verdict.WRITE_ALLOWED, "luks2")]


def test_trust_plaintext_is_not_encrypted_and_read_only() -> None:
    nodes = evaluate(disk("EGM-TRUST-0043", fs_type="vfat"), [], media_policy().media,
                     CATALOGUE, None)
    assert [a.verdict for a in nodes] == [Verdict.NOT_ENCRYPTED]
    assert not nodes[0].verdict.writable


def test_encryption_not_required_allows_plaintext() -> None:
    config = dataclasses.replace(media_policy().media, require_encryption=False)
    nodes = evaluate(disk("EGM-TRUST-0043", fs_type="vfat"), [], config, CATALOGUE, None)
    assert [a.verdict for a in nodes] == [Verdict.WRITE_ALLOWED]


def test_hardware_model_needs_registration_too() -> None:
    stranger = evaluate(disk("X", pid="1616"), [], media_policy().media, CATALOGUE, None)
    assert stranger[0].verdict is Verdict.READ_ONLY
    registered = evaluate(disk("EGM-HW-0050", pid="1616"), [], media_policy().media, CATALOGUE,
                          None)
    assert registered[0].verdict is Verdict.WRITE_ALLOWED
    assert registered[0].hardware_model is not None


def test_shipped_catalogue_entries_have_sources() -> None:
    assert len(CATALOGUE) >= 10
    model = CATALOGUE.lookup("2009", "5004")
    assert model is not None
    assert "datAshur" in model.model
    assert "usb.ids" in model.source


def test_shipped_catalogue_ids_are_in_usb_ids() -> None:
    """Each id must be a real usb.ids entry with the name we give as source."""
    usb_ids = Path("/usr/share/misc/usb.ids")
    if not usb_ids.exists():
        pytest.skip("usb.ids (Debian package usb.ids) not installed")
    text = usb_ids.read_text(encoding="utf-8", errors="replace")
    vendor = None
    known: dict[tuple[str, str], str] = {}
    for line in text.splitlines():
        if len(line) > 6 and line[:4].isalnum() and line[4:6] == "  " and not line.startswith("#"):
            vendor = line[:4].lower()
        elif vendor and line.startswith("\t") and not line.startswith("\t\t"):
            known[(vendor, line[1:5].lower())] = line[7:]
        elif line.startswith("C "):
            break
    data = yaml.safe_load(shipped_catalogue_path().read_text())
    for entry in data["models"]:
        vid, pid = entry["usb_id"].split(":")
        assert (vid, pid) in known, entry
        assert known[(vid, pid)] in entry["source"], entry


def test_catalogue_rejects_bad_entries(tmp_path: Path) -> None:
    bad = tmp_path / "cat.yaml"
    bad.write_text("models:\n  - usb_id: '09g1:0001'\n    vendor: x\n    model: y\n    source: z\n")
    with pytest.raises(CatalogueError, match="four hex digits"):
        HardwareCatalogue.load(bad)
    bad.write_text("models:\n  - usb_id: '0951:0001'\n    vendor: x\n    model: y\n")
    with pytest.raises(CatalogueError, match="source"):
        HardwareCatalogue.load(bad)
