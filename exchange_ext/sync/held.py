"""Deletions kept back until their pass ends, or held by the mass-delete guard: as ops again.

docs/sync-rules.md, "Mass-delete guard". A destructive op (:data:`~.ops.DESTRUCTIVE`) is
stored as a :class:`Deferred` record (its key, kind of op, Exchange id and change key); a
later page that shows the item alive drops it (:func:`revived`). When its pass ends,
:func:`holds` says whether the pass's records are held; if not, or once an administrator
confirms them, :func:`confirm_ops` makes them ops again; Restore applies :func:`restore_ops`
instead. Both are decided against the links as they are then, so a record whose item is
already settled yields nothing.

Pure rules, shared by the engine (``exchange_ext/engine/held.py`` stores the records) and the
test harness (which keeps them in memory).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum

from exchange_ext.sync import ops as o
from exchange_ext.sync.planner import guard_trips
from exchange_ext.sync.records import ItemKind, Link, LinkState, PsaKey, SyncOptions

#: Ops that show an item alive on both sides: a stored deletion of it is stale.
ALIVE = (o.UpdatePsa, o.UpdateInExchange, o.Relink, o.LinkItems, o.CreateInExchange)


class DeferredOp(StrEnum):
    """Which destructive op a record stands for (the stored value)."""

    DELETE_IN_EXCHANGE = "delete_in_exchange"
    DELETE_PSA = "delete_psa"
    MARK_EXCHANGE_DELETED = "mark_exchange_deleted"
    UNLINK = "unlink"


@dataclass(frozen=True)
class Deferred:
    """One stored destructive op. ``kind`` is the item kind's value: with ``psa_id`` it names
    the link (a service call's key also names the resource, which the mailbox implies)."""

    kind: str
    psa_id: int
    op: str
    exchange_id: str
    change_key: str
    reason: str = ""


def key_of(op: o.Op) -> PsaKey:
    """The PSA key an op is about."""
    if isinstance(op, o.MarkExchangeDeleted | o.Unlink | o.Relink | o.LinkItems | o.CreateInPsa):
        return op.link.key
    return op.key


def deferred_of(op: o.Op) -> Deferred:
    """The record of a destructive op (``TypeError`` for any other op)."""
    if isinstance(op, o.DeleteInExchange):
        values = (DeferredOp.DELETE_IN_EXCHANGE, op.exchange_id, op.change_key)
    elif isinstance(op, o.DeletePsa):
        values = (DeferredOp.DELETE_PSA, op.exchange_id, "")
    elif isinstance(op, o.MarkExchangeDeleted):
        values = (DeferredOp.MARK_EXCHANGE_DELETED, op.link.exchange_id, op.link.change_key)
    elif isinstance(op, o.Unlink):
        values = (DeferredOp.UNLINK, op.link.exchange_id, op.link.change_key)
    else:
        raise TypeError(f"not a destructive op: {op!r}")
    kind, exchange_id, change_key = values
    key = key_of(op)
    return Deferred(key.kind.value, key.psa_id, kind.value, exchange_id, change_key, op.reason)


def revived(
    ops: Iterable[o.Op], failed: Collection[PsaKey] = (), deleted: Collection[PsaKey] = ()
) -> set[PsaKey]:
    """The keys whose stored deletions ``ops`` (a page's applied ops) make stale. An op of a
    ``failed`` key proves nothing: an update of a copy that is gone fails "not found" while its
    deletion is held, and dropping the deletion then would lose it (the feed reported it once).
    Nor does the relink of a key the same page deletes again (``deleted``: found under a new
    id, or seen at a new version): its deletion stays as stored, held or pending — dropped and
    stored afresh it would be counted as new and escape a hold."""
    return {
        key_of(op)
        for op in ops
        if isinstance(op, ALIVE) and key_of(op) not in failed and key_of(op) not in deleted
    }


def holds(ops: Iterable[o.Op], linked: int, options: SyncOptions, *, already_held: bool) -> bool:
    """Whether a pass's deletions (``ops``: :func:`confirm_ops` of its pending records) are
    held rather than applied: the folder already holds deletions (new ones join them), or
    they exceed the guard's limit of ``linked``, the folder's synced items at the start of
    the pass (``sync.planner.guard_trips``)."""
    return already_held or guard_trips(ops, linked, options)


def confirm_ops(records: Iterable[Deferred], baseline: Mapping[PsaKey, Link]) -> list[o.Op]:
    """The records as the core's ops, against the current links (a record whose link is gone
    or already in the target state is skipped: nothing is left to do). A delete in Exchange
    needs no link: a copy of ours without one (an orphan whose PSA item is gone) is deleted
    all the same (deleting an item already gone is a success)."""
    result: list[o.Op] = []
    index = _index(baseline)
    for record in records:
        key = index.get((record.kind, record.psa_id))
        link = baseline.get(key) if key else None
        reason = record.reason or "held deletion"
        if record.op == DeferredOp.DELETE_IN_EXCHANGE:
            key = key or _key(record)
            result.append(o.DeleteInExchange(key, record.exchange_id, record.change_key, reason))
        elif key is None or link is None:
            continue
        elif record.op == DeferredOp.DELETE_PSA:
            result.append(o.DeletePsa(key, record.exchange_id, reason))
        elif record.op == DeferredOp.MARK_EXCHANGE_DELETED and link.state is LinkState.LINKED:
            marked = replace(link, state=LinkState.EXCHANGE_DELETED)
            result.append(o.MarkExchangeDeleted(marked, reason))
        elif record.op == DeferredOp.UNLINK and link.state is not LinkState.UNLINKED:
            result.append(o.Unlink(replace(link, state=LinkState.UNLINKED), reason))
    return result


def restore_ops(records: Iterable[Deferred], baseline: Mapping[PsaKey, Link]) -> list[o.Op]:
    """What Restore does instead (docs/sync-rules.md, "Mass-delete guard"): Exchange copies
    the run wanted to delete stay there, unlinked; imported PSA items whose Exchange copy
    vanished stay in the PSA, unlinked; PSA items whose copy vanished are exported again
    (their link is forgotten, so the next plan creates the copy)."""
    result: list[o.Op] = []
    for record, key, link in _linked(records, baseline):
        if record.op == DeferredOp.MARK_EXCHANGE_DELETED:
            result.append(o.Forget(key, "restored: exported again"))
        elif link.state is not LinkState.UNLINKED:
            result.append(o.Unlink(replace(link, state=LinkState.UNLINKED), "restored: kept"))
    return result


def _linked(
    records: Iterable[Deferred], baseline: Mapping[PsaKey, Link]
) -> Iterable[tuple[Deferred, PsaKey, Link]]:
    """Each record with its key and current link; records without a link are left out."""
    index = _index(baseline)
    for record in records:
        key = index.get((record.kind, record.psa_id))
        link = baseline.get(key) if key else None
        if key is not None and link is not None:
            yield record, key, link


def _index(baseline: Mapping[PsaKey, Link]) -> dict[tuple[str, int], PsaKey]:
    """Links by (kind, PSA id): a service call's key also names the mailbox's resource."""
    return {(key.kind.value, key.psa_id): key for key in baseline}


def _key(record: Deferred) -> PsaKey:
    return PsaKey(ItemKind(record.kind), record.psa_id)
