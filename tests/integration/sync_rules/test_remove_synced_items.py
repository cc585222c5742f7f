"""Remove synced items end to end, over EWS and Graph (docs/sync-rules.md, "Removing synced
items"): the confirmed request turns the sync off, the worker's task deletes from the mailbox
only what the extension wrote, never beside a sync, and what Exchange refuses stays synced and
listed, for the administrator to repeat."""

from __future__ import annotations

import pytest

from exchange_ext import tasks
from exchange_ext.engine import leases
from exchange_ext.jobs import removals
from exchange_ext.models import ItemLink, MailboxSettings, SyncLogEntry, SyncRun
from exchange_ext.sync.records import ItemKind
from tests.builders import (
    make_account,
    make_appointment,
    make_contact,
    make_service_call,
    make_todo,
)
from tests.clock import day
from tests.integration.sync_rules.rules import Harness

pytestmark = pytest.mark.django_db

ALL = frozenset(ItemKind)
Outcome = SyncRun.Outcome
CALL = "Service call: Contoso"


def synced_world(rules: Harness) -> MailboxSettings:
    """tech1 with one of each kind exported and an Outlook appointment imported; then a copy
    of the exported appointment made in Outlook (untagged)."""
    tech = rules.enrol(1)
    make_appointment(tech.resource, day(1, "09:00"), title="Visit")
    make_service_call([tech.resource], day(2, "08:00"), account=make_account("Contoso"))
    make_todo(tech.resource, day(1, "14:00"), description="Call back")
    make_contact(make_account(account_manager=tech.resource), first_name="Ann")
    rules.outlook_create(tech, "Dentist", day(3, "10:00"))
    run = rules.sync(tech)
    assert run.outcome == Outcome.OK, run.error
    assert len(rules.tags(tech)) == 3 and len(rules.tags(tech, "contacts")) == 1
    rules.outlook_create(tech, "Visit", day(1, "09:00"))
    return tech


def remove(rules: Harness, tech: MailboxSettings, kinds=ALL) -> SyncRun:
    """The administrator confirms; a worker runs the queued task."""
    removals.request_removal(tech, kinds)
    return run_task(tech)


def run_task(tech: MailboxSettings) -> SyncRun:
    tasks.remove_synced_items(tech.pk)
    tech.refresh_from_db()
    return SyncRun.objects.filter(mailbox_settings=tech, trigger=SyncRun.Trigger.REMOVAL)[0]


def todo_subject(rules: Harness, tech: MailboxSettings) -> str:
    [subject] = [s for s in rules.subjects(tech) if "Call back" in s]
    return subject


def linked(tech: MailboxSettings, kind: str) -> int:
    return ItemLink.objects.filter(mailbox_settings=tech, kind=kind, origin="psa").count()


def test_everything_the_extension_wrote_is_removed_and_nothing_else(rules: Harness):
    tech = synced_world(rules)
    rules.sandbox.state.requests.clear()
    run = remove(rules, tech)
    assert run.outcome == Outcome.OK, run.error
    assert run.counts == {kind.value: {"exchange": {"deleted": 1}} for kind in ItemKind}
    assert rules.subjects(tech) == ["Dentist", "Visit"]  # imported, and the user's copy
    assert rules.tags(tech) == [] and rules.items(tech, "contacts") == []
    assert rules.outbox() == []  # no meeting message of any kind
    assert list(ItemLink.objects.values_list("origin", flat=True)) == ["exchange"]
    assert not tech.sync_enabled and tech.removal_requested_at is None
    # A sync run re-creates nothing.
    rules.sandbox.state.requests.clear()
    assert rules.sync(tech).outcome == Outcome.SKIPPED
    assert rules.writes() == {}
    assert rules.subjects(tech) == ["Dentist", "Visit"]


