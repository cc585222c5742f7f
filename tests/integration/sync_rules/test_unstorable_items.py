"""Outlook items the PSA cannot store as they are: normalised and imported, never lost, never
written back (docs/sync-rules.md, "Items the PSA cannot store as they are")."""

from __future__ import annotations

import pytest

from exchange_ext.models import SyncRun
from psa.scheduling.actions import do_update_appointment
from psa.scheduling.models import Appointment
from tests.clock import day
from tests.integration.sync_rules.rules import USER, Harness, iso

pytestmark = pytest.mark.django_db

LONG_SUBJECT = "Quarterly planning with the whole regional team " * 6 + "and a lunch!"


def test_a_zero_length_item_arrives_as_a_one_minute_appointment_and_later_edits_flow_in(
    rules: Harness,
):
    tech = rules.enrol(1)
    reminder = rules.outlook_create(tech, "Call the bank", day(1, "09:30"), hours=0)
    run = rules.sync(tech)
    assert run.outcome == SyncRun.Outcome.OK, run.error
    assert run.counts == {"appointment": {"psa": {"created": 1}}}
    row = Appointment.objects.get()
    assert (row.title, row.start, row.end) == ("Call the bank", day(1, "09:30"), day(1, "09:31"))
    rules.quiet(tech)
    assert rules.item(tech, "Call the bank")["end"] == rules.item(tech, "Call the bank")["start"]
    rules.outlook_update(tech, reminder, start=iso(day(1, "10:00")), end=iso(day(1, "10:45")))
    assert rules.sync(tech).counts == {"appointment": {"psa": {"updated": 1}}}
    row.refresh_from_db()
    assert (row.start, row.end) == (day(1, "10:00"), day(1, "10:45"))
    rules.quiet(tech)


def test_an_over_long_subject_is_shortened_kept_in_full_in_the_description_and_never_written_back(
    rules: Harness,
):
    assert len(LONG_SUBJECT) == 300
    tech = rules.enrol(1)
    planning = rules.outlook_create(tech, LONG_SUBJECT, day(2, "14:00"), body="Agenda attached")
    run = rules.sync(tech)
    assert run.outcome == SyncRun.Outcome.OK, run.error
    row = Appointment.objects.get()
    assert len(row.title) == 255 and row.title.endswith("…")
    assert LONG_SUBJECT.startswith(row.title[:-1])
    assert row.description == f"Agenda attached\n\nFull subject: {LONG_SUBJECT}"
    rules.quiet(tech)
    # A later Outlook edit of the same item still flows in, normalised the same way.
    rules.outlook_update(tech, planning, subject=LONG_SUBJECT + "!", body="Agenda v2")
    assert rules.sync(tech).counts == {"appointment": {"psa": {"updated": 1}}}
    row.refresh_from_db()
    assert row.description == f"Agenda v2\n\nFull subject: {LONG_SUBJECT}!"
    rules.quiet(tech)
    # A PSA edit of its details writes them back with the full subject, not the shortened one.
    do_update_appointment(USER, row, location="Room 4")
    assert rules.sync(tech).counts == {"appointment": {"exchange": {"updated": 1}}}
    [item] = rules.items(tech)
    assert (item["subject"], item["location"]) == (LONG_SUBJECT + "!", "Room 4")
    assert "Full subject" not in item.get("body", "")
    rules.quiet(tech)


def test_an_item_without_a_subject_arrives_untitled_and_stays_without_one_in_exchange(
    rules: Harness,
):
    tech = rules.enrol(1)
    rules.outlook_create(tech, "", day(1, "08:00"), location="Front desk")
    run = rules.sync(tech)
    assert run.outcome == SyncRun.Outcome.OK, run.error
    row = Appointment.objects.get()
    assert (row.title, row.location) == ("(No subject)", "Front desk")
    rules.quiet(tech)
    do_update_appointment(USER, row, location="Back office")
    assert rules.sync(tech).counts == {"appointment": {"exchange": {"updated": 1}}}
    [item] = rules.items(tech)
    assert (item.get("subject") or "", item["location"]) == ("", "Back office")
    rules.quiet(tech)
