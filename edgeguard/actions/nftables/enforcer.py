"""The live state of ``inet edgeguard``: build it, add to it, read it back, notice expiries.

The kernel is the source of truth: timed set elements expire there, and the blocks
listed by ``edgeguard net blocks`` are read back from the sets, not from memory. What
this class remembers (:attr:`Enforcer.known`) is only there to tell, at the next poll,
which elements have gone, so that each expiry gets its own audit record, and whether
one went early (removed by someone else: recorded as such, never as an expiry).
"""

from __future__ import annotations

import dataclasses
import errno
import ipaddress
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from edgeguard.actions.base import run_action, settle
from edgeguard.actions.nftables.offenders import Offence, RepeatOffenders
from edgeguard.actions.nftables.plan import Change
from edgeguard.actions.nftables.ruleset import (
    FAMILY,
    SETS,
    TABLE,
    Entry,
    Tag,
    element_command,
    parse_entries,
    parse_rule_counters,
    rebuild_commands,
    remove_commands,
)
from edgeguard.actions.nftables.runner import Nft, NftError
from edgeguard.audit.sink import AuditSink
from edgeguard.clock import Clock
from edgeguard.ecs import categorise_action, iso_timestamp
from edgeguard.events import ActionKind, ActionResult, AuditRecord, EventKind, Outcome, Scalar
from edgeguard.net.config import NetworkConfig
from edgeguard.policy.types import MacAddress

__all__ = ["EARLY_SLACK", "MANUAL_KIND", "MANUAL_RULE", "Enforcer", "entry_fields"]

#: An element gone more than this many seconds before its expiry was removed, not expired.
EARLY_SLACK = 2.0


#: ``rule.id`` and finding kind of a block an operator made (``edgeguard net block``).
MANUAL_RULE = "manual-block"
MANUAL_KIND = "manual/block"


@dataclass(slots=True)
class _Known:
    entry: Entry
    expires_at: float  # monotonic


def entry_fields(entry: Entry, now: float | None = None) -> dict[str, Scalar]:
    """ECS-dotted fields describing one block (audit records and ``net blocks``)."""
    fields: dict[str, Scalar] = {
        "edgeguard.block.action": entry.action.value,
        "edgeguard.block.set": f"{FAMILY} {TABLE} {entry.set}",
        "edgeguard.block.target": entry.describe(),
        "edgeguard.block.timeout": entry.timeout,
        "edgeguard.block.expires_in": entry.expires,
        "edgeguard.finding.id": entry.tag.finding_id,
        "edgeguard.finding.kind": entry.tag.finding_kind,
        "rule.id": entry.tag.rule_id,
        "event.reason": f"{entry.tag.finding_kind} ({entry.tag.rule_id})",
    }
    if now is not None:
        fields["event.end"] = iso_timestamp(now + entry.expires)
    if isinstance(entry.key, str):
        fields["source.mac" if SETS[entry.set].version == 0 else "source.ip"] = entry.key
    else:
        fields.update({"source.ip": entry.key[0], "destination.ip": entry.key[1],
                       "network.transport": entry.key[2]})
        if len(entry.key) == 5:
            fields.update({"source.port": entry.key[3], "destination.port": entry.key[4]})
    return fields


