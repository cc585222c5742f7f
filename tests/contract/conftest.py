"""The backends the contract suite runs against, each behind a small driver.

A driver offers the backend under test plus what a person in Outlook would do to the mailbox
(``put``, ``edit``, ``remove``, ``put_series``, ``edit_occurrence``, ``remove_occurrence``),
so every contract test runs unchanged on:

- ``memory``: :class:`~exchange_ext.backends.memory.MemoryBackend`;
- ``ews``: :class:`~exchange_ext.backends.ews.backend.EwsBackend` against the in-process
  sandbox over real HTTPS with fatal schema validation, impersonating tech1 through
  ``svc-sync``. The "Outlook" edits go through a separate exchangelib account (FailFast), as
  a user's client.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from exchange_ext.backends.base import ExchangeBackend, FolderKind
from exchange_ext.backends.memory import MemoryBackend
from exchange_ext.sync.records import (
    ALL_GROUPS,
    CalendarRecord,
    PsaTag,
    Record,
    master_of,
    occurrence_id,
)

MAILBOX = "tech1@northwind.example"


class MemoryDriver:
    name = "memory"

    def __init__(self) -> None:
        self.backend: ExchangeBackend = MemoryBackend([MAILBOX], page_size=100)
        self.mailbox = MAILBOX

    @property
    def memory(self) -> MemoryBackend:
        assert isinstance(self.backend, MemoryBackend)
        return self.backend

    def put(self, record: Record, folder: FolderKind = FolderKind.CALENDAR,
            tag: PsaTag | None = None) -> str:  # fmt: skip
        return self.memory.put(self.mailbox, record, folder=folder, tag=tag)

    def edit(self, exchange_id: str, record: Record) -> None:
        self.memory.edit(self.mailbox, exchange_id, record)

    def remove(self, exchange_id: str) -> None:
        self.memory.remove(self.mailbox, exchange_id)

    def put_series(self, record: CalendarRecord, count: int) -> str:
        return self.memory.put_series(self.mailbox, record, daily_starts(record, count))

    def edit_occurrence(self, master_id: str, original: dt.datetime, record: Record) -> None:
        self.memory.edit(self.mailbox, occurrence_id(master_id, original), record)

    def remove_occurrence(self, master_id: str, original: dt.datetime) -> None:
        self.memory.remove(self.mailbox, occurrence_id(master_id, original))

    def meeting_messages(self) -> int:
        return self.memory.meeting_messages_sent


class EwsDriver:
    name = "ews"

    def __init__(self, handle: Any, page_size: int | None = None) -> None:
        from exchangelib import BASIC, IMPERSONATION, Account, Configuration, EWSTimeZone, FailFast

        from exchange_ext.backends.ews.backend import EwsBackend, EwsSettings, SessionCredentials
        from exchange_ext.backends.ews.endpoint import pinned_version

        self.handle = handle
        self.mailbox = MAILBOX
        self.backend = EwsBackend(
            EwsSettings(
                endpoint=handle.url,
                make_credentials=lambda: SessionCredentials("svc-sync", "sandbox-sync"),
                auth_type=BASIC,
                version=pinned_version("2016"),
                retry_budget_seconds=5.0,
                timeout_seconds=20.0,
                **({"sync_page_size": page_size} if page_size else {}),
            )
        )
        # "Outlook": the user's own client, independent of the backend's sessions.
        self.outlook = Account(
            MAILBOX,
            config=Configuration(
                service_endpoint=handle.url,
                credentials=SessionCredentials("svc-sync", "sandbox-sync"),
                auth_type=BASIC,
                version=pinned_version("2016"),
                retry_policy=FailFast(),
            ),
            autodiscover=False,
            access_type=IMPERSONATION,
            default_timezone=EWSTimeZone("UTC"),
        )

    def _folder(self, folder: FolderKind) -> Any:
        return self.outlook.calendar if folder is FolderKind.CALENDAR else self.outlook.contacts

    def put(self, record: Record, folder: FolderKind = FolderKind.CALENDAR,
            tag: PsaTag | None = None) -> str:  # fmt: skip
        from exchange_ext.backends.ews import items as ews_items

        ews_items.register_tag_property()
        item = ews_items.item_for(record, tag)
        item.account, item.folder = self.outlook, self._folder(folder)
        item.save()
        return str(item.id)

    def _fetch(self, exchange_id: str) -> Any:
        from exchangelib.properties import ItemId

        [item] = list(self.outlook.fetch([ItemId(id=exchange_id)]))
        return item

    def edit(self, exchange_id: str, record: Record) -> None:
        from exchange_ext.backends.ews import items as ews_items

        master_id = master_of(exchange_id)
        if master_id is not None:
            self.edit_occurrence(master_id, _original_start(exchange_id), record)
            return
        item = self._fetch(exchange_id)
        fresh = ews_items.item_for(record)
        names = ews_items.update_field_names(record, ALL_GROUPS)
        for name in names:
            setattr(item, name, getattr(fresh, name))
        item._start_timezone = getattr(fresh, "_start_timezone", None) or item._start_timezone
        item._end_timezone = getattr(fresh, "_end_timezone", None) or item._end_timezone
        item.save(update_fields=names)

    def remove(self, exchange_id: str) -> None:
        master_id = master_of(exchange_id)
        if master_id is not None:
            self.remove_occurrence(master_id, _original_start(exchange_id))
            return
        self._fetch(exchange_id).delete()

    def expire_states(self) -> None:
        # The sandbox signs its sync states with a per-store secret (sandbox/store.py): a new
        # secret invalidates every state issued, as a server-side state eviction does.
        import secrets

        self.handle.state.store._secret = secrets.token_bytes(32)

    def put_series(self, record: CalendarRecord, count: int) -> str:
        return self.create_series(record, daily_starts(record, count))

    def create_series(self, record: CalendarRecord, starts: Sequence[dt.datetime]) -> str:
        """A daily series with one occurrence per start (evenly spaced whole days in the
        record's zone, as Outlook makes it: the dates are local, the time of day is wall-clock)."""
        from exchangelib.recurrence import DailyPattern, Recurrence

        from exchange_ext.backends.ews import items as ews_items

        dates = [_local(start, record.time_zone).date() for start in starts]
        days = (dates[1] - dates[0]).days if len(dates) > 1 else 1
        item = ews_items.item_for(record)
        item.recurrence = Recurrence(
            pattern=DailyPattern(interval=days), start=dates[0], number=len(starts)
        )
        item.account, item.folder = self.outlook, self.outlook.calendar
        item.save()
        return str(item.id)

    def _occurrence(self, original: dt.datetime) -> Any:
        from exchangelib import EWSTimeZone

        from exchange_ext.backends.ews.items import ews_datetime

        utc = EWSTimeZone("UTC")
        view = self.outlook.calendar.view(
            start=ews_datetime(original - dt.timedelta(days=2), utc),
            end=ews_datetime(original + dt.timedelta(days=2), utc),
        )
        return next(o for o in view if o.original_start == original)

    def edit_occurrence(self, master_id: str, original: dt.datetime, record: Record) -> None:
        from exchange_ext.backends.ews import items as ews_items

        occurrence = self._occurrence(original)
        fresh = ews_items.item_for(record)
        for name in ("subject", "start", "end"):
            setattr(occurrence, name, getattr(fresh, name))
        occurrence.save(update_fields=["subject", "start", "end"])

    def remove_occurrence(self, master_id: str, original: dt.datetime) -> None:
        self._occurrence(original).delete()

    def meeting_messages(self) -> int:
        return len(self.handle.state.outbox.messages)


class GraphIdsDriver(EwsDriver):
    """The EWS driver ("Outlook" over EWS on the shared store) for a backend reading through
    Graph, whose ids are not EWS ids: what it returns are Graph ids, what it is given (the
    backend's ids, occurrence ids built on a Graph master id) is mapped back to EWS ids."""

    name = "graph"

    def put(self, record: Record, folder: FolderKind = FolderKind.CALENDAR,
            tag: PsaTag | None = None) -> str:  # fmt: skip
        return graph_id(super().put(record, folder, tag))

    def edit(self, exchange_id: str, record: Record) -> None:
        super().edit(ews_id(exchange_id), record)

    def remove(self, exchange_id: str) -> None:
        super().remove(ews_id(exchange_id))

    def create_series(self, record: CalendarRecord, starts: Sequence[dt.datetime]) -> str:
        # (Occurrences are found by their original start: the master's id is not needed.)
        return graph_id(super().create_series(record, starts))


def graph_id(store_id: str) -> str:
    from exchange_ext.sandbox.graph import ids

    return ids.graph_id(store_id)


def ews_id(exchange_id: str) -> str:
    """The EWS id of a backend id read through Graph (occurrence ids keep their start)."""
    from exchange_ext.sandbox.graph import ids

    master_id = master_of(exchange_id)
    if master_id is None:
        return ids.store_id(exchange_id)
    return occurrence_id(ids.store_id(master_id), _original_start(exchange_id))


def _local(moment: dt.datetime, time_zone: str) -> dt.datetime:
    return moment.astimezone(ZoneInfo(time_zone))


def daily_starts(record: CalendarRecord, count: int) -> list[dt.datetime]:
    """The starts of a daily series of ``count`` from ``record``: the same wall-clock time on
    consecutive days in the record's zone (23 or 25 hours apart across a daylight-saving
    change), as UTC instants."""
    first = _local(record.start, record.time_zone)
    return [(first + dt.timedelta(days=n)).astimezone(dt.UTC) for n in range(count)]


def _original_start(exchange_id: str) -> dt.datetime:
    text = exchange_id.rpartition("|")[2]
    return dt.datetime.strptime(text, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)


_shared: list[Any] = []


def shared_sandbox() -> Any:
    """One sandbox per test process (fatal schema validation), started on first use."""
    if not _shared:
        from exchange_ext.sandbox.server import load_config, start_sandbox

        cert_dir = Path(tempfile.mkdtemp(prefix="contract-sandbox-"))
        handle = start_sandbox(load_config(), tls="ca", port=0, validate="fatal", cert_dir=cert_dir)
        atexit.register(handle.stop)
        _shared.append(handle)
    return _shared[0]


@contextlib.contextmanager
def ews_driver(
    page_size: int | None = None, driver_class: type[EwsDriver] = EwsDriver
) -> Iterator[EwsDriver]:
    """An EwsDriver on the shared sandbox, reset; fails on any response the schema rejects."""
    from exchangelib.protocol import close_connections

    from exchange_ext.backends.ews.tls import install_exchangelib_trust
    from exchange_ext.backends.tls import CA_BUNDLE_ENV

    handle = shared_sandbox()
    handle.state.reset()
    previous = os.environ.get(CA_BUNDLE_ENV)
    os.environ[CA_BUNDLE_ENV] = str(handle.ca_file)
    install_exchangelib_trust()
    try:
        yield driver_class(handle, page_size)
    finally:
        close_connections()
        if previous is None:
            os.environ.pop(CA_BUNDLE_ENV, None)
        else:
            os.environ[CA_BUNDLE_ENV] = previous
    failures = handle.state.validator.counts["response"]
    handle.state.validator.counts["response"] = 0
    assert not failures, f"responses failed schema validation: {handle.state.validator.report()}"


@pytest.fixture(params=["memory", "ews"])
def driver(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh mailbox behind each backend (the sandbox is reset between tests)."""
    if request.param == "memory":
        yield MemoryDriver()
        return
    with ews_driver() as ews:
        yield ews


def record_without_zone(record: Record) -> Record:
    """Records compared as the core compares them: instants, not the zone they are written in."""
    from dataclasses import replace

    return replace(record, time_zone="UTC") if isinstance(record, CalendarRecord) else record


def same_records(left: Sequence[Record], right: Sequence[Record]) -> bool:
    return [record_without_zone(r) for r in left] == [record_without_zone(r) for r in right]
