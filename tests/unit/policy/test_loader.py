"""Layering, typed values and the shipped profiles."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from edgeguard.events import ActionKind, Mode, Severity
from edgeguard.media.config import NonTrustMode
from edgeguard.policy.load import PROFILES, PolicyError, default_layers, load_policy
from edgeguard.wifi.config import WifiSecurity

DATA = Path(__file__).resolve().parents[2] / "data" / "policies"


def test_embedded_default_is_safe() -> None:
    policy = load_policy().policy
    assert policy.mode is Mode.MONITOR
    assert policy.media.enabled
    assert policy.media.non_trust is NonTrustMode.READ_ONLY
    assert policy.media.require_encryption
    assert policy.audit.file_mode == 0o640
    assert policy.audit.fsync_interval <= 0.25


@pytest.mark.parametrize("profile", PROFILES)
def test_shipped_profiles_load(profile: str) -> None:
    loaded = load_policy(profile=profile)
    assert loaded.sources[0] == "<embedded default.yaml>"
    if profile != "default":
        assert loaded.sources[1] == f"<embedded {profile}.yaml>"
    # a gateway starts watching only (issue 20: enforce is the admin's explicit step);
    # a kiosk profile is chosen to lock the machine down
    expected = Mode.ENFORCE if profile == "kiosk" else Mode.MONITOR
    assert loaded.policy.mode is expected


def test_values_are_typed() -> None:
    policy = load_policy([DATA / "good" / "trust-gateway.yaml"]).policy
    dev = policy.media.trusted_devices[1]
    assert (dev.vendor_id, dev.product_id) == ("0781", "5583")  # 0x0781 and 5583 kept as hex text
    assert policy.media.trusted_devices[0].size == 32_000_000_000
    assert policy.network.allowlist[1] == ipaddress.ip_network("fd00:20::/64")
    assert policy.network.block_duration == 7200
    assert policy.audit.fsync_interval == pytest.approx(0.1)
    assert policy.audit.segment_size == 32 * 1024**2
    assert policy.rules[0].actions == (ActionKind.LOG, ActionKind.DROP_FLOW)
    assert policy.rules[0].suppress_for == 900
    assert policy.severity_actions.for_severity(Severity.SEVERE) == (ActionKind.LOG,
                                                                      ActionKind.BLOCK)


def test_text_fields_keep_what_was_written() -> None:
    wifi = load_policy([DATA / "good" / "kiosk-wifi.yaml"]).policy.wifi
    assert wifi.approved_networks[1].ssid == "on"  # YAML 1.1 would make this True
    assert wifi.approved_networks[0].bssids == ("02:00:5e:10:00:01", "02:00:5e:10:00:02")
    assert wifi.minimum_security is WifiSecurity.WPA3_SAE


def test_layers_merge_and_errors_name_the_layer(tmp_path: Path) -> None:
    first = tmp_path / "10-site.yaml"
    first.write_text("mode: enforce\nmedia:\n  mount: true\n")
    second = tmp_path / "20-room.yaml"
    second.write_text("media:\n  non_trust: blocked\n")
    policy = load_policy([first, second]).policy
    assert policy.mode is Mode.ENFORCE
    assert policy.media.mount is True  # kept from the first layer
    assert policy.media.non_trust is NonTrustMode.BLOCKED
    assert policy.media.require_encryption  # from the embedded default
    second.write_text("media:\n  non_trust: sometimes\n")
    with pytest.raises(PolicyError) as info:
        load_policy([first, second])
    assert [i.mark.file for i in info.value.issues] == [str(second)]
    assert info.value.issues[0].mark.line == 2


def test_etc_overrides_in_order(tmp_path: Path) -> None:
    (tmp_path / "policy.d").mkdir()
    (tmp_path / "policy.yaml").write_text("mode: enforce\n")
    (tmp_path / "policy.d" / "b.yaml").write_text("mode: monitor\n")
    (tmp_path / "policy.d" / "a.yaml").write_text("media: {mount: true}\n")
    layers = default_layers(tmp_path)
    assert [p.name for p in layers] == ["policy.yaml", "a.yaml", "b.yaml"]
    assert load_policy(layers).policy.mode is Mode.MONITOR


def test_digest_changes_with_content(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("mode: enforce\n")
    one = load_policy([path]).digest
    assert load_policy([path]).digest == one
    path.write_text("mode: monitor\n")
    assert load_policy([path]).digest != one


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as info:
        load_policy([tmp_path / "nope.yaml"])
    assert "cannot read" in str(info.value)


def test_id_lists_merge_by_id_other_lists_replace(tmp_path: Path) -> None:
    drop_in = tmp_path / "50-site.yaml"
    drop_in.write_text(
        "rules:\n"
        "  - {id: port-scan, kind: scan, severity: minor}\n"  # overlays the default's rule
        "  - {id: site-extra, kind: flood, mode: monitor}\n"  # appended
        "network:\n  interfaces: [eth9]\n")
    base = load_policy().policy
    policy = load_policy([drop_in]).policy
    ids = [r.id for r in policy.rules]
    assert ids == [r.id for r in base.rules] + ["site-extra"]
    scan = next(r for r in policy.rules if r.id == "port-scan")
    assert scan.severity is Severity.MINOR
    assert scan.kind == "scan"
    assert policy.network.interfaces == ("eth9",)


def test_trusted_devices_add_up_across_drop_ins(tmp_path: Path) -> None:
    one = tmp_path / "a.yaml"
    one.write_text("media:\n  trusted_devices:\n"
                   "    - {id: IT-1, vendor_id: '0951', product_id: '1666', serial: A}\n")
    two = tmp_path / "b.yaml"
    two.write_text("media:\n  trusted_devices:\n"
                   "    - {id: IT-2, vendor_id: '0951', product_id: '1666', serial: B}\n")
    devices = load_policy([one, two]).policy.media.trusted_devices
    assert [d.id for d in devices] == ["IT-1", "IT-2"]