def test_removing_to_dos_removes_only_to_dos_and_turns_only_to_dos_off(rules: Harness):
    tech = synced_world(rules)
    todo = todo_subject(rules, tech)
    run = remove(rules, tech, {ItemKind.TODO})
    assert run.counts == {"todo": {"exchange": {"deleted": 1}}}
    assert rules.subjects(tech) == sorted(["Dentist", "Visit", "Visit", CALL])
    assert rules.subjects(tech, "contacts") == ["Ann"]
    assert not tech.export_todos
    assert tech.sync_enabled and tech.export_appointments and tech.export_service_calls
    assert tech.export_contacts and tech.import_appointments
    # The next sync puts no to-do back; it imports the Outlook copy like any Outlook item.
    rules.sandbox.state.requests.clear()
    run = rules.sync(tech)
    assert run.counts == {"appointment": {"psa": {"created": 1}}}, run.counts
    assert rules.writes() == {}
    assert todo not in rules.subjects(tech)
    rules.quiet(tech)


def test_a_sync_holding_the_lease_makes_the_removal_wait_then_it_runs(rules: Harness):
    tech = synced_world(rules)
    token = leases.claim(tech.pk, 60)  # a sync is running
    assert token is not None
    rules.sandbox.state.requests.clear()
    run = remove(rules, tech)
    assert run.outcome == Outcome.SKIPPED
    assert rules.log() == []  # not a single request to the mailbox
    assert len(rules.items(tech)) == 5 and tech.removal_requested_at is not None
    MailboxSettings.objects.filter(pk=tech.pk).update(removal_queued_at=None)
    assert removals.queue_pending_removals() == []  # never beside the sync
    leases.release(tech.pk, token)
    assert removals.queue_pending_removals() == [tech.pk]
    run = run_task(tech)
    assert run.outcome == Outcome.OK, run.error
    assert rules.subjects(tech) == ["Dentist", "Visit"]


def test_an_item_exchange_fails_to_delete_stays_synced_and_listed_and_a_repeat_removes_it(
    rules: Harness,
):
    tech = synced_world(rules)
    if rules.kind == "ews":
        # One DeleteItem request carries the whole calendar batch: it fails whole.
        rules.fault(kind="http_status", status=500, operation="DeleteItem")
    else:
        # Graph deletes item by item inside a $batch: one of them is refused.
        rules.fault(kind="http_status", status=400, operation="graph:events.delete")
    run = remove(rules, tech)
    entries = list(SyncLogEntry.objects.filter(run=run))
    if rules.kind == "ews":
        assert run.outcome == Outcome.FAILED
        assert "use Remove synced items again" in run.error
        assert len(entries) == 3 and len(rules.tags(tech)) == 3
        assert linked(tech, "appointment") + linked(tech, "service_call") == 2
    else:
        assert (run.outcome, run.errors) == (Outcome.PARTIAL, 1), run.error
        assert len(entries) == 1 and len(rules.tags(tech)) == 1
        assert rules.items(tech, "contacts") == []
    assert all(entry.message.startswith("Not removed") for entry in entries)
    left = sum(linked(tech, kind) for kind in ("appointment", "service_call", "todo"))
    assert left == len(entries)  # exactly the listed ones are still synced
    assert tech.removal_requested_at is None and not tech.sync_enabled
    run = remove(rules, tech)
    assert run.outcome == Outcome.OK, run.error
    assert rules.subjects(tech) == ["Dentist", "Visit"] and rules.tags(tech) == []
    assert rules.items(tech, "contacts") == []


def test_a_meeting_made_of_an_exported_item_is_never_cancelled(rules: Harness):
    tech = synced_world(rules)
    [visit] = [i for i in rules.items(tech) if i["subject"] == "Visit" and i["extended_properties"]]
    rules.outlook_update(tech, visit["id"], required_attendees=["guest@client.example"])
    run = remove(rules, tech, {ItemKind.APPOINTMENT})
    assert rules.outbox() == []
    if rules.kind == "ews":
        # DeleteItem with SendMeetingCancellations=SendToNone.
        assert run.outcome == Outcome.OK, run.error
        assert rules.subjects(tech) == sorted(["Dentist", "Visit", CALL, todo_subject(rules, tech)])
    else:
        # Graph cannot delete a meeting without cancelling it: kept, still synced, listed.
        assert (run.outcome, run.errors) == (Outcome.PARTIAL, 1)
        [entry] = SyncLogEntry.objects.filter(run=run)
        assert "cancellations" in entry.message and linked(tech, "appointment") == 1
