"""Deletions kept back by the mass-delete guard: stored per mailbox, counted over a whole pass.

docs/sync-rules.md, "Mass-delete guard". While a pass of a folder's change feed runs (every
page until the feed is caught up, across runs when a budget splits it), each page's
destructive ops are stored here as *pending* instead of being applied, so the page's other
ops and its sync state can commit. When the pass ends, the pending set is counted against the
folder's synced items at the start of the pass: within the limit it is applied; beyond it, it
is *held* until an administrator chooses Confirm deletions (exactly the held set is applied)
or Restore (nothing held is deleted). Both decisions are carried out by the next run, under
the mailbox's lease, like every other write.

This module is the ORM side; the counting rule is the core's (``sync.planner.guard_trips``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace

from django.db.models import Q

from exchange_ext.models import HeldDeletion, MailboxSettings
from exchange_ext.sync import ops as o
from exchange_ext.sync.records import Link, LinkState, PsaKey

State = HeldDeletion.State
Op = HeldDeletion.Op
# Ops that show an item is alive on both sides: a pending or held deletion of it is stale.
_ALIVE = (o.UpdatePsa, o.UpdateInExchange, o.Relink, o.LinkItems, o.CreateInExchange)
SHOWN_TITLES = 10


def defer(
    mailbox: MailboxSettings, folder: str, ops: Iterable[o.Op], titles: Mapping[PsaKey, str]
) -> None:
    """Store ``ops`` (destructive ones) as pending, or refresh a stored row of the same key
    (a held or decided row keeps its state). Call inside the page's transaction."""
    for op in ops:
        key, fields = _fields(op)
        fields |= {"folder": folder, "title": titles.get(key, "")[:255]}
        row, created = HeldDeletion.objects.get_or_create(
            mailbox_settings=mailbox, kind=key.kind.value, psa_id=key.psa_id, defaults=fields
        )
        if not created:
            HeldDeletion.objects.filter(pk=row.pk).update(**fields)


def forget_revived(mailbox: MailboxSettings, ops: Iterable[o.Op]) -> None:
    """Drop stored deletions of items this page shows alive (edited, relinked, adopted)."""
    keys = {key_of(op) for op in ops if isinstance(op, _ALIVE)}
    by_kind: dict[str, list[int]] = {}
    for key in keys:
        by_kind.setdefault(key.kind.value, []).append(key.psa_id)
    if not by_kind:
        return
    match = Q()
    for kind, ids in by_kind.items():
        match |= Q(kind=kind, psa_id__in=ids)
    HeldDeletion.objects.filter(match, mailbox_settings=mailbox).delete()


def rows(mailbox: MailboxSettings, folder: str, *states: str) -> list[HeldDeletion]:
    return list(
        HeldDeletion.objects.filter(
            mailbox_settings=mailbox, folder=folder, state__in=states
        ).order_by("created_at", "pk")
    )


def hold(rows_: Sequence[HeldDeletion]) -> None:
    HeldDeletion.objects.filter(pk__in=[r.pk for r in rows_]).update(state=State.HELD)


def drop(rows_: Sequence[HeldDeletion]) -> None:
    HeldDeletion.objects.filter(pk__in=[r.pk for r in rows_]).delete()


def held_count(mailbox: MailboxSettings) -> int:
    return HeldDeletion.objects.filter(mailbox_settings=mailbox, state=State.HELD).count()


def is_held(mailbox: MailboxSettings, folder: str | None = None) -> bool:
    held = HeldDeletion.objects.filter(mailbox_settings=mailbox, state=State.HELD)
    return (held.filter(folder=folder) if folder else held).exists()


def to_ops(rows_: Iterable[HeldDeletion], baseline: Mapping[PsaKey, Link]) -> list[o.Op]:
    """The stored deletions as the core's ops, against the current links (a row whose link
    is gone or already in the target state is skipped: nothing is left to do)."""
    result: list[o.Op] = []
    index = _index(baseline)
    for row in rows_:
        key = index.get((row.kind, row.psa_id))
        link = baseline.get(key) if key else None
        if key is None or link is None:
            continue
        reason = row.reason or "held deletion"
        if row.op == Op.DELETE_IN_EXCHANGE:
            result.append(o.DeleteInExchange(key, row.exchange_id, row.change_key, reason))
        elif row.op == Op.DELETE_PSA:
            result.append(o.DeletePsa(key, row.exchange_id, reason))
        elif row.op == Op.MARK_EXCHANGE_DELETED and link.state is LinkState.LINKED:
            result.append(o.MarkExchangeDeleted(replace(link, state=LinkState.EXCHANGE_DELETED),
                                                reason))  # fmt: skip
        elif row.op == Op.UNLINK and link.state is not LinkState.UNLINKED:
            result.append(o.Unlink(replace(link, state=LinkState.UNLINKED), reason))
    return result


