"""The mass-delete guard counts a whole pass of the change feed, holds what it stops, and
waits for an administrator's Confirm deletions or Restore (docs/sync-rules.md, "Mass-delete
guard"). Over the ORM and a MemoryBackend with small pages, so a pass spans many pages."""

from __future__ import annotations

import datetime as dt

import pytest

from exchange_ext import engine
from exchange_ext.backends.base import FolderKind
from exchange_ext.backends.memory import MemoryBackend
from exchange_ext.engine import held
from exchange_ext.models import ExchangeConfig, HeldDeletion, ItemLink, MailboxSettings, SyncRun
from exchange_ext.sync.records import CalendarRecord
from psa.audit.origin import Origin
from psa.scheduling.actions import do_delete_appointment
from psa.scheduling.models import Appointment
from tests import clock
from tests.builders import make_appointment, make_resource
from tests.clock import day

pytestmark = pytest.mark.django_db
USER = Origin.by_system("tests")


@pytest.fixture
def tech():
    ExchangeConfig.load()
    resource = make_resource("tech")
    return MailboxSettings.objects.create(resource=resource, sync_enabled=True)


def backend_for(tech, page_size: int) -> MemoryBackend:
    return MemoryBackend([tech.effective_mailbox], page_size=page_size)


def sync(tech, backend, **kwargs) -> SyncRun:
    return engine.run_sync(tech.pk, backend=backend, now=kwargs.pop("now", clock.now()), **kwargs)


def outlook_items(tech, backend, count: int) -> list[str]:
    """``count`` appointments made in Outlook over the coming days."""
    ids = []
    for n in range(count):
        begin = day(1 + n % 6, f"{8 + n % 9:02d}:00")
        record = CalendarRecord(f"Visit {n:03d}", "", begin, begin + dt.timedelta(hours=1))
        ids.append(backend.put(tech.effective_mailbox, record))
    return ids


def thirty_of_forty_held(tech) -> tuple[MemoryBackend, list[str]]:
    """40 imported Outlook appointments, 30 of them deleted in Outlook at once: held."""
    backend = backend_for(tech, page_size=10)
    ids = outlook_items(tech, backend, 40)
    drain(tech, backend)
    for exchange_id in ids[:30]:
        backend.remove(tech.effective_mailbox, exchange_id)
    assert drain(tech, backend).outcome == SyncRun.Outcome.GUARD_TRIPPED
    return backend, ids


def drain(tech, backend, runs: int = 10) -> SyncRun:
    run = sync(tech, backend)
    for _ in range(runs):
        if run.outcome != SyncRun.Outcome.PARTIAL:
            break
        run = sync(tech, backend)
    return run


def test_deleting_a_whole_calendar_in_outlook_deletes_nothing_page_by_page(tech):
    backend = backend_for(tech, page_size=10)
    ids = outlook_items(tech, backend, 120)
    assert drain(tech, backend).outcome == SyncRun.Outcome.OK
    assert Appointment.objects.count() == 120
    for exchange_id in ids:
        backend.remove(tech.effective_mailbox, exchange_id)
    run = drain(tech, backend)
    assert run.outcome == SyncRun.Outcome.GUARD_TRIPPED
    assert Appointment.objects.count() == 120  # not one of twelve pages of deletes applied
    tech.refresh_from_db()
    assert tech.status == "held" and "Held 120 deletions" in tech.last_error
    assert HeldDeletion.objects.filter(state="held").count() == 120


def test_a_pass_split_across_runs_by_the_budget_is_counted_as_one(tech, monkeypatch):
    backend = backend_for(tech, page_size=10)
    ids = outlook_items(tech, backend, 60)
    drain(tech, backend)
    for exchange_id in ids:
        backend.remove(tech.effective_mailbox, exchange_id)
    pages = {"n": 0}
    real = backend.open_session

    def one_page_per_run(mailbox):
        session = real(mailbox)
        read = session.read_changes

        def read_changes(folder, state, window, known=None):
            page = read(folder, state, window, known)
            pages["n"] += 1
            return page

        session.read_changes = read_changes
        return session

    monkeypatch.setattr(backend, "open_session", one_page_per_run)
    monkeypatch.setattr(engine.cycle, "MAX_PAGES_PER_FOLDER", 1)
    runs = [sync(tech, backend) for _ in range(8)]
    assert Appointment.objects.count() == 60
    assert runs[-1].outcome == SyncRun.Outcome.GUARD_TRIPPED and pages["n"] >= 6


def test_ordinary_deletes_within_the_limit_are_applied_when_the_pass_ends(tech):
    backend = backend_for(tech, page_size=3)
    ids = outlook_items(tech, backend, 40)
    drain(tech, backend)
    for exchange_id in ids[:7]:
        backend.remove(tech.effective_mailbox, exchange_id)
    run = drain(tech, backend)
    assert run.outcome == SyncRun.Outcome.OK
    assert Appointment.objects.count() == 33
    assert not HeldDeletion.objects.exists()
    tech.refresh_from_db()
    assert tech.status == "ok"


def test_creates_and_updates_go_on_while_deletions_are_held(tech):
    backend = backend_for(tech, page_size=10)
    ids = outlook_items(tech, backend, 40)
    drain(tech, backend)
    for exchange_id in ids:
        backend.remove(tech.effective_mailbox, exchange_id)
    drain(tech, backend)
    make_appointment(tech.resource, day(2, "07:00"), title="New in the PSA")
    begin = day(3, "18:00")
    backend.put(tech.effective_mailbox, CalendarRecord("New in Outlook", "", begin,
                                                       begin + dt.timedelta(hours=1)))  # fmt: skip
    run = drain(tech, backend)
    assert run.outcome == SyncRun.Outcome.GUARD_TRIPPED  # still held: nobody decided
    assert Appointment.objects.filter(title="New in Outlook").exists()
    subjects = {i.record.subject for i in backend.items_of(tech.effective_mailbox)}
    assert "New in the PSA" in subjects
    assert Appointment.objects.count() == 42


