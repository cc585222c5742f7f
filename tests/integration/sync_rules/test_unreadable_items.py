"""An item Exchange cannot read is not a deleted item (docs/sync-rules.md, "Deletes"): only
"not found" means gone. Over EWS (GetItem's per-item ErrorItemCorrupt) and Graph (a 500 on
the item's GET), the read fails without moving the sync state, the PSA keeps everything, and
the item arrives once Exchange can read it again."""

from __future__ import annotations

import pytest

from exchange_ext.models import FolderSyncState, SyncRun
from psa.scheduling.models import Appointment
from tests.clock import day
from tests.integration.sync_rules.rules import Harness, daily_recurrence

pytestmark = pytest.mark.django_db


def unreadable(rules: Harness, tech, item_id: str, value: bool = True) -> None:
    rules.store.backdoor_unreadable(tech.effective_mailbox, item_id, value)


def state_of(tech) -> str:
    return FolderSyncState.objects.get(mailbox_settings=tech, folder="calendar").state


def test_a_changed_item_that_cannot_be_read_is_not_deleted(rules: Harness):
    tech = rules.enrol(1)
    dentist = rules.outlook_create(tech, "Dentist", day(1, "15:00"))
    rules.sync(tech)
    before = state_of(tech)
    moved = {"start": day(2, "15:00").isoformat(), "end": day(2, "16:00").isoformat()}
    rules.outlook_update(tech, dentist, subject="Dentist (moved)", **moved)
    unreadable(rules, tech, dentist)
    run = rules.sync(tech)
    assert run.outcome == SyncRun.Outcome.FAILED and "could not read an item" in run.error
    assert Appointment.objects.get().title == "Dentist"  # kept, not deleted
    assert state_of(tech) == before  # the state did not move past the item
    unreadable(rules, tech, dentist, False)
    assert rules.sync(tech).outcome == SyncRun.Outcome.OK
    assert Appointment.objects.get().start == day(2, "15:00")


def test_a_new_item_that_cannot_be_read_arrives_once_it_can(rules: Harness):
    tech = rules.enrol(1)
    rules.sync(tech)
    lunch = rules.outlook_create(tech, "Lunch", day(1, "12:00"))
    unreadable(rules, tech, lunch)
    assert rules.sync(tech).outcome == SyncRun.Outcome.FAILED
    assert not Appointment.objects.exists()
    unreadable(rules, tech, lunch, False)
    assert rules.sync(tech).outcome == SyncRun.Outcome.OK
    assert list(Appointment.objects.values_list("title", flat=True)) == ["Lunch"]


def test_a_series_whose_master_cannot_be_read_keeps_its_occurrences(rules: Harness):
    tech = rules.enrol(1)
    master = rules.outlook_create(tech, "Stand-up", day(1, "09:00"), hours=0.25,
                                  recurrence=daily_recurrence(day(1, "09:00"), 5))  # fmt: skip
    rules.sync(tech)
    assert Appointment.objects.count() == 5
    rules.outlook_update(tech, master, subject="Stand-up (new room)")
    unreadable(rules, tech, master)
    rules.sync(tech)
    assert Appointment.objects.count() == 5
    unreadable(rules, tech, master, False)
    assert rules.sync(tech).outcome == SyncRun.Outcome.OK
    assert set(Appointment.objects.values_list("title", flat=True)) == {"Stand-up (new room)"}
