"""The collector configs in docs/examples/ parse, and each says whether it was run here.

rsyslog (TCP, TLS, RELP) and syslog-ng (TCP, TLS) are run for real by
tests/linux/audit/test_audit_collectors.py (which also runs their own syntax checks);
Filebeat, Wazuh, Graylog and Splunk are not packaged for Debian 12, so their files are
only checked to be well-formed here.
"""

from __future__ import annotations

import configparser
import xml.etree.ElementTree as ET

import pytest
import yaml

from tests.conftest import ROOT

EXAMPLES = ROOT / "docs" / "examples"
RUN_HERE = {"rsyslog-edgeguard.conf", "rsyslog-relp-edgeguard.conf", "syslog-ng-edgeguard.conf"}


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.iterdir()))
def test_each_example_says_whether_it_was_run_here(name: str) -> None:
    text = (EXAMPLES / name).read_text()
    if name in RUN_HERE:
        assert "test_audit_collectors.py" in text or "test_audit_rsyslog.py" in text
    else:
        assert "NOT run here" in text


def test_filebeat_example_is_yaml_with_the_ndjson_parser() -> None:
    doc = yaml.safe_load((EXAMPLES / "filebeat-edgeguard.yml").read_text())
    (source,) = doc["filebeat.inputs"]
    assert source["type"] == "filestream"
    assert source["parsers"] == [{"ndjson": {"target": "", "overwrite_keys": True,
                                             "add_error_key": True}}]


def test_wazuh_rules_are_well_formed_xml() -> None:
    root = ET.parse(EXAMPLES / "wazuh-edgeguard.xml").getroot()
    assert root.tag == "group"
    assert [r.get("id") for r in root.iter("rule")] == ["100500", "100501", "100502", "100503"]


def test_splunk_example_parses_as_ini() -> None:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(EXAMPLES / "splunk-edgeguard.conf")
    assert parser["edgeguard:audit"]["INDEXED_EXTRACTIONS"] == "json"
    assert parser["monitor:///var/log/edgeguard/audit*.jsonl"]["sourcetype"] == "edgeguard:audit"