def test_confirm_deletions_applies_exactly_the_held_set(tech):
    backend, ids = thirty_of_forty_held(tech)
    shown = held.summary(tech)
    assert shown["total"] == 30 and len(shown["titles"]) == held.SHOWN_TITLES
    # After the administrator looked, one more item goes: it is not part of what was confirmed.
    backend.remove(tech.effective_mailbox, ids[30])
    assert held.decide(tech, shown["ids"], HeldDeletion.State.CONFIRMED) == 30
    run = drain(tech, backend)
    assert Appointment.objects.count() == 10 - 1  # the 30 confirmed, then the new one (1 ≤ limit)
    assert run.outcome == SyncRun.Outcome.OK
    tech.refresh_from_db()
    assert tech.status == "ok" and not HeldDeletion.objects.exists()


def test_restore_deletes_nothing_and_keeps_imported_items_unlinked(tech):
    backend, _ = thirty_of_forty_held(tech)
    held.decide(tech, held.summary(tech)["ids"], HeldDeletion.State.RESTORED)
    run = drain(tech, backend)
    assert run.outcome == SyncRun.Outcome.OK
    assert Appointment.objects.count() == 40
    assert ItemLink.objects.filter(state="unlinked").count() == 30
    tech.refresh_from_db()
    assert tech.status == "ok"
    assert drain(tech, backend).outcome == SyncRun.Outcome.OK  # and it stays that way
    assert Appointment.objects.count() == 40


def test_restore_exports_psa_items_again_and_keeps_exchange_copies(tech):
    backend = backend_for(tech, page_size=10)
    for n in range(30):
        make_appointment(tech.resource, day(1 + n % 5, f"{8 + n % 9:02d}:00"), title=f"V{n}")
    drain(tech, backend)
    exported = [i.exchange_id for i in backend.items_of(tech.effective_mailbox)]
    for exchange_id in exported:  # Outlook loses all of them
        backend.remove(tech.effective_mailbox, exchange_id)
    drain(tech, backend)
    assert held.held_count(tech) == 30
    held.decide(tech, held.summary(tech)["ids"], HeldDeletion.State.RESTORED)
    drain(tech, backend)
    drain(tech, backend)
    calendar = backend.items_of(tech.effective_mailbox, FolderKind.CALENDAR)
    assert sorted(i.record.subject for i in calendar) == sorted(f"V{n}" for n in range(30))


def test_a_decision_on_rows_no_longer_held_changes_nothing(tech):
    assert held.decide(tech, [12345], HeldDeletion.State.CONFIRMED) == 0


def one_psa_deletion_left_held(tech) -> tuple[MemoryBackend, HeldDeletion]:
    """40 exported appointments, 30 deleted in the PSA at once (held), 29 of them confirmed."""
    backend = backend_for(tech, page_size=10)
    for n in range(40):
        make_appointment(tech.resource, day(1 + n % 5, f"{8 + n % 9:02d}:00"), title=f"V{n}")
    drain(tech, backend)
    for appointment in Appointment.objects.order_by("pk")[:30]:
        do_delete_appointment(USER, appointment)
    assert drain(tech, backend).outcome == SyncRun.Outcome.GUARD_TRIPPED
    rows = list(HeldDeletion.objects.order_by("pk"))
    assert len(rows) == 30
    held.decide(tech, [row.pk for row in rows[:29]], HeldDeletion.State.CONFIRMED)
    drain(tech, backend)
    [last] = HeldDeletion.objects.all()
    assert last.state == HeldDeletion.State.HELD and len(calendar(backend, tech)) == 11
    return backend, last


def test_a_held_deletion_stays_held_when_outlook_touches_its_item(tech):
    """Outlook moves a held item's change key (a dismissed reminder): the page that reads it
    keeps the new version for the deletion, but that is no sign of life — the deletion stays
    held for the administrator, even when it is the folder's last one, and Confirm then
    deletes it without a conflict."""
    backend, last = one_psa_deletion_left_held(tech)
    backend.bump_change_key(tech.effective_mailbox, last.exchange_id)
    drain(tech, backend)
    [still] = HeldDeletion.objects.all()
    assert still.state == HeldDeletion.State.HELD and len(calendar(backend, tech)) == 11

    held.decide(tech, [still.pk], HeldDeletion.State.CONFIRMED)
    assert drain(tech, backend).outcome == SyncRun.Outcome.OK
    assert len(calendar(backend, tech)) == 10 and not HeldDeletion.objects.exists()


def test_a_held_deletion_stays_held_when_its_item_is_found_under_a_new_id(tech):
    """EWS ⇄ Graph: every id changes and the folder is read in full again; the held item is
    re-identified (relinked) and still deleted by its page: it stays held."""
    backend, _ = one_psa_deletion_left_held(tech)
    renamed = backend.reidentify(tech.effective_mailbox)
    drain(tech, backend)
    [still] = HeldDeletion.objects.all()
    assert still.state == HeldDeletion.State.HELD and len(calendar(backend, tech)) == 11
    assert still.exchange_id in renamed.values()


def calendar(backend, tech) -> list:
    return backend.items_of(tech.effective_mailbox, FolderKind.CALENDAR)
