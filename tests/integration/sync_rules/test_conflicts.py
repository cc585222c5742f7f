"""Both sides changed the same field since the last sync: the item's origin side wins, and the
losing edit is logged as a conflict."""

from __future__ import annotations

import pytest

from exchange_ext.models import SyncLogEntry, SyncRun
from psa.scheduling.actions import do_update_appointment
from psa.scheduling.models import Appointment
from tests.builders import make_appointment
from tests.clock import day, zulu
from tests.integration.sync_rules.rules import USER, Harness, iso

pytestmark = pytest.mark.django_db


def test_a_psa_appointment_moved_on_both_sides_keeps_the_psa_time_and_logs_the_conflict(
    rules: Harness,
):
    tech = rules.enrol(1)
    appointment = make_appointment(tech.resource, day(1, "09:00"), title="Visit")
    rules.sync(tech)
    rules.quiet(tech)
    do_update_appointment(USER, appointment, start=day(1, "10:00"), end=day(1, "11:00"))
    item = rules.item(tech, "Visit")
    rules.outlook_update(tech, item["id"], start=iso(day(1, "14:00")), end=iso(day(1, "15:00")))
    run = rules.sync(tech)
    assert (run.outcome, run.conflicts) == (SyncRun.Outcome.OK, 1)
    appointment.refresh_from_db()
    assert appointment.start == day(1, "10:00")
    assert rules.item(tech, "Visit")["start"] == zulu(day(1, "10:00"))
    entry = SyncLogEntry.objects.get(run=run)
    assert (entry.level, entry.kind) == (SyncLogEntry.Level.CONFLICT, "appointment")
    assert entry.psa_key
    rules.quiet(tech)


def test_an_imported_appointment_edited_on_both_sides_keeps_the_exchange_edit_and_logs_it(
    rules: Harness,
):
    tech = rules.enrol(1)
    dentist = rules.outlook_create(tech, "Dentist", day(1, "15:00"))
    rules.sync(tech)
    rules.quiet(tech)
    do_update_appointment(USER, Appointment.objects.get(), title="Dentist (PSA)")
    rules.outlook_update(tech, dentist, subject="Dentist (Outlook)")
    run = rules.sync(tech)
    assert (run.outcome, run.conflicts) == (SyncRun.Outcome.OK, 1)
    assert Appointment.objects.get().title == "Dentist (Outlook)"
    assert rules.subjects(tech) == ["Dentist (Outlook)"]
    assert SyncLogEntry.objects.get(run=run).level == SyncLogEntry.Level.CONFLICT
    rules.quiet(tech)
