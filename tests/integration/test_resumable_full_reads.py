"""Full reads (first sync, resync, expired state) are budgeted and resumable: each page is
planned and committed like an incremental one, a run stopped by its budget continues at the
next page, and "absent from the full read means gone" is decided when the read ends, through
the mass-delete guard (docs/sync-rules.md, "Scheduling, leases and budgets"). Over the ORM and
a MemoryBackend with small pages; every page "takes" 100 s of a pinned monotonic clock."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import replace

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
from psa.audit.origin import Origin
from psa.scheduling.actions import do_delete_appointment, do_update_appointment
from psa.scheduling.models import Appointment
from tests import clock
from tests.builders import make_appointment, make_resource
from tests.clock import day
from tests.integration.audit_cursor import settled

pytestmark = pytest.mark.django_db

OK, PARTIAL = SyncRun.Outcome.OK, SyncRun.Outcome.PARTIAL
USER = Origin.by_system("tests")
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


# --- a full read's middle pages plan only the keys they touch (docs/performance.md) ----------


@pytest.fixture
def planned(monkeypatch) -> list[int]:
    """How many keys (links and PSA items) each plan of the cycle was handed."""
    sizes: list[int] = []
    real = cycle.plan

    def counting(baseline, psa, view, options, now):
        sizes.append(len(baseline.keys() | psa.keys()))
        return real(baseline, psa, view, options, now)

    monkeypatch.setattr(cycle, "plan", counting)
    return sizes


def test_a_full_read_plans_every_key_on_its_first_and_last_page_only(tech, backend, reads, planned):
    outlook_items(tech, backend, 100)
    drain(tech, backend)
    settled()
    backend.expire_states()  # a full read of ten pages, every item unchanged
    del planned[:]
    assert drain(tech, backend, limit=5)[-1].outcome == OK
    # The first and the last page plan the 100 keys; the eight between plan none (their
    # items are unchanged): not 100 keys a page, ten times over.
    assert planned == [100, 100], planned
    assert Appointment.objects.count() == 100 and not FullReadSeen.objects.exists()


def test_a_middle_page_plans_the_keys_of_the_items_it_lists_changed(tech, backend, reads, planned):
    ids = outlook_items(tech, backend, 100)
    drain(tech, backend)
    settled()
    backend.expire_states()
    for n in (35, 36):  # two items of the fourth page, edited in Outlook
        begin = day(1 + n % 6, f"{8 + n % 9:02d}:00")
        record = CalendarRecord(f"Visit {n:03d} (edited)", "", begin, begin + dt.timedelta(hours=1))
        backend.edit(tech.effective_mailbox, ids[n], record)
    del planned[:]
    drain(tech, backend, limit=5)
    assert planned[0] == planned[-1] == 100 and max(planned[1:-1]) <= 10, planned
    titles = set(Appointment.objects.values_list("title", flat=True))
    assert {"Visit 035 (edited)", "Visit 036 (edited)"} <= titles
    assert Appointment.objects.count() == 100


def test_another_protocols_ids_re_identify_items_on_every_page_of_a_split_full_read(
    tech, backend, reads
):
    outlook_items(tech, backend, 60)
    for n in range(20):  # and twenty the PSA exported, tagged
        make_appointment(tech.resource, day(1 + n % 5, f"{8 + n % 9:02d}:30"), title=f"Job {n}")
    drain(tech, backend)
    before = set(Appointment.objects.values_list("pk", "title"))
    assert len(before) == 80 and len(calendar(backend, tech)) == 80
    renamed = backend.reidentify(tech.effective_mailbox)  # new ids, same UIDs and tags
    writes = backend.writes()
    runs = drain(tech, backend)
    assert runs[-1].outcome == OK and len(runs) > 1  # the read spanned runs
    assert backend.writes() == writes  # nothing created, deleted or rewritten in Exchange
    assert set(Appointment.objects.values_list("pk", "title")) == before
    assert set(ItemLink.objects.values_list("exchange_id", flat=True)) == set(renamed.values())
    assert not HeldDeletion.objects.exists() and not FullReadSeen.objects.exists()


def test_psa_changes_made_while_a_full_read_is_resumed_reach_exchange(tech, backend, reads):
    for n in range(50):
        make_appointment(tech.resource, day(1 + n % 5, f"{8 + n % 9:02d}:00"), title=f"Job {n}")
    drain(tech, backend)
    backend.expire_states()  # a full read of five pages
    assert sync(tech, backend).outcome == PARTIAL  # two pages listed
    late = Appointment.objects.get(title="Job 47")  # on a page not read yet
    early = Appointment.objects.get(title="Job 2")  # on a page read already
    do_update_appointment(USER, late, title="Job 47 (moved)")
    do_update_appointment(USER, early, title="Job 2 (moved)")
    make_appointment(tech.resource, day(2, "18:00"), title="Job new")
    Appointment.objects.get(title="Job 9").delete()  # behind the audit trail: the daily
    assert drain(tech, backend)[-1].outcome == OK  # reconciliation's case, not this one's
    titles = sorted(item.record.subject for item in calendar(backend, tech))
    assert "Job 47 (moved)" in titles and "Job 2 (moved)" in titles
    assert titles.count("Job new") == 1 and "Job 47" not in titles and "Job 2" not in titles
    assert len(titles) == 51 - 1  # the last page's whole plan saw Job 9 gone from the PSA


def _world(tech, backend) -> tuple[set, set]:
    """What the resource sees: its PSA appointments and its Exchange calendar (title, start)."""
    psa = {(a.title, a.start) for a in Appointment.objects.filter(resource=tech.resource)}
    exchange = {(i.record.subject, i.record.start) for i in calendar(backend, tech)}
    return psa, exchange


def _unlucky_changes(tech, backend, rng: random.Random, ids: list[str], round_: int) -> None:
    """Outlook edits, deletions and moves (a new id, the same UID), and PSA edits, deletions
    and creates, chosen by ``rng``."""
    box = tech.effective_mailbox
    for exchange_id in rng.sample(ids, 6):
        ids.remove(exchange_id)
        stored = backend.find_stored(backend.mailboxes[box], exchange_id)
        action = rng.choice(["edit", "remove", "move"])
        if action == "edit":
            record = replace(stored.record, subject=f"{stored.record.subject} (Outlook {round_})")
            backend.edit(box, exchange_id, record)
            ids.append(exchange_id)
        elif action == "remove":
            backend.remove(box, exchange_id)
        else:
            backend.remove(box, exchange_id)
            ids.append(backend.put(box, stored.record, uid=stored.uid))
    # The PSA's own items (the same in both worlds whatever was read so far).
    mine = list(
        Appointment.objects.filter(resource=tech.resource, title__startswith="Job").order_by(
            "title"
        )
    )
    for appointment in rng.sample(mine, 4):
        if rng.random() < 0.5:
            do_update_appointment(USER, appointment, title=f"{appointment.title} (PSA {round_})")
        else:
            do_delete_appointment(USER, appointment)
    make_appointment(tech.resource, day(3, f"{10 + round_}:15"), title=f"New {round_}")


@pytest.mark.parametrize("seed", range(4))
def test_a_split_full_read_ends_where_a_full_read_in_one_page_ends(reads, seed):
    """Two resources, the same history: one's full reads span runs in pages of three, the
    other's read everything in one page (planned whole). Both end in the same state."""
    ExchangeConfig.load()
    worlds = []
    for name, page_size in (("split", 3), ("whole", 10_000)):
        tech = MailboxSettings.objects.create(resource=make_resource(name), sync_enabled=True)
        backend = MemoryBackend([tech.effective_mailbox], page_size=page_size)
        rng = random.Random(seed)
        ids = outlook_items(tech, backend, 30)
        for n in range(10):
            make_appointment(tech.resource, day(1 + n % 5, f"{8 + n % 9:02d}:30"), title=f"Job {n}")
        drain(tech, backend)
        backend.expire_states()  # a full read: ten pages for one, one page for the other
        _unlucky_changes(tech, backend, rng, ids, 1)
        sync(tech, backend)  # the split read stops after two pages
        _unlucky_changes(tech, backend, rng, ids, 2)
        runs = drain(tech, backend)  # the read ends; the changes made meanwhile follow
        runs += drain(tech, backend)  # (from the read's start: a replay, pages of three)
        assert runs[-1].outcome == OK, [(r.outcome, r.error, r.counts) for r in runs]
        quiet = sync(tech, backend)  # settled: a quiet cycle changes nothing
        assert (quiet.outcome, quiet.counts) == (OK, {})
        worlds.append(_world(tech, backend))

    (split_psa, split_exchange), (whole_psa, whole_exchange) = worlds
    assert split_psa == whole_psa and split_exchange == whole_exchange
    assert split_psa == split_exchange  # and each agrees with itself