def _same_address(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return a.lower().replace("-", ":") == b.lower().replace("-", ":")


class Enforcer:
    """Owns ``inet edgeguard`` in one network namespace (the one ``nft`` runs in)."""

    def __init__(self, nft: Nft, network: NetworkConfig, audit: AuditSink, clock: Clock):
        self.nft = nft
        self.network = network
        self.audit = audit
        self.clock = clock
        self.known: dict[tuple[str, object], _Known] = {}
        self.counts: Counter[str] = Counter()
        self.dropped: dict[str, int] = {}  # packets dropped per rule, from the last poll
        self._full_reported = 0
        #: Hosts blocked recently, so a repeat offender's next block grows.
        self.offenders = RepeatOffenders()

    # -- table lifecycle -------------------------------------------------------------
    def _listing(self) -> list[dict[str, object]] | None:
        try:
            return self.nft.run([{"list": {"table": {"family": FAMILY, "name": TABLE}}}])
        except NftError as exc:
            if exc.errno == errno.ENOENT:
                return None
            raise

    def entries(self) -> list[Entry]:
        """The live elements of our sets, read from the kernel (empty if no table)."""
        listing = self._listing()
        return parse_entries(listing) if listing is not None else []

    def start(self) -> int:
        """Rebuild the table from policy in one transaction, keeping live blocks.

        Blocks still in the kernel (kept at stop, or left by a crash) are carried over
        with the time they had left, unless the new policy allowlists them or the
        (possibly smaller) set cap has no room; returns how many were carried.
        """
        carried: list[Entry] = []
        room: Counter[str] = Counter()
        for entry in self.entries():
            if self._now_allowlisted(entry):
                self._record_gone(entry, "network-unblock", "unblocked: now allowlisted")
                continue
            room[entry.set] += 1
            if room[entry.set] > self.network.enforcement.set_size:
                self.counts["rebuild_dropped"] += 1
                continue
            carried.append(entry)
        self.nft.run(rebuild_commands(self.network.enforcement, self.network.allowlist,
                                      carried))
        self.known = {}
        self._remember(self.entries())
        self.counts["restored"] += len(carried)
        self._state("network-enforcement-started",
                    f"nftables table {FAMILY} {TABLE} built from policy; "
                    f"{len(carried)} live block(s) carried over", {
                        "edgeguard.block.restored": len(carried)})
        return len(carried)

    def reload(self, network: NetworkConfig) -> None:
        self.network = network
        self.start()

    def stop(self) -> None:
        """Remove the table, or keep it (and its timed blocks) per policy."""
        if self.network.enforcement.keep_table_on_stop:
            self._state("network-enforcement-stopped",
                        f"nftables table kept with {len(self.known)} live block(s)",
                        {"edgeguard.block.kept": len(self.known)})
            return
        self.nft.run(remove_commands())
        self._state("network-enforcement-stopped", "nftables table removed",
                    {"edgeguard.block.kept": 0})
        self.known = {}

    def remove(self) -> None:
        """Remove our table if a previous run left one (monitor-only policies).

        Reads first, so a monitor-only daemon issues no ruleset change at all when
        there is nothing of ours in the kernel.
        """
        if self._listing() is not None:
            self.nft.run(remove_commands())
            self._state("network-enforcement-removed",
                        "nftables table removed: the policy cannot enforce", {})
        self.known = {}

    # -- changes ---------------------------------------------------------------------
    def apply(self, change: Change) -> ActionResult:
        """Add the change's elements in one transaction.

        ``create`` fails on an element already present: for one element that means
        ``changed=False``; for several (some present) the same elements are then
        ``add``-ed, again in one transaction, which leaves the present ones untouched.
        """
        change, note, offence = self._grown(change)
        try:
            self._add(change, "create")
        except NftError as exc:
            if exc.errno != errno.EEXIST:
                return self._failed(change, exc)
            if len(change.keys) == 1:
                self.counts["already"] += 1
                return ActionResult(change.action, ok=True, changed=False,
                                    detail=f"already in place: {change.describe()}")
            try:
                self._add(change, "add")
            except NftError as again:
                return self._failed(change, again)
        self.counts["added"] += 1
        self._noted(change, offence)
        return ActionResult(change.action, ok=True, detail=change.describe() + note)

    def _grown(self, change: Change) -> tuple[Change, str, Offence | None]:
        """A block of one address, lengthened when it is a repeat offender's
        (:mod:`.offenders`), with a note for the result's detail and the offence to
        remember once the block is in; any other change as it is (no offence)."""
        if change.action is not ActionKind.BLOCK or len(change.keys) != 1 \
                or not isinstance(change.keys[0], str):
            return change, "", None
        offence = self.offenders.next_block(change.keys[0], change.timeout,
                                            self.network.enforcement, self.clock.monotonic())
        if offence.count == 1:
            return change, "", offence
        return (dataclasses.replace(change, timeout=offence.timeout),
                f" (repeat offender: block {offence.count} within "
                f"network.enforcement.repeat_block_window, grown from {change.timeout:g} s)",
                offence)

    def _noted(self, change: Change, offence: Offence | None) -> None:
        if offence is not None and isinstance(change.keys[0], str):
            self.offenders.note(change.keys[0], offence)
            if offence.count > 1:
                self.counts["repeat_blocks"] += 1

    def apply_many(self, changes: Sequence[Change]) -> list[ActionResult]:
        """Add every change's elements in one transaction; when that fails (an element
        already there, a full set), fall back to :meth:`apply` change by change so each
        gets its own result."""
        if len(changes) == 1:
            return [self.apply(changes[0])]
        grown = [self._grown(c) for c in changes]
        try:
            self.nft.run([element_command("create", c.set, c.keys, c.timeout, c.tag)
                          for c, _, _ in grown])
        except NftError:
            self.counts["batch_fallbacks"] += 1
            return [self.apply(change) for change in changes]
        out = []
        for change, note, offence in grown:
            self._remember([Entry(change.set, key, change.timeout, change.timeout, change.tag)
                            for key in change.keys], refresh=False)
            self.counts["added"] += 1
            self._noted(change, offence)
            out.append(ActionResult(change.action, ok=True, detail=change.describe() + note))
        self.counts["batches"] += 1
        return out

    def _add(self, change: Change, op: str) -> None:
        self.nft.run([element_command(op, change.set, change.keys, change.timeout,
                                      change.tag)])
        self._remember([Entry(change.set, key, change.timeout, change.timeout, change.tag)
                        for key in change.keys], refresh=False)

    def _failed(self, change: Change, exc: NftError) -> ActionResult:
        if exc.errno == errno.ENFILE:
            self.counts["set_full"] += 1
            return ActionResult(change.action, ok=False, detail=(
                f"set {change.set} is full (network.enforcement.set_size = "
                f"{self.network.enforcement.set_size}); not added: {change.describe()}"))
        self.counts["errors"] += 1
        return ActionResult(change.action, ok=False, detail=f"nft: {exc}")

    def manual_change(self, address: str, duration: float, reason: str) -> Change:
        """The block an operator asks for; ValueError when it must not be made (not an
        address, allowlisted)."""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            try:
                mac = str(MacAddress.parse(address))
            except ValueError:
                raise ValueError(f"{address!r} is not an IP or MAC address") from None
            if mac in self.network.enforcement.mac_allowlist:
                raise ValueError(f"refused: MAC {mac} is in "
                                 "network.enforcement.mac_allowlist") from None
            return Change(ActionKind.BLOCK, "blockmac", (mac,), duration,
                          Tag(MANUAL_RULE, MANUAL_KIND, reason))
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        for net in self.network.allowlist:
            if ip.version == net.version and ip in net:
                raise ValueError(f"refused: {ip} is allowlisted ({net}, network.allowlist)")
        return Change(ActionKind.BLOCK, f"block{ip.version}", (str(ip),), duration,
                      Tag(MANUAL_RULE, MANUAL_KIND, reason))

    def block(self, change: Change, user: str, reason: str) -> ActionResult:
        """Install an operator's block (replacing any block of the same address, so the
        new duration holds) and audit it with who asked and why. The record is opened
        as a failure and settled with what nft reported, categorised like every action
        record (:func:`edgeguard.ecs.categorise_action`: ``denied`` only when the block
        took effect, ``info`` when it failed)."""
        key = change.keys[0]
        fields = entry_fields(Entry(change.set, key, change.timeout, change.timeout,
                                    change.tag), self.clock.now())
        fields.update({"user.name": user, "event.reason": reason})
        opened = categorise_action(AuditRecord(
            action="block", message=f"manual block by {user}: not made",
            outcome=Outcome.FAILURE, rule_id=MANUAL_RULE, fields=fields), ActionKind.BLOCK)
        result = run_action(lambda: self._manual_add(change))
        self.audit.write(categorise_action(dataclasses.replace(
            settle(opened, result), message=f"manual block by {user}: {result.detail}"),
            ActionKind.BLOCK))
        return result

    def _manual_add(self, change: Change) -> ActionResult:
        key = change.keys[0]
        try:
            try:
                self._add(change, "create")
            except NftError as exc:
                if exc.errno != errno.EEXIST:
                    raise
                self.nft.run([element_command("delete", change.set, (key,)),
                              element_command("create", change.set, (key,), change.timeout,
                                              change.tag)])
                self.known.pop((change.set, key), None)
                self._remember([Entry(change.set, key, change.timeout, change.timeout,
                                      change.tag)], refresh=False)
        except NftError as exc:
            return self._failed(change, exc)
        self.counts["manual_blocks"] += 1
        return ActionResult(change.action, ok=True, detail=change.describe())

    def unblock(self, address: str, user: str) -> list[Entry]:
        """Remove every block, flow drop and rate limit naming ``address`` (one transaction)."""
        gone = [e for e in self.entries()
                if any(_same_address(address, a) for a in e.addresses)]
        if not gone:
            return []
        self.nft.run([element_command("delete", e.set, (e.key,)) for e in gone])
        for entry in gone:
            self.known.pop((entry.set, entry.key), None)
            if isinstance(entry.key, str):
                self.offenders.forget(entry.key)  # a false alarm is no offence
            self.counts["unblocked"] += 1
            self._record_gone(entry, "network-unblock", f"unblocked by {user}",
                              {"user.name": user})
        return gone

    # -- expiry ----------------------------------------------------------------------
    def expiry_due(self) -> bool:
        """Whether a remembered element should have expired by now (worth a read)."""
        now = self.clock.monotonic()
        return any(k.expires_at <= now for k in self.known.values())

    def poll(self) -> list[Entry]:
        """Read the sets back; audit each element that expired; return those."""
        listing = self._listing()
        current = parse_entries(listing) if listing is not None else []
        if listing is not None:
            self.dropped = parse_rule_counters(listing)
        present = {(e.set, e.key) for e in current}
        now = self.clock.monotonic()
        expired: list[Entry] = []
        for key, known in list(self.known.items()):
            if key in present:
                continue
            del self.known[key]
            if now < known.expires_at - EARLY_SLACK:
                self.counts["removed_outside"] += 1
                self._record_gone(known.entry, "network-block-removed",
                                  "removed from the kernel set outside edgeguard")
            else:
                self.counts["expired"] += 1
                expired.append(known.entry)
                self._record_gone(known.entry, "network-block-expired", "expired")
        self._remember(current)
        self.report_full()
        return expired

    def _remember(self, entries: Iterable[Entry], refresh: bool = True) -> None:
        """Note what the kernel holds and when each element is due to expire.

        Reads refresh the due time (the listing's ``expires`` is whole seconds); an
        ``add`` of an element already there does not (the kernel keeps its timeout).
        """
        now = self.clock.monotonic()
        for entry in entries:
            key = (entry.set, entry.key)
            known = self.known.get(key)
            if known is None:
                self.known[key] = _Known(entry, now + entry.expires)
            elif refresh:
                known.expires_at = now + entry.expires

    def _now_allowlisted(self, entry: Entry) -> bool:
        if SETS[entry.set].version == 0:
            return entry.key in self.network.enforcement.mac_allowlist
        first = ipaddress.ip_address(entry.addresses[0])
        return any(first.version == n.version and first in n for n in self.network.allowlist)

    # -- audit -----------------------------------------------------------------------
    def _record_gone(self, entry: Entry, action: str, why: str,
                     extra: Mapping[str, Scalar] | None = None) -> None:
        fields = entry_fields(entry)
        fields.update(extra or {})
        self.audit.write(AuditRecord(
            action=action, message=f"{entry.action.value} of {entry.describe()} ended: {why}",
            category=("network",), event_type=("allowed", "end"), outcome=Outcome.SUCCESS,
            rule_id=entry.tag.rule_id or None, fields=fields))

    def report_full(self) -> None:
        """One summary record for the refusals of full sets since the last summary."""
        full = self.counts["set_full"]
        if full > self._full_reported:
            self.audit.write(AuditRecord(
                action="network-block-set-full", kind=EventKind.PIPELINE_ERROR,
                message=f"{full - self._full_reported} block(s) not added: set at its cap "
                        f"({self.network.enforcement.set_size} elements)",
                category=("network",), event_type=("error",), outcome=Outcome.FAILURE,
                fields={"edgeguard.block.refused": full - self._full_reported}))
            self._full_reported = full

    def _state(self, action: str, message: str, fields: Mapping[str, Scalar]) -> None:
        self.audit.write(AuditRecord(action=action, message=message, kind=EventKind.STATE,
                                     category=("network", "configuration"),
                                     event_type=("change",), outcome=Outcome.SUCCESS,
                                     fields=dict(fields)))


