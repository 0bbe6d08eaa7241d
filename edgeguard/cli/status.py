"""``edgeguard status [--json]``: what the running daemon is doing.

``--json`` prints one ECS state line (``event.action: daemon-status``): ``process.pid``,
``process.uptime``, ``service.version`` and the rest under ``edgeguard.*`` (mode, policy,
audit head, pipeline and per-source counters). The control socket's own answer is an
internal protocol; this line is the contract.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from edgeguard.cli._common import add_socket_option, call_daemon, ecs_row, print_json_lines

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "status", help="show the running daemon's state",
        description="Show the running daemon's version, uptime, mode, policy, audit head "
                    "and per-source counters. Exit 0 running as the policy asks, 1 "
                    "degraded (a source the policy enables is not working, e.g. a capture "
                    "worker on a missing interface; for monitoring, like systemctl "
                    "is-failed), 3 when no daemon answers.")
    add_socket_option(parser)
    parser.add_argument("--json", action="store_true", help="one ECS JSON object")
    parser.set_defaults(func=_status)
    reload = sub.add_parser(
        "reload", help="ask the daemon to reload its policy (like SIGHUP)",
        description="Ask the daemon to reload its policy. A refused reload prints every "
                    "error it was refused for (file:line: field: message), the running "
                    "policy is kept, and the command's audit record has outcome failure. "
                    "Exit 0 reloaded, 1 refused, 3 when no daemon answers.")
    add_socket_option(reload)
    reload.set_defaults(func=_reload)


#: Exit status of ``status`` while the daemon is degraded.
EXIT_DEGRADED = 1


def _status(args: argparse.Namespace) -> int:
    status: dict[str, Any] = call_daemon(args, "status")
    degraded: dict[str, str] = dict(status.get("degraded", {}))
    code = EXIT_DEGRADED if degraded else 0
    if args.json:
        print_json_lines([status_row(status)])
        return code
    audit = status["audit"]
    print(f"edgeguard {status['version']}  pid {status['pid']}  up {status['uptime_s']:.0f}s  "
          f"mode {status['mode']}" + ("  DEGRADED" if degraded else ""))
    if status["mode"] == "monitor":
        print("          monitor mode: decisions are audited, nothing is enforced "
              "(`mode: enforce` in /etc/edgeguard/policy.yaml)")
    for what, why in degraded.items():
        print(f"degraded  {what}: {why}")
    print(f"policy    {status['policy_digest']}  ({', '.join(status['policy_sources'])})")
    print(f"          reloads {status['reloads']}, refused {status['reload_failures']}")
    print(f"audit     {audit['directory']}  seq {audit['sequence']}  "
          f"written {audit['records_written']}  errors {audit['write_errors']}")
    pipe = status["pipeline"]
    print("pipeline  " + "  ".join(f"{k} {v}" for k, v in pipe.items()))
    for name, src in status["sources"].items():
        if not src["running"]:
            print(f"source    {name}: NOT RUNNING ({src['error']})")
            continue
        counters = "  ".join(f"{k} {v}" for k, v in src["counters"].items())
        print(f"source    {name}: {counters}")
    return code


def status_row(status: Mapping[str, Any]) -> dict[str, Any]:
    """The daemon's status answer as one ECS state line."""
    return ecs_row("daemon-status", {
        "process.pid": status["pid"],
        "process.uptime": int(status["uptime_s"]),
        "service.version": status["version"],
        "edgeguard.mode": status["mode"],
        "edgeguard.policy.digest": status["policy_digest"],
        "edgeguard.policy.sources": list(status["policy_sources"]),
        "edgeguard.reloads": status["reloads"],
        "edgeguard.reload_failures": status["reload_failures"],
        "edgeguard.uptime_s": status["uptime_s"],
        "edgeguard.audit": status["audit"],
        "edgeguard.pipeline": status["pipeline"],
        "edgeguard.sources": status["sources"],
        "edgeguard.degraded": dict(status.get("degraded", {})),
    })


def _reload(args: argparse.Namespace) -> int:
    # A refusal is an error answer with the policy's errors: call_daemon prints them
    # and exits 1.
    result: dict[str, Any] = call_daemon(args, "reload")
    print(f"reloaded  digest {result['policy_digest']}")
    return 0
