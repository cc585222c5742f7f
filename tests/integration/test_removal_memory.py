"""Remove synced items over the ORM and a MemoryBackend (docs/sync-rules.md, "Removing synced
items"): only what the extension wrote goes, the chosen types stay off, the lease keeps it away
from a running sync, and whatever Exchange refuses stays linked and listed."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from exchange_ext import engine
from exchange_ext.backends.base import FolderKind, Unavailable
from exchange_ext.backends.memory import MemoryBackend, MemorySession
from exchange_ext.engine import leases
from exchange_ext.engine.removal import removable_counts, run_removal
from exchange_ext.jobs import removals
from exchange_ext.models import ExchangeConfig, ItemLink, MailboxSettings, SyncLogEntry, SyncRun
from exchange_ext.sync.records import CalendarRecord, ItemKind
from tests import clock
from tests.builders import (
    make_account,
    make_appointment,
    make_contact,
    make_resource,
    make_service_call,
    make_todo,
)
from tests.clock import day

pytestmark = pytest.mark.django_db

ALL = frozenset(ItemKind)
Outcome = SyncRun.Outcome


@pytest.fixture
def tech() -> MailboxSettings:
    ExchangeConfig.load()
    resource = make_resource("tech")
    return MailboxSettings.objects.create(
        resource=resource, sync_enabled=True, mailbox=resource.email
    )


@pytest.fixture
def backend(tech) -> MemoryBackend:
    return MemoryBackend([tech.effective_mailbox])


def event(subject: str, begin: dt.datetime, hours: float = 1) -> CalendarRecord:
    return CalendarRecord(subject, "", begin, begin + dt.timedelta(hours=hours))


def sync(mailbox: MailboxSettings, backend: MemoryBackend) -> SyncRun:
    return engine.run_sync(mailbox.pk, backend=backend, now=clock.now())


def remove(mailbox, backend, kinds=ALL, **kwargs) -> SyncRun:
    removals.request_removal(mailbox, kinds)
    return remove_again(mailbox, backend, **kwargs)


def remove_again(mailbox, backend, **kwargs) -> SyncRun:
    run = run_removal(mailbox.pk, backend=backend, **kwargs)
    assert run is not None
    mailbox.refresh_from_db()
    return run


def stored(backend: MemoryBackend, mailbox: MailboxSettings):
    return backend.mailboxes[mailbox.effective_mailbox].items


def calendar(backend, mailbox) -> list[str]:
    items = backend.items_of(mailbox.effective_mailbox, FolderKind.CALENDAR)
    return sorted(item.record.subject for item in items)


def contacts(backend, mailbox) -> list[str]:
    items = backend.items_of(mailbox.effective_mailbox, FolderKind.CONTACTS)
    return sorted(item.record.given_name for item in items)


def kinds_linked(mailbox) -> list[tuple[str, str]]:
    rows = ItemLink.objects.filter(mailbox_settings=mailbox).values_list("kind", "origin")
    return sorted(rows)


@pytest.fixture
def synced(tech, backend) -> dict[str, str]:
    """One of each kind exported, one Outlook appointment imported; then a user's untagged
    copy of the exported appointment. Returns subject → Exchange id of the calendar."""
    make_appointment(tech.resource, day(1, "09:00"), title="Visit")
    make_service_call([tech.resource], day(2, "08:00"), account=make_account("Contoso"))
    make_todo(tech.resource, day(1, "14:00"), description="Call back")
    make_contact(make_account(account_manager=tech.resource), first_name="Ann")
    backend.put(tech.effective_mailbox, event("Dentist", day(3, "10:00")))
    run = sync(tech, backend)
    assert run.outcome == Outcome.OK, run.error
    assert run.counts == {
        "appointment": {"exchange": {"created": 1}, "psa": {"created": 1}},
        "service_call": {"exchange": {"created": 1}},
        "todo": {"exchange": {"created": 1}},
        "contact": {"exchange": {"created": 1}},
    }
    backend.put(tech.effective_mailbox, event("Visit", day(1, "09:00")))  # "copy" in Outlook
    items = backend.items_of(tech.effective_mailbox, FolderKind.CALENDAR)
    return {item.record.subject: item.exchange_id for item in items if item.psa_tag}


def test_removing_everything_deletes_only_the_extensions_writes_and_leaves_the_sync_off(
    tech, backend, synced
):
    assert removable_counts(tech) == dict.fromkeys(ItemKind, 1)
    run = remove(tech, backend)
    assert run.outcome == Outcome.OK, run.error
    assert run.trigger == SyncRun.Trigger.REMOVAL
    assert run.counts == {kind.value: {"exchange": {"deleted": 1}} for kind in ItemKind}
    assert run.exchange_summary == "4 deleted"
    assert calendar(backend, tech) == ["Dentist", "Visit"]  # imported, and the user's copy
    assert not any(item.psa_tag for item in backend.items_of(tech.effective_mailbox))
    assert contacts(backend, tech) == []
    assert kinds_linked(tech) == [("appointment", "exchange")]
    assert not tech.sync_enabled
    assert (tech.removal_kinds, tech.removal_requested_at) == ("", None)
    assert backend.meeting_messages_sent == 0
    # A sync run re-creates nothing: the resource's sync is off.
    writes = backend.writes()
    assert sync(tech, backend).outcome == Outcome.SKIPPED
    assert backend.writes() == writes
    assert calendar(backend, tech) == ["Dentist", "Visit"]


def test_removing_one_type_removes_only_that_type_and_turns_only_that_type_off(
    tech, backend, synced
):
    run = remove(tech, backend, {ItemKind.SERVICE_CALL})
    assert run.counts == {"service_call": {"exchange": {"deleted": 1}}}
    assert "Service call: Contoso" not in calendar(backend, tech)
    assert len(calendar(backend, tech)) == 4 and contacts(backend, tech) == ["Ann"]
    assert not tech.export_service_calls
    assert tech.sync_enabled and tech.export_appointments and tech.export_todos
    assert tech.export_contacts and tech.import_appointments
    assert removable_counts(tech)[ItemKind.SERVICE_CALL] == 0
    # The next syncs put nothing back (the user's copy is imported, as any Outlook item).
    run = sync(tech, backend)
    assert run.counts == {"appointment": {"psa": {"created": 1}}}, run.counts
    assert sync(tech, backend).counts == {}
    assert "Service call: Contoso" not in calendar(backend, tech)


def test_an_item_whose_tag_is_missing_or_foreign_is_never_deleted(tech, backend, synced):
    items = stored(backend, tech)
    visit = items[synced["Visit"]]
    visit.tag = f"{'0' * 8}-other-installation/{visit.tag.rpartition('/')[2]}"
    [todo_id] = [i for subject, i in synced.items() if "Call back" in subject]
    items[todo_id].tag = None
    run = remove(tech, backend, {ItemKind.APPOINTMENT, ItemKind.TODO})
    assert run.outcome == Outcome.OK, run.error
    assert synced["Visit"] in items and todo_id in items  # left in the mailbox
    # Not ours any more: counted as gone (not deleted), and no longer linked.
    assert run.counts == {
        "appointment": {"exchange": {"gone": 1}},
        "todo": {"exchange": {"gone": 1}},
    }
    assert run.exchange_summary == "—"
    assert removable_counts(tech)[ItemKind.APPOINTMENT] == 0


def test_an_item_already_gone_from_exchange_counts_as_removed(tech, backend, synced):
    backend.remove(tech.effective_mailbox, synced["Visit"])
    run = remove(tech, backend, {ItemKind.APPOINTMENT})
    assert (run.outcome, run.errors) == (Outcome.OK, 0)
    assert run.counts == {"appointment": {"exchange": {"gone": 1}}}
    assert kinds_linked(tech).count(("appointment", "psa")) == 0


def test_a_sync_holding_the_lease_makes_the_removal_wait_and_it_runs_once_the_sync_ends(
    tech, backend, synced
):
    token = leases.claim(tech.pk, 60)  # what a running sync holds
    assert token is not None
    run = remove(tech, backend)
    assert run.outcome == Outcome.SKIPPED
    assert "waits for it" in run.error
    assert len(calendar(backend, tech)) == 5 and contacts(backend, tech) == ["Ann"]
    assert tech.removal_requested_at is not None  # still pending
    MailboxSettings.objects.filter(pk=tech.pk).update(removal_queued_at=None)
    assert removals.queue_pending_removals() == []  # not beside the sync
    leases.release(tech.pk, token)
    assert removals.queue_pending_removals() == [tech.pk]
    assert removals.queue_pending_removals() == []  # one queued task at a time
    run = remove_again(tech, backend)
    assert run.outcome == Outcome.OK
    assert calendar(backend, tech) == ["Dentist", "Visit"]
    assert tech.removal_requested_at is None
    assert run_removal(tech.pk, backend=backend) is None  # served: a late task does nothing


def test_a_removal_takes_the_lease_so_no_sync_runs_beside_it(tech, backend, synced):
    syncs: list[SyncRun] = []

    class SyncingMidway(MemorySession):
        def delete(self, folder, deletions):
            syncs.append(sync(tech, backend))  # a worker starts a sync now
            return super().delete(folder, deletions)

    backend.open_session = lambda address: SyncingMidway(backend, backend.mailboxes[address])
    remove(tech, backend, {ItemKind.TODO})
    assert [run.outcome for run in syncs] == [Outcome.SKIPPED]


def test_a_copy_edited_in_outlook_during_the_removal_stays_linked_and_is_listed(
    tech, backend, synced
):
    address = tech.effective_mailbox

    class OutlookEditsMidway(MemorySession):
        def find_by_tag(self, folder, tags):
            found = super().find_by_tag(folder, tags)
            if folder is FolderKind.CALENDAR:
                edited = dataclasses.replace(stored(backend, tech)[synced["Visit"]].record)
                backend.edit(address, synced["Visit"], edited)  # a new change key
            return found

    backend.open_session = lambda mailbox: OutlookEditsMidway(backend, backend.mailboxes[mailbox])
    run = remove(tech, backend, {ItemKind.APPOINTMENT, ItemKind.TODO})
    assert (run.outcome, run.errors) == (Outcome.PARTIAL, 1)
    assert run.counts == {"todo": {"exchange": {"deleted": 1}}}
    assert synced["Visit"] in stored(backend, tech)
    assert removable_counts(tech)[ItemKind.APPOINTMENT] == 1  # still linked
    entry = SyncLogEntry.objects.get(run=run)
    assert entry.psa_key.startswith("appointment:") and entry.exchange_id == synced["Visit"]
    assert "changed in Exchange while we deleted it" in entry.message
    assert tech.removal_requested_at is None and not tech.export_appointments
    # Repeating the action removes it.
    del backend.open_session
    run = remove(tech, backend, {ItemKind.APPOINTMENT})
    assert run.counts == {"appointment": {"exchange": {"deleted": 1}}}
    assert synced["Visit"] not in stored(backend, tech)


def test_a_failed_delete_call_keeps_the_batch_linked_lists_it_and_the_action_can_be_repeated(
    tech, backend, synced
):
    backend.fail_next(Unavailable("connection reset"), operations=["delete"])
    run = remove(tech, backend)
    assert run.outcome == Outcome.FAILED
    assert "could not be reached" in run.error
    # The calendar batch went first and failed whole: its three copies stay, linked, listed.
    assert len(calendar(backend, tech)) == 5 and contacts(backend, tech) == ["Ann"]
    listed = sorted(SyncLogEntry.objects.filter(run=run).values_list("kind", flat=True))
    assert listed == ["appointment", "service_call", "todo"] and run.errors == 3
    assert sum(removable_counts(tech).values()) == 4
    assert tech.removal_requested_at is None  # reported, not retried blindly
    assert not tech.sync_enabled  # the sync stays off: nothing re-creates them meanwhile
    run = remove(tech, backend)
    assert run.outcome == Outcome.OK
    assert calendar(backend, tech) == ["Dentist", "Visit"] and contacts(backend, tech) == []


def test_a_large_mailbox_is_removed_in_budgeted_runs_that_each_make_progress(tech, backend):
    for n in range(45):
        make_todo(tech.resource, day(1 + n % 5, "14:00"), description=f"Call {n}")
    assert sync(tech, backend).counts == {"todo": {"exchange": {"created": 45}}}
    removals.request_removal(tech, {ItemKind.TODO})
    outcomes = []
    for _ in range(5):
        run = run_removal(tech.pk, backend=backend, budget_seconds=0)
        if run is None:
            break
        outcomes.append((run.outcome, run.side_total("exchange", "deleted")))
    assert outcomes == [(Outcome.PARTIAL, 20), (Outcome.PARTIAL, 20), (Outcome.OK, 5)]
    assert calendar(backend, tech) == []


def test_queuing_a_removal_sends_one_task_until_it_starts(tech, django_capture_on_commit_callbacks):
    from django_q.models import OrmQ

    with django_capture_on_commit_callbacks(execute=True):
        removals.request_removal(tech, {ItemKind.CONTACT}, now=clock.now())
        assert not removals.enqueue_removal(tech.pk, clock.now())
        assert removals.queue_pending_removals(clock.now()) == []
    assert [task.func() for task in OrmQ.objects.all()] == [removals.REMOVAL_TASK]
    removals.mark_started(tech.pk, clock.now())
    with django_capture_on_commit_callbacks(execute=True):
        assert removals.queue_pending_removals(clock.now()) == [tech.pk]
    # A queued mark older than the broker's retry + timeout is presumed lost.
    later = clock.now() + removals.queued_stale_after() + dt.timedelta(seconds=1)
    assert removals.queue_pending_removals(later) == [tech.pk]


def test_the_sync_after_removing_many_items_of_one_type_neither_trips_the_guard_nor_recreates(
    tech, backend
):
    make_appointment(tech.resource, day(1, "09:00"), title="Visit")
    for n in range(30):
        make_todo(tech.resource, day(1 + n % 5, "14:00"), description=f"Call {n}")
    sync(tech, backend)
    run = remove(tech, backend, {ItemKind.TODO})
    assert run.counts == {"todo": {"exchange": {"deleted": 30}}}
    run = sync(tech, backend)
    assert (run.outcome, run.counts) == (Outcome.OK, {}), run.error
    assert calendar(backend, tech) == ["Visit"]
    tech.refresh_from_db()
    assert tech.status == MailboxSettings.Status.OK


def test_the_every_minute_dispatch_queues_a_pending_removal_of_a_mailbox_whose_sync_is_off(
    tech, django_capture_on_commit_callbacks
):
    from django_q.models import OrmQ

    from exchange_ext import tasks

    removals.request_removal(tech, ALL)  # the resource's sync is off now
    MailboxSettings.objects.filter(pk=tech.pk).update(removal_queued_at=None)  # task lost
    with django_capture_on_commit_callbacks(execute=True):
        tasks.dispatch()
    assert [task.func() for task in OrmQ.objects.all()] == [removals.REMOVAL_TASK]
