"""Which keys a page of a cycle plans (docs/performance.md, "Incremental planning").

A quiet cycle must cost the same for 100 items as for 20,000, so a page of the change feed is
planned against the keys it touches, not against the whole mailbox:

- **Exchange side**: the links of the items the page lists (by Exchange id, by a deleted
  series' occurrence ids, by iCalendar UID for re-identification) and the keys our tags name.
- **PSA side**: the keys the PSA's audited writes touched since the folder's cursor
  (:mod:`exchange_ext.engine.psa_changes`), once per folder and cycle.

The planner decides each key from its link, its PSA item and the view's items for it, so
planning a subset gives, for those keys, the ops a whole plan would (the sync state machine
checks it: ``tests/exchange_ext/test_sync_machine.py``, "incremental equals full"). What no
page touches is planned in full instead:

- a full read (absence means gone), an expansion of the recurring window, a folder without a
  cursor, options that changed since the folder was last planned in full (kinds, window, time
  zone, the resource's language: its items' text changes), a write to the resource itself;
- and once a day, the **reconciliation**: whatever drifted without an audited write (items
  entering the window as days pass, a write that bypassed the audit trail) is planned then.

The cursor is an audit entry id. Ids are handed out when an entry is inserted, and a
transaction may commit after a later one (PostgreSQL), so an id below the highest seen may
still appear: the cursor only advances over ids without a gap, or past a gap older than
:data:`GAP_PATIENCE` (a rolled-back transaction's id never appears). Entries past a gap are
planned anyway, and again until the cursor passes them: re-planning a key is a no-op.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from enum import Enum

from django.db.models import Q
from django.utils import timezone

from exchange_ext.engine.links import to_link
from exchange_ext.engine.psa_changes import touched_keys
from exchange_ext.models import ItemLink, MailboxSettings
from exchange_ext.sync.records import ExchangeView, ItemKind, PsaKey, SyncOptions
from exchange_ext.sync.scope import touched_keys as touched_by_view
from psa.audit.models import AuditEntry

#: How long an id below the highest seen may stay missing before it is taken for a
#: rolled-back transaction's (a PSA transaction commits well within it).
GAP_PATIENCE = dt.timedelta(minutes=2)
#: A full plan at least this often per folder (the daily reconciliation).
RECONCILE_EVERY = dt.timedelta(days=1)
#: More PSA changes than this since the cursor: plan everything instead (one pass over the
#: mailbox is cheaper than resolving a bulk import key by key).
MAX_CHANGES = 5000
#: Resolve Exchange ids to keys this many at a time (bounded SQL parameter lists).
_ID_BATCH = 500


@dataclass(frozen=True)
class PsaChanges:
    """The PSA's audited writes since a cursor: the keys they touch, whether one of them needs
    a full plan, and the cursor to store once they are planned."""

    keys: frozenset[PsaKey]
    everything: bool
    cursor: int | None


def fingerprint(options: SyncOptions) -> str:
    """What the folder was planned in full under: a change of any option (kinds, import mode,
    window lengths, time zone, base URL, the labels written into items) plans it in full.
    The same options give the same fingerprint in every process (sets are sorted)."""
    text = json.dumps(_canonical(options), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _canonical(value: object) -> object:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _canonical(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, set | frozenset):
        return sorted((_canonical(v) for v in value), key=str)
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    return value


def reconciliation_due(reconciled_at: dt.datetime | None, now: dt.datetime) -> bool:
    """Whether the folder's daily full plan is due (``now``: the cycle's clock)."""
    return reconciled_at is None or not (now - RECONCILE_EVERY < reconciled_at <= now)


def settled_cursor() -> int:
    """The cursor a full plan stores: read before it loads the PSA (whatever is written
    meanwhile is planned again by the next cycle), the highest audit entry id below which no
    id is missing but for longer than :data:`GAP_PATIENCE` (0 when there is none)."""
    now = timezone.now()
    settled = AuditEntry.objects.filter(at__lte=now - GAP_PATIENCE).order_by("-id")
    base = settled.values_list("id", flat=True).first() or 0
    recent = AuditEntry.objects.filter(id__gt=base).order_by("id").only("id", "at")
    return _advanced(base, list(recent[:MAX_CHANGES]), now)


def psa_changes_since(
    cursor: int, mailbox: MailboxSettings, kinds: Collection[ItemKind]
) -> PsaChanges:
    """The keys of ``kinds`` in this mailbox touched by audited writes after ``cursor``."""
    rows = list(
        AuditEntry.objects.filter(id__gt=cursor)
        .order_by("id")
        .only("id", "at", "action", "model", "object_id", "changes")[: MAX_CHANGES + 1]
    )
    if not rows:
        return PsaChanges(frozenset(), False, cursor)
    if len(rows) > MAX_CHANGES:
        return PsaChanges(frozenset(), True, settled_cursor())
    touched = touched_keys(rows)
    everything = mailbox.resource_id in touched.resources
    keys = frozenset(_for_mailbox(key, mailbox) for key in touched.keys if key.kind in kinds)
    return PsaChanges(keys, everything, _advanced(cursor, rows, timezone.now()))


def _advanced(cursor: int, rows: list[AuditEntry], now: dt.datetime) -> int:
    """The cursor past ``rows`` (ordered by id), stopping before a gap younger than
    :data:`GAP_PATIENCE` (its id may belong to a transaction not yet committed)."""
    for row in rows:
        if row.id != cursor + 1 and row.at > now - GAP_PATIENCE:
            break
        cursor = row.id
    return cursor


def _for_mailbox(key: PsaKey, mailbox: MailboxSettings) -> PsaKey:
    # A service call's key names the resource whose copy it is: this mailbox's.
    if key.kind is ItemKind.SERVICE_CALL:
        return PsaKey(key.kind, key.psa_id, mailbox.resource_id)
    return PsaKey(key.kind, key.psa_id)


def exchange_keys(
    mailbox: MailboxSettings, view: ExchangeView, options: SyncOptions
) -> set[PsaKey]:
    """The keys the view's items and deletions concern: the links its queries pre-select by
    Exchange id, by a deleted series' occurrence ids and by iCalendar UID, narrowed by the
    core's rule (:func:`exchange_ext.sync.scope.touched_keys`); and the keys our tags name."""
    ids = {item.exchange_id for item in (*view.items, *view.tagged)} | set(view.deleted)
    uids = {item.ical_uid for item in view.items if item.ical_uid}
    series = [exchange_id for exchange_id in view.deleted if "|" not in exchange_id]
    rows = ItemLink.objects.filter(mailbox_settings=mailbox)
    candidates: dict[int, ItemLink] = {}
    for batch in _batches(sorted(ids)):
        candidates.update((row.pk, row) for row in rows.filter(exchange_id__in=batch))
    for batch in _batches(sorted(uids)):
        candidates.update((row.pk, row) for row in rows.filter(ical_uid__in=batch))
    for batch in _batches(series):
        prefixes = Q()
        for master_id in batch:
            prefixes |= Q(exchange_id__startswith=f"{master_id}|")
        candidates.update((row.pk, row) for row in rows.filter(prefixes))
    links = [to_link(mailbox, row) for row in candidates.values()]
    return {_for_mailbox(key, mailbox) for key in touched_by_view(links, view, options)}


def encoded_keys(keys: Iterable[PsaKey]) -> list[str]:
    """Keys as stored in ``FolderSyncState.retry_keys``."""
    return sorted(f"{key.kind.value}:{key.psa_id}" for key in keys)


def decoded_keys(stored: Iterable[str], mailbox: MailboxSettings) -> frozenset[PsaKey]:
    """The keys of ``FolderSyncState.retry_keys`` (an unreadable entry is skipped)."""
    keys = set()
    for text in stored or ():
        kind, _, psa_id = str(text).partition(":")
        if kind in {k.value for k in ItemKind} and psa_id.isdigit():
            keys.add(_for_mailbox(PsaKey(ItemKind(kind), int(psa_id)), mailbox))
    return frozenset(keys)


def has_occurrence_links(mailbox: MailboxSettings) -> bool:
    """Whether any linked occurrence of a series exists (its id is ``master|start``)."""
    return ItemLink.objects.filter(mailbox_settings=mailbox, exchange_id__contains="|").exists()


def _batches(values: Iterable[str]) -> Iterable[list[str]]:
    batch: list[str] = []
    for value in values:
        batch.append(value)
        if len(batch) == _ID_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch
