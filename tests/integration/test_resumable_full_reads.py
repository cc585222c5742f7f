"""Full reads (first sync, resync, expired state) are budgeted and resumable: each page is
planned and committed like an incremental one, a run stopped by its budget continues at the
next page, and "absent from the full read means gone" is decided when the read ends, through
the mass-delete guard (docs/sync-rules.md, "Scheduling, leases and budgets"). Over the ORM and
a MemoryBackend with small pages; every page "takes" 100 s of a pinned monotonic clock."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from exchange_ext import engine
from exchange_ext.backends.base import FolderKind
from exchange_ext.backends.memory import MemoryBackend, MemorySession
from exchange_ext.engine import cycle, leases
from exchange_ext.models import (
    ExchangeConfig,
    FolderSyncState,
    FullReadSeen,
    HeldDeletion,
    ItemLink,
    MailboxSettings,
    SyncRun,
)
from exchange_ext.sync.records import CalendarRecord
from psa.scheduling.models import Appointment
from tests import clock
from tests.builders import make_appointment, make_resource
from tests.clock import day

pytestmark = pytest.mark.django_db

OK, PARTIAL = SyncRun.Outcome.OK, SyncRun.Outcome.PARTIAL
#: Three pages of 100 s fit a run: the deadline is checked after each committed page.
BUDGET = 250


@pytest.fixture
def tech() -> MailboxSettings:
    ExchangeConfig.load()
    return MailboxSettings.objects.create(resource=make_resource("tech"), sync_enabled=True)


@pytest.fixture
def backend(tech) -> MemoryBackend:
    return MemoryBackend([tech.effective_mailbox], page_size=10)


@pytest.fixture
def reads(monkeypatch) -> list[str | None]:
    """Every ``read_changes`` state of the calendar, each page (of any folder) taking 100 s of
    the cycle's clock."""
    now, seen = [0.0], []
    real = MemorySession.read_changes
    monkeypatch.setattr(cycle.time, "monotonic", lambda: now[0])

    def slow(self, folder, state, window, known=None):
        now[0] += 100
        if folder is FolderKind.CALENDAR:
            seen.append(state)
        return real(self, folder, state, window, known)

    monkeypatch.setattr(MemorySession, "read_changes", slow)
    return seen


def sync(tech, backend, **kwargs) -> SyncRun:
    kwargs.setdefault("budget_seconds", BUDGET)
    return engine.run_sync(tech.pk, backend=backend, now=clock.now(), **kwargs)


def drain(tech, backend, limit: int = 20) -> list[SyncRun]:
    runs = [sync(tech, backend)]
    while runs[-1].outcome == PARTIAL and len(runs) < limit:
        runs.append(sync(tech, backend))
    return runs


def outlook_items(tech, backend, count: int) -> list[str]:
    ids = []
    for n in range(count):
        begin = day(1 + n % 6, f"{8 + n % 9:02d}:00")
        record = CalendarRecord(f"Visit {n:03d}", "", begin, begin + dt.timedelta(hours=1))
        ids.append(backend.put(tech.effective_mailbox, record))
    return ids


def full_reads(reads: list[str | None]) -> list[str | None]:
    return [state for state in reads if state is None or ":full:" in state]


def calendar(backend, tech) -> list:
    return backend.items_of(tech.effective_mailbox, FolderKind.CALENDAR)


def test_a_first_sync_of_100_items_spans_runs_and_never_reads_a_page_twice(tech, backend, reads):
    outlook_items(tech, backend, 100)
    runs = drain(tech, backend)
    assert [run.outcome for run in runs] == [PARTIAL] * 3 + [OK]
    assert all("time budget" in run.error for run in runs[:-1])
    # Ten pages, each read once (the last run also reads the quiet change feed once).
    assert len(full_reads(reads)) == 10 and len(set(full_reads(reads))) == 10
    assert Appointment.objects.count() == 100
    assert ItemLink.objects.filter(mailbox_settings=tech).count() == 100
    assert len({a.title for a in Appointment.objects.all()}) == 100
    assert not FullReadSeen.objects.exists()
    state = FolderSyncState.objects.get(mailbox_settings=tech, folder="calendar")
    assert state.full_read_since is not None and state.pass_base is None
    writes = backend.writes()
    assert sync(tech, backend).outcome == OK and backend.writes() == writes


def test_a_resumed_resync_adopts_tagged_items_on_later_pages(tech, backend, reads):
    for n in range(25):
        make_appointment(tech.resource, day(1 + n % 5, f"{8 + n % 9:02d}:00"), title=f"Job {n}")
    drain(tech, backend)
    assert len(calendar(backend, tech)) == 25
    ItemLink.objects.filter(mailbox_settings=tech).delete()  # a restored database
    MailboxSettings.objects.filter(pk=tech.pk).update(resync_requested_at=timezone.now())
    del reads[:]
    runs = drain(tech, backend)
    assert [run.outcome for run in runs] == [PARTIAL, OK]
    assert len(full_reads(reads)) == 3 and reads[0] is None  # begun once, then resumed
    assert len(calendar(backend, tech)) == 25  # every tagged copy adopted, none created
    assert ItemLink.objects.filter(mailbox_settings=tech).count() == 25
    assert Appointment.objects.count() == 25
    tech.refresh_from_db()
    assert tech.resync_requested_at is None  # served by the run that completed the read


def test_an_item_deleted_while_a_full_read_is_resumed_is_deleted_when_it_ends(tech, backend, reads):
    ids = outlook_items(tech, backend, 50)
    drain(tech, backend)
    assert Appointment.objects.count() == 50
    backend.expire_states()  # the server evicted the state: a full read of five pages
    assert sync(tech, backend).outcome == PARTIAL  # two pages listed
    assert FullReadSeen.objects.filter(mailbox_settings=tech).count() == 20
    late = ids[45]  # on the fifth page: not listed yet
    backend.remove(tech.effective_mailbox, late)
    assert Appointment.objects.count() == 50
    assert drain(tech, backend)[-1].outcome == OK
    assert Appointment.objects.count() == 49
    assert not ItemLink.objects.filter(exchange_id=late).exists()
    assert not HeldDeletion.objects.exists() and not FullReadSeen.objects.exists()


def test_a_full_read_that_finds_the_calendar_emptied_holds_its_deletions(tech, backend, reads):
    ids = outlook_items(tech, backend, 60)
    drain(tech, backend)
    for exchange_id in ids[:55]:  # emptied, but for five: a read of three pages of two
        backend.remove(tech.effective_mailbox, exchange_id)
    backend.page_size = 2
    MailboxSettings.objects.filter(pk=tech.pk).update(resync_requested_at=timezone.now())
    assert sync(tech, backend, budget_seconds=150).outcome == PARTIAL  # two pages listed
    assert Appointment.objects.count() == 60
    run = sync(tech, backend, budget_seconds=150)
    assert run.outcome == SyncRun.Outcome.GUARD_TRIPPED
    assert Appointment.objects.count() == 60  # nothing deleted
    assert HeldDeletion.objects.filter(state="held").count() == 55


def test_a_split_full_read_expands_the_recurring_window_once(tech, backend, reads):
    outlook_items(tech, backend, 30)
    starts = [day(n, "07:00") for n in (1, 2, 3)]
    backend.put_series(
        tech.effective_mailbox,
        CalendarRecord("Stand-up", "", starts[0], starts[0] + dt.timedelta(minutes=15)),
        starts,
    )
    runs = drain(tech, backend)
    assert [run.outcome for run in runs] == [PARTIAL, OK]
    assert sum(1 for name, _ in backend.calls if name == "read_window") == 1
    assert Appointment.objects.count() == 33


def test_a_long_run_renews_its_lease_and_a_claim_meanwhile_fails(tech, backend, monkeypatch):
    outlook_items(tech, backend, 50)
    offset = [dt.timedelta(0)]
    claims: list[int | None] = []

    class Clock:
        @staticmethod
        def now() -> dt.datetime:
            return timezone.now() + offset[0]

    monkeypatch.setattr(leases, "timezone", Clock)
    real = MemorySession.read_changes

    def slow(self, folder, state, window, known=None):
        offset[0] += dt.timedelta(seconds=200)  # far beyond the 300 s lease over five pages
        if len(claims) < 5:
            claims.append(leases.claim(tech.pk, 10))
        return real(self, folder, state, window, known)

    monkeypatch.setattr(MemorySession, "read_changes", slow)
    run = engine.run_sync(tech.pk, backend=backend, now=clock.now())
    assert run.outcome == OK
    assert claims == [None] * 5
    assert Appointment.objects.count() == 50


def test_renewing_is_fenced_by_the_token(tech):
    token = leases.claim(tech.pk, 10)
    assert token is not None
    leases.renew(tech.pk, token, 3600)
    tech.refresh_from_db()
    assert tech.lease_expires_at > timezone.now() + dt.timedelta(minutes=59)
    leases.renew(tech.pk, token, 5)  # never shortens
    tech.refresh_from_db()
    assert tech.lease_expires_at > timezone.now() + dt.timedelta(minutes=59)
    with pytest.raises(leases.StaleLease):
        leases.renew(tech.pk, token - 1, 3600)
