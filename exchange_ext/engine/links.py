"""The sync baseline of one mailbox: ItemLink rows ⇄ the core's :class:`Link` records; and the
public contacts folder's, in PublicFolderLink rows (the same records, no mailbox).

Loading is one query; saving a batch of changes is at most two statements (one delete, one
upsert with a parameter set per row), so a page's bookkeeping costs the same number of
queries for 10 items as for 5,000.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping, Sequence

from django.db import connection
from django.utils import timezone

from exchange_ext.backends.base import FolderKind, KnownVersions
from exchange_ext.models import ItemLink, MailboxSettings, PublicFolderLink
from exchange_ext.sync.records import (
    Digest,
    ImportMode,
    ItemKind,
    Link,
    LinkState,
    PsaKey,
    Side,
    SyncOptions,
)


def folder_of(kind: ItemKind) -> FolderKind:
    return FolderKind.CONTACTS if kind is ItemKind.CONTACT else FolderKind.CALENDAR


def synced_folders(options: SyncOptions) -> list[FolderKind]:
    """The mailbox folders a run with ``options`` reads, calendar first."""
    kinds = options.export_kinds
    calendar = bool(kinds - {ItemKind.CONTACT}) or options.import_mode != ImportMode.NONE
    return [FolderKind.CALENDAR] * calendar + [FolderKind.CONTACTS] * (ItemKind.CONTACT in kinds)


def load_baseline(mailbox: MailboxSettings) -> dict[PsaKey, Link]:
    """Every link of the mailbox, in every state."""
    rows = ItemLink.objects.filter(mailbox_settings=mailbox)
    return {link.key: link for link in (to_link(mailbox, row) for row in rows)}


def load_links(mailbox: MailboxSettings, keys: Collection[PsaKey]) -> dict[PsaKey, Link]:
    """The links of just these keys, in every state: one query per kind asked for."""
    links: dict[PsaKey, Link] = {}
    for kind in {key.kind for key in keys}:
        ids = sorted({key.psa_id for key in keys if key.kind is kind})
        for start in range(0, len(ids), 500):
            rows = ItemLink.objects.filter(
                mailbox_settings=mailbox, kind=kind, psa_id__in=ids[start : start + 500]
            )
            links.update((link.key, link) for link in (to_link(mailbox, r) for r in rows))
    return links


def count_linked(mailbox: MailboxSettings, folder: FolderKind) -> int:
    """How many of the folder's items are synced (the mass-delete guard's base). One query."""
    return ItemLink.objects.filter(
        mailbox_settings=mailbox, folder=folder.value, state=ItemLink.State.LINKED
    ).count()


def known_versions(mailbox: MailboxSettings) -> KnownVersions:
    """The versions of the mailbox's items we hold (the link's change key by Exchange id), for
    a backend to skip reading items we wrote ourselves (docs/performance.md)."""

    def known(exchange_ids: Sequence[str]) -> Mapping[str, str]:
        found: dict[str, str] = {}
        ids = sorted(set(exchange_ids))
        for start in range(0, len(ids), 500):
            rows = ItemLink.objects.filter(
                mailbox_settings=mailbox,
                state=ItemLink.State.LINKED,
                exchange_id__in=ids[start : start + 500],
            ).values_list("exchange_id", "change_key")
            found.update((exchange_id, key) for exchange_id, key in rows if key)
        return found

    return known


def save_links(mailbox: MailboxSettings, changes: Mapping[PsaKey, Link | None]) -> None:
    """Persist ``changes`` (``None`` drops the key's link). Call inside the page's transaction.

    Dropped keys go first, so an Exchange id handed from one key to another never meets
    itself in the (mailbox, exchange id) unique constraint.
    """
    dropped = [key for key, link in changes.items() if link is None]
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    for kind in {key.kind for key in dropped}:
        ids = [key.psa_id for key in dropped if key.kind is kind]
        ItemLink.objects.filter(mailbox_settings=mailbox, kind=kind, psa_id__in=ids).delete()
    rows = [_to_values(mailbox, link, now) for link in changes.values() if link is not None]
    if rows:
        with connection.cursor() as cursor:
            cursor.executemany(_upsert_sql(), rows)


# A page's links are written with one prepared upsert and many parameter sets: Django's
# bulk_create(update_conflicts=True) builds one multi-row INSERT per ~60 rows under SQLite's
# parameter limit and assembles placeholders per row, which was most of an initial export's
# own cost (docs/performance.md, "Initial export"). Same statement on SQLite and PostgreSQL.
_KEY = ("mailbox_settings_id", "kind", "psa_id")
_UPDATED = (
    "folder", "exchange_id", "change_key", "psa_digest", "exchange_digest", "origin", "state",
    "exchange_start", "is_organizer", "ical_uid", "original_start", "updated_at",
)  # fmt: skip
_COLUMNS = (*_KEY, *_UPDATED, "created_at")


@functools.cache
def _upsert_sql() -> str:
    quote = connection.ops.quote_name
    return (
        f"INSERT INTO {quote(ItemLink._meta.db_table)} "
        f"({', '.join(quote(c) for c in _COLUMNS)}) VALUES ({', '.join(['%s'] * len(_COLUMNS))}) "
        f"ON CONFLICT ({', '.join(quote(c) for c in _KEY)}) DO UPDATE SET "
        + ", ".join(f"{quote(c)} = excluded.{quote(c)}" for c in _UPDATED)
    )


def _to_values(mailbox: MailboxSettings, link: Link, now: object) -> tuple[object, ...]:
    """One row's parameters in ``_COLUMNS`` order (``now``: adapted for the database)."""
    adapt = connection.ops.adapt_datetimefield_value
    return (
        mailbox.pk, link.key.kind.value, link.key.psa_id,
        folder_of(link.key.kind).value, link.exchange_id, link.change_key,
        str(link.psa_digest), str(link.exchange_digest), link.origin.value, link.state.value,
        adapt(link.exchange_start), link.is_organizer, link.ical_uid, adapt(link.original_start),
        now, now,
    )  # fmt: skip


def to_link(mailbox: MailboxSettings, row: ItemLink) -> Link:
    """The core's record of a stored link."""
    kind = ItemKind(row.kind)
    # A service call's key names the resource whose copy this is (the mailbox's).
    resource_id = mailbox.resource_id if kind is ItemKind.SERVICE_CALL else None
    return Link(
        key=PsaKey(kind, row.psa_id, resource_id),
        exchange_id=row.exchange_id,
        change_key=row.change_key,
        psa_digest=Digest.parse(row.psa_digest),
        exchange_digest=Digest.parse(row.exchange_digest),
        origin=Side(row.origin),
        state=LinkState(row.state),
        exchange_start=row.exchange_start,
        is_organizer=row.is_organizer,
        ical_uid=row.ical_uid,
        original_start=row.original_start,
    )


def load_public_baseline() -> dict[PsaKey, Link]:
    """Every link of the public contacts folder, in every state. One query."""
    return {link.key: link for link in map(_public_to_link, PublicFolderLink.objects.all())}


def save_public_links(changes: Mapping[PsaKey, Link | None]) -> None:
    """:func:`save_links` for the public contacts folder (same order, same query count)."""
    dropped = [key for key, link in changes.items() if link is None]
    for kind in {key.kind for key in dropped}:
        ids = [key.psa_id for key in dropped if key.kind is kind]
        PublicFolderLink.objects.filter(kind=kind, psa_id__in=ids).delete()
    rows = [_public_to_row(link) for link in changes.values() if link is not None]
    if rows:
        PublicFolderLink.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["kind", "psa_id"],
            update_fields=[
                "exchange_id", "change_key", "psa_digest", "exchange_digest", "origin", "state",
                "updated_at",
            ],
        )  # fmt: skip


def _public_to_link(row: PublicFolderLink) -> Link:
    return Link(
        key=PsaKey(ItemKind(row.kind), row.psa_id),
        exchange_id=row.exchange_id,
        change_key=row.change_key,
        psa_digest=Digest.parse(row.psa_digest),
        exchange_digest=Digest.parse(row.exchange_digest),
        origin=Side(row.origin),
        state=LinkState(row.state),
    )


def _public_to_row(link: Link) -> PublicFolderLink:
    return PublicFolderLink(
        kind=link.key.kind.value,
        psa_id=link.key.psa_id,
        exchange_id=link.exchange_id,
        change_key=link.change_key,
        psa_digest=str(link.psa_digest),
        exchange_digest=str(link.exchange_digest),
        origin=link.origin.value,
        state=link.state.value,
    )
