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

from collections.abc import Collection, Iterable, Mapping, Sequence

from django.db.models import Q

from exchange_ext.models import HeldDeletion, MailboxSettings
from exchange_ext.sync import held as deferred
from exchange_ext.sync import ops as o
from exchange_ext.sync.records import ItemKind, Link, PsaKey

State = HeldDeletion.State
Op = HeldDeletion.Op
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


def forget_revived(
    mailbox: MailboxSettings,
    ops: Iterable[o.Op],
    failed: Collection[PsaKey] = (),
    deleted: Collection[PsaKey] = (),
) -> None:
    """Drop stored deletions of items this page shows alive (edited, relinked, adopted), but
    of the ``failed`` ones and of those it deletes again (``deleted``; ``sync.held.revived``)."""
    keys = deferred.revived(ops, failed, deleted)
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


def keys(mailbox: MailboxSettings, folder: str) -> set[PsaKey]:
    """The keys of the folder's pending and held deletions (every page plans them again, and
    keeps them back: docs/sync-rules.md, "Mass-delete guard"). One query."""
    rows_ = HeldDeletion.objects.filter(mailbox_settings=mailbox, folder=folder)
    found = rows_.values_list("kind", "psa_id")
    resource_id = mailbox.resource_id
    return {
        PsaKey(ItemKind(kind), psa_id, resource_id if kind == ItemKind.SERVICE_CALL else None)
        for kind, psa_id in found
    }


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
    is gone or already in the target state is skipped): ``sync.held.confirm_ops``."""
    return deferred.confirm_ops(map(record_of, rows_), baseline)


def restore_ops(rows_: Iterable[HeldDeletion], baseline: Mapping[PsaKey, Link]) -> list[o.Op]:
    """What Restore does instead (docs/sync-rules.md, "Mass-delete guard"):
    ``sync.held.restore_ops``."""
    return deferred.restore_ops(map(record_of, rows_), baseline)


def record_of(row: HeldDeletion) -> deferred.Deferred:
    """A stored row as the core's record."""
    return deferred.Deferred(
        row.kind, row.psa_id, row.op, row.exchange_id, row.change_key, row.reason
    )


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


key_of = deferred.key_of


def _fields(op: o.Op) -> tuple[PsaKey, dict[str, object]]:
    record = deferred.deferred_of(op)
    fields = {"op": record.op, "exchange_id": record.exchange_id,
              "change_key": record.change_key, "reason": record.reason[:255]}  # fmt: skip
    return key_of(op), fields