def restore_ops(rows_: Iterable[HeldDeletion], baseline: Mapping[PsaKey, Link]) -> list[o.Op]:
    """What Restore does instead (docs/sync-rules.md, "Mass-delete guard"): Exchange copies
    the run wanted to delete stay there, unlinked; imported PSA items whose Exchange copy
    vanished stay in the PSA, unlinked; PSA items whose copy vanished are exported again
    (their link is forgotten, so the next plan creates the copy)."""
    result: list[o.Op] = []
    index = _index(baseline)
    for row in rows_:
        key = index.get((row.kind, row.psa_id))
        link = baseline.get(key) if key else None
        if key is None or link is None:
            continue
        if row.op == Op.MARK_EXCHANGE_DELETED:
            result.append(o.Forget(key, "restored: exported again"))
        elif link.state is not LinkState.UNLINKED:
            result.append(o.Unlink(replace(link, state=LinkState.UNLINKED), "restored: kept"))
    return result


def summary(mailbox: MailboxSettings) -> dict[str, object]:
    """What the resource's page shows while deletions are held: counts per op and the first
    titles."""
    held = HeldDeletion.objects.filter(mailbox_settings=mailbox, state=State.HELD)
    counts = {label: held.filter(op=value).count() for value, label in Op.choices}
    return {
        "total": held.count(),
        "counts": {label: n for label, n in counts.items() if n},
        "titles": list(
            held.order_by("created_at", "pk").values_list("title", flat=True)[:SHOWN_TITLES]
        ),
        "ids": list(held.values_list("pk", flat=True)),
    }


def decide(mailbox: MailboxSettings, ids: Iterable[int], state: str) -> int:
    """Record an administrator's decision on exactly the held rows ``ids``; return how many
    were still held (a row decided or revived meanwhile is left alone)."""
    return HeldDeletion.objects.filter(
        mailbox_settings=mailbox, state=State.HELD, pk__in=list(ids)
    ).update(state=state)


def message(count: int) -> str:
    return (
        f"Held {count} deletions for an administrator: one side looks suddenly empty. Check "
        "the mailbox and the server settings, then choose Confirm deletions or Restore on the "
        "resource's page."
    )


# --- helpers --------------------------------------------------------------------------------


def key_of(op: o.Op) -> PsaKey:
    if isinstance(op, o.MarkExchangeDeleted | o.Unlink | o.Relink | o.LinkItems):
        return op.link.key
    if isinstance(op, o.CreateInPsa):
        return op.link.key
    return op.key  # type: ignore[union-attr]


def _fields(op: o.Op) -> tuple[PsaKey, dict[str, object]]:
    if isinstance(op, o.DeleteInExchange):
        values = (Op.DELETE_IN_EXCHANGE, op.exchange_id, op.change_key)
    elif isinstance(op, o.DeletePsa):
        values = (Op.DELETE_PSA, op.exchange_id, "")
    elif isinstance(op, o.MarkExchangeDeleted):
        values = (Op.MARK_EXCHANGE_DELETED, op.link.exchange_id, op.link.change_key)
    elif isinstance(op, o.Unlink):
        values = (Op.UNLINK, op.link.exchange_id, op.link.change_key)
    else:
        raise TypeError(f"not a destructive op: {op!r}")
    kind, exchange_id, change_key = values
    fields = {"op": kind, "exchange_id": exchange_id, "change_key": change_key,
              "reason": op.reason[:255]}  # fmt: skip
    return key_of(op), fields


def _index(baseline: Mapping[PsaKey, Link]) -> dict[tuple[str, int], PsaKey]:
    """Links by (kind, PSA id): a service call's key also names the mailbox's resource."""
    return {(key.kind.value, key.psa_id): key for key in baseline}
