"""The Ansible example stays in step with the code: its policy template is a valid
kiosk policy, and every edgeguard command it runs exists with those options."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from edgeguard.cli import build_parser
from edgeguard.policy.load import load_policy

PLAYBOOK = Path(__file__).resolve().parents[3] / "docs" / "ansible" / "kiosk-playbook.yml"


def _tasks() -> list[dict]:
    play = yaml.safe_load(PLAYBOOK.read_text())[0]
    assert play["hosts"] == "kiosks"
    assert play["max_fail_percentage"] == 0
    return play["tasks"]


def test_policy_template_is_valid(tmp_path: Path) -> None:
    copy = next(t["ansible.builtin.copy"] for t in _tasks() if "ansible.builtin.copy" in t)
    rendered = re.sub(r"\{\{ [a-z_]+ \| to_json \}\}", "[]", copy["content"])
    assert "{{" not in rendered
    path = tmp_path / "policy.yaml"
    path.write_text(rendered)
    policy = load_policy([path], "kiosk", require_safe=False).policy
    assert policy.kiosk.enabled
    assert copy["validate"].endswith("check --profile kiosk %s")


def test_every_edgeguard_command_parses() -> None:
    parser = build_parser()
    ran = 0
    for task in _tasks():
        argv = task.get("ansible.builtin.command", {}).get("argv")
        if not argv:
            continue
        args = ["/usr/local/bin/edgeguard" if "{{" in a else a for a in argv[1:]]
        parser.parse_args(args)
        ran += 1
    assert ran == 3
