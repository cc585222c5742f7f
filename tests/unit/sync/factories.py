"""Small builders of sync-core values for the unit tests (plain data, no Django).

Times are placed relative to the test's pinned clock (:func:`tests.clock.now`); the planner and
the harness are run at that same instant, so what a test expects never depends on the date.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from exchange_ext.sync.digest import digest_record
from exchange_ext.sync.records import (
    CalendarRecord,
    ContactRecord,
    ExchangeItem,
    ItemKind,
    Link,
    PsaItem,
    PsaKey,
    PsaTag,
    Record,
    Side,
    SyncOptions,
)
from tests import clock

INSTALLATION = "inst-1"
OPTIONS = SyncOptions(installation_id=INSTALLATION, base_url="https://psa.example")


def at(days: float = 1, hours: float = 0) -> dt.datetime:
    """An instant ``days`` and ``hours`` after the test's pinned clock."""
    return clock.now() + dt.timedelta(days=days, hours=hours)


def calendar(
    subject: str = "Meeting",
    *,
    days: float = 1,
    hours: float = 1,
    start: dt.datetime | None = None,
    **changes: object,
) -> CalendarRecord:
    """A one-hour-long (by default) calendar record from ``start`` (default: ``days`` after the
    pinned clock)."""
    start = at(days) if start is None else start
    record = CalendarRecord(
        subject=subject, body="", start=start, end=start + dt.timedelta(hours=hours)
    )
    return replace(record, **changes)  # type: ignore[arg-type]


def contact(surname: str = "Doe", **changes: object) -> ContactRecord:
    return replace(ContactRecord(given_name="Jane", surname=surname), **changes)  # type: ignore[arg-type]


def key(
    psa_id: int = 1, kind: ItemKind = ItemKind.APPOINTMENT, resource_id: int | None = None
) -> PsaKey:
    return PsaKey(kind, psa_id, resource_id)


def psa_item(k: PsaKey, record: Record, origin: Side = Side.PSA) -> PsaItem:
    return PsaItem(k, record, origin)


def ours(
    k: PsaKey, record: Record, exchange_id: str = "ex1", change_key: str = "ck1"
) -> ExchangeItem:
    """An Exchange item this installation wrote for ``k``."""
    return ExchangeItem(exchange_id, change_key, record, psa_tag=PsaTag(INSTALLATION, k))


def foreign(
    record: Record, exchange_id: str = "ex9", change_key: str = "ck9", **changes: object
) -> ExchangeItem:
    """An Exchange item nobody here wrote."""
    return replace(ExchangeItem(exchange_id, change_key, record), **changes)  # type: ignore[arg-type]


def linked(
    k: PsaKey,
    psa_record: Record,
    exchange_record: Record | None = None,
    *,
    exchange_id: str = "ex1",
    change_key: str = "ck1",
    origin: Side = Side.PSA,
    **changes: object,
) -> Link:
    """The baseline after both sides were synced holding these records."""
    exchange_record = exchange_record if exchange_record is not None else psa_record
    start = exchange_record.start if isinstance(exchange_record, CalendarRecord) else None
    link = Link(
        k,
        exchange_id,
        change_key,
        digest_record(psa_record),
        digest_record(exchange_record),
        origin,
        exchange_start=start,
    )
    return replace(link, **changes)  # type: ignore[arg-type]
