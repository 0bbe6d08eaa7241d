"""Write :mod:`edgeguard.net.filter_aot`: the capture filter of every shipped policy
profile, as typed Python that mypyc compiles ahead of time (``replay`` runs it instead
of translating the program at start-up; a policy whose filter differs falls back to
:func:`edgeguard.net.bpfjit.compile_program`'s translation, same results).

    python -m edgeguard.net.filter_aot_gen          # rewrite filter_aot.py
    python -m edgeguard.net.filter_aot_gen --check  # exit 1 when it is stale
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edgeguard.net.bpf import Program
from edgeguard.net.bpfjit import aot_source, program_digest
from edgeguard.net.filter import build_filter
from edgeguard.net.inspect import filter_spec
from edgeguard.policy.load import PROFILES, load_policy

__all__ = ["TARGET", "main", "shipped_programs"]

TARGET = Path(__file__).resolve().parent / "filter_aot.py"
COMMAND = "python -m edgeguard.net.filter_aot_gen"


def shipped_programs() -> list[Program]:
    """The distinct filter programs of the shipped profiles, in profile order."""
    out: dict[str, Program] = {}
    for profile in PROFILES:
        network = load_policy(profile=profile, require_safe=False).policy.network
        prog = build_filter(filter_spec(network))
        out.setdefault(program_digest(prog), prog)
    return list(out.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="write edgeguard/net/filter_aot.py")
    parser.add_argument("--check", action="store_true", help="exit 1 when it is stale")
    args = parser.parse_args(argv)
    text = aot_source(shipped_programs(), COMMAND)
    if args.check:
        stale = TARGET.read_text() != text
        print(f"{TARGET}: {'stale' if stale else 'up to date'}")
        return int(stale)
    TARGET.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
