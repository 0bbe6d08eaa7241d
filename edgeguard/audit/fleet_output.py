"""How ``edgeguard audit fleet-verify`` shows one host's chain: a line for people, an
ECS object for ``--json`` (the verification itself: :mod:`edgeguard.audit.fleet`)."""

from __future__ import annotations

from edgeguard.audit.fleet import ChainReport, Status
from edgeguard.ecs import iso_timestamp
from edgeguard.events import Scalar

__all__ = ["fleet_line", "fleet_row"]


def fleet_line(report: ChainReport) -> str:
    """One human line per host and chain."""
    if not report.records:
        detail = report.problems[0][2] if report.problems else "no records"
        return f"{report.host} - {report.status.value}: {detail}"
    span = f"sequences {report.first_sequence}..{report.last_sequence}"
    sealing = ("sealed" if report.sealed else "chain only") if report.checkpoints else \
        "no checkpoint"
    line = (f"{report.host} {report.chain_id or '-'} {report.status.value}: "
            f"{report.records} records, {span}, {report.checkpoints} checkpoints ({sealing})")
    if report.duplicates:
        line += f", {report.duplicates} duplicates"
    if report.unchecked_duplicates:
        line += f", {report.unchecked_duplicates} unchecked duplicates"
    if report.future_dated:
        line += f", {report.future_dated} future-dated"
    if report.missing:
        line += f", {report.missing} missing"
    first = report.first_problem()
    if first is not None:
        status, seq, detail = first
        line += f": first {status.value} at sequence {seq}: {detail}"  # seq > 0: records
    if report.notes:
        line += " (" + "; ".join(report.notes) + ")"
    return line


def fleet_row(report: ChainReport) -> dict[str, Scalar]:
    """The --json object of one host and chain (ECS names, dotted; the caller nests)."""
    row: dict[str, Scalar] = {
        "event.kind": "state",
        "event.action": "audit-fleet-verify",
        "event.outcome": "success" if report.status is Status.VERIFIED else "failure",
        "host.name": report.host,
        "edgeguard.chain_id": report.chain_id,
        "edgeguard.fleet.status": report.status.value,
        "edgeguard.audit.records": report.records,
        "edgeguard.audit.first_sequence": report.first_sequence,
        "edgeguard.audit.last_sequence": report.last_sequence,
        "edgeguard.audit.checkpoints": report.checkpoints,
        "edgeguard.fleet.sealed": report.sealed,
        "edgeguard.fleet.duplicates": report.duplicates,
        "edgeguard.fleet.unchecked_duplicates": report.unchecked_duplicates,
        "edgeguard.fleet.future_dated": report.future_dated,
        "edgeguard.fleet.missing": report.missing,
        "edgeguard.fleet.gaps": tuple(f"{a}..{b}" for a, b in report.gaps),
        "edgeguard.fleet.problems": tuple(f"{s.value} at {q}: {d}"
                                          for s, q, d in report.problems),
        "edgeguard.fleet.problem_count": report.problems_total,
        "edgeguard.audit.notes": tuple(report.notes),
    }
    if report.last_time is not None:
        row["event.end"] = iso_timestamp(report.last_time)
    first = report.first_problem()
    if first is not None:
        status, seq, detail = first
        if seq > 0:
            row["event.sequence"] = seq
        row["event.reason"] = status.value
        row["error.message"] = detail
    return row
