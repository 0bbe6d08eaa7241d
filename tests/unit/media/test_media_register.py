"""`edgeguard media register` / `exempt`: the drop-in and the udev line written from a
plugged device check, match that device, and refuse what cannot be written safely."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeguard.media.classify import match_trust
from edgeguard.media.register import (
    RegisterError,
    Registration,
    drop_in_name,
    exempt_rule,
    trust_entry_yaml,
)
from edgeguard.media.uevent import parse_uevent
from edgeguard.policy.load import load_policy

STICK = {
    "ACTION": "coldplug", "SUBSYSTEM": "block", "DEVTYPE": "disk", "DEVNAME": "/dev/sdb",
    "DEVPATH": "/devices/pci0000:00/0000:00:14.0/usb2/2-1/2-1:1.0/host6/target6:0:0/"
               "6:0:0:0/block/sdb",
    "ID_BUS": "usb", "ID_VENDOR_ID": "0951", "ID_MODEL_ID": "1666",
    "ID_SERIAL_SHORT": "E0D55EA57413F5B0", "ID_VENDOR": "Kingston",
    "ID_MODEL": "DataTraveler_3.0", "EDGEGUARD_SIZE": "31029460992",
    "ID_PATH": "pci-0000:00:14.0-usb-0:1:1.0-scsi-0:0:0:0",
    "ID_PART_TABLE_UUID": "5e4f1c2a-0d7b-4b8e-a1a3-2f9d7c1e6b40",
}


def test_registered_stick_is_trusted_by_the_checked_policy(tmp_path: Path) -> None:
    disk = parse_uevent(STICK).device
    text = trust_entry_yaml(disk, Registration("IT-0043", owner="J Bloggs, Maths"))
    drop_in = tmp_path / drop_in_name("IT-0043")
    drop_in.write_text(text)
    policy = load_policy([drop_in], require_safe=False).policy
    assert match_trust(disk, disk.size, policy.media.trusted_devices).device_id == "IT-0043"
    other = parse_uevent({**STICK, "ID_SERIAL_SHORT": "E0D55EA57413F5B1"}).device
    assert not match_trust(other, other.size, policy.media.trusted_devices).trusted
    assert "owner J Bloggs, Maths" in text


@pytest.mark.parametrize("change", [
    {"ID_SERIAL_SHORT": 'x"\n  - id: evil'},  # would inject YAML
    {"ID_SERIAL_SHORT": ""},  # no serial: anything of that model would match
])
def test_unsafe_or_missing_identity_is_refused(change: dict[str, str]) -> None:
    props = {k: v for k, v in {**STICK, **change}.items() if v}
    try:
        disk = parse_uevent(props).device
    except ValueError:
        return  # refused even earlier, by the uevent parser
    with pytest.raises(RegisterError):
        trust_entry_yaml(disk, Registration("IT-0043"))


def test_bad_register_id_is_refused() -> None:
    with pytest.raises(RegisterError):
        drop_in_name("../../etc/passwd")


def test_exempt_rule_keys_on_port_and_partition_table() -> None:
    disk = parse_uevent(STICK).device
    line = exempt_rule(disk, "kiosk boots from this USB SSD")
    assert f'ENV{{ID_PATH}}=="{STICK["ID_PATH"]}"' in line
    assert f'ENV{{ID_PART_TABLE_UUID}}=="{STICK["ID_PART_TABLE_UUID"]}"' in line
    assert f'ENV{{EDGEGUARD_MEDIA_EXEMPT_PORT}}="{STICK["ID_PATH"]}"' in line
    assert 'EDGEGUARD_MEDIA_EXEMPT}' not in line  # the legacy mark is ignored now
    assert "ID_SERIAL" not in line
    exempt = parse_uevent({**STICK, "EDGEGUARD_MEDIA_EXEMPT_PORT": STICK["ID_PATH"]}).device
    assert exempt.exempt
    no_port = parse_uevent({k: v for k, v in STICK.items() if k != "ID_PATH"}).device
    with pytest.raises(RegisterError):
        exempt_rule(no_port, "no port")


def _cli(monkeypatch: pytest.MonkeyPatch, *argv: str) -> int:
    from edgeguard.cli import main  # noqa: PLC0415
    from edgeguard.media import source  # noqa: PLC0415

    monkeypatch.setattr(source, "disk_properties", lambda devnode: dict(STICK))
    monkeypatch.setattr(source, "present_disks", lambda: [
        dict(STICK), {**STICK, "DEVNAME": "/dev/sdc", "DEVPATH": STICK["DEVPATH"][:-3] + "sdc",
                      "ID_SERIAL_SHORT": "0401396b5d4e"},
        {**STICK, "DEVNAME": "/dev/sda", "DEVPATH": "/devices/pci0000:00/0000:00:17.0/ata1/"
         "host0/target0:0:0/0:0:0:0/block/sda", "ID_BUS": "ata"}])  # internal: not listed
    return main(list(argv))


def test_register_writes_a_checked_drop_in_without_a_daemon(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    args = ("media", "register", "/dev/sdb1", "--id", "IT-0043", "--etc-dir", str(tmp_path),
            "--socket", str(tmp_path / "none.sock"))
    assert _cli(monkeypatch, *args) == 3  # written, but no daemon answered
    drop_in = tmp_path / "policy.d" / "50-media-IT-0043.yaml"
    policy = load_policy([drop_in], require_safe=False).policy
    assert [d.id for d in policy.media.trusted_devices] == ["IT-0043"]
    assert "no daemon reloaded" in capsys.readouterr().err
    # a policy that does not check with it: the new drop-in is removed again, exit 1
    (tmp_path / "policy.yaml").write_text("media:\n  nonsense: 1\n")
    drop_in.unlink()
    assert _cli(monkeypatch, *args) == 1
    assert not drop_in.exists()


def test_generate_registers_every_removable_disk_present(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    assert _cli(monkeypatch, "media", "generate", "--id-prefix", "KIOSK-") == 0
    out = tmp_path / "gen.yaml"
    out.write_text(capsys.readouterr().out)
    devices = load_policy([out], require_safe=False).policy.media.trusted_devices
    assert [(d.id, d.serial) for d in devices] == [("KIOSK-0001", "E0D55EA57413F5B0"),
                                                   ("KIOSK-0002", "0401396b5d4e")]


def _refusing_daemon(monkeypatch: pytest.MonkeyPatch, calls: list[str]) -> None:
    from edgeguard.daemon import control  # noqa: PLC0415

    def refuse(path: object, command: str, args: object, timeout: float = 10.0) -> None:
        calls.append(command)
        raise control.ControlError("reload refused", ("50-media-IT-0043.yaml:3: bad entry",))

    monkeypatch.setattr(control, "request", refuse)


@pytest.mark.parametrize("before", [None, b"# the earlier registration\n"])
def test_a_refused_reload_restores_the_drop_in_and_fails(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], before: bytes | None) -> None:
    """A daemon that refuses the policy is not "no daemon": the drop-in it refused would
    block every later reload, so it is put back as it was and the command fails."""
    drop_in = tmp_path / "policy.d" / "50-media-IT-0043.yaml"
    if before is not None:
        drop_in.parent.mkdir()
        drop_in.write_bytes(before)
    calls: list[str] = []
    _refusing_daemon(monkeypatch, calls)
    code = _cli(monkeypatch, "media", "register", "/dev/sdb", "--id", "IT-0043",
                "--etc-dir", str(tmp_path))
    assert (code, calls) == (1, ["reload"])
    err = capsys.readouterr().err
    assert "reload refused" in err
    assert "bad entry" in err
    if before is None:
        assert not drop_in.exists()
    else:
        assert drop_in.read_bytes() == before


def test_register_checks_the_policy_with_the_daemons_profile(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edgeguard.cli import media as cli_media  # noqa: PLC0415

    seen: list[str | None] = []
    real = cli_media.load_policy

    def spy(files: list[Path], profile: str | None = None) -> object:
        seen.append(profile)
        return real(files, profile)

    monkeypatch.setattr(cli_media, "load_policy", spy)
    assert _cli(monkeypatch, "media", "register", "/dev/sdb", "--id", "IT-0043", "--etc-dir",
                str(tmp_path), "--profile", "kiosk",
                "--socket", str(tmp_path / "none.sock")) == 3
    assert seen == ["kiosk"]
