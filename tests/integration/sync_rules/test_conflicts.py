"""Both sides changed the same field since the last sync: the item's origin side wins, and the
losing edit is logged as a conflict."""

from __future__ import annotations

import pytest

from exchange_ext.models import SyncLogEntry, SyncRun
from psa.scheduling.actions import do_update_appointment
from psa.scheduling.models import Appointment
from tests.builders import at, make_appointment
from tests.integration.sync_rules.rules import USER, Harness, iso

pytestmark = pytest.mark.django_db


def test_a_psa_appointment_moved_on_both_sides_keeps_the_psa_time_and_logs_the_conflict(
    rules: Harness,
):
    tech = rules.enrol(1)
    appointment = make_appointment(tech.resource, "2026-11-23 09:00", title="Visit")
    rules.sync(tech)
    rules.quiet(tech)
    do_update_appointment(
        USER, appointment, start=at("2026-11-23 10:00"), end=at("2026-11-23 11:00")
    )
    item = rules.item(tech, "Visit")
    rules.outlook_update(
        tech, item["id"], start=iso("2026-11-23 14:00"), end=iso("2026-11-23 15:00")
    )
    run = rules.sync(tech)
    assert (run.outcome, run.conflicts) == (SyncRun.Outcome.OK, 1)
    appointment.refresh_from_db()
    assert appointment.start == at("2026-11-23 10:00")
    assert rules.item(tech, "Visit")["start"] == "2026-11-23T10:00:00Z"
    entry = SyncLogEntry.objects.get(run=run)
    assert (entry.level, entry.kind) == (SyncLogEntry.Level.CONFLICT, "appointment")
    assert entry.psa_key
    rules.quiet(tech)


def test_an_imported_appointment_edited_on_both_sides_keeps_the_exchange_edit_and_logs_it(
    rules: Harness,
):
    tech = rules.enrol(1)
    dentist = rules.outlook_create(tech, "Dentist", "2026-11-23 15:00")
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
