"""Exchange appointments into the PSA: import modes, private items, free time, later edits."""

from __future__ import annotations

import pytest

from exchange_ext.models import SyncRun
from psa.scheduling.models import Appointment
from tests.clock import day
from tests.integration.sync_rules.rules import Harness

pytestmark = pytest.mark.django_db


def outlook_day(rules: Harness, tech) -> None:
    rules.outlook_create(tech, "Dentist", day(1, "15:00"), body="Bring the card")
    rules.outlook_create(tech, "Lunch", day(2, "12:00"), legacy_free_busy_status="Free")


def test_import_mode_all_brings_titles_details_and_later_changes_and_deletes(rules: Harness):
    tech = rules.enrol(1)
    dentist = rules.outlook_create(tech, "Dentist", day(1, "15:00"), body="Bring the card")
    run = rules.sync(tech)
    assert run.counts == {"appointment": {"psa": {"created": 1}}}
    row = Appointment.objects.get()
    assert (row.title, row.origin, row.start) == ("Dentist", "exchange", day(1, "15:00"))
    assert "Bring the card" in row.description
    rules.outlook_update(tech, dentist, subject="Dentist (new)")
    rules.sync(tech)
    assert Appointment.objects.get().title == "Dentist (new)"
    rules.outlook_delete(tech, dentist)
    assert rules.sync(tech).counts == {"appointment": {"psa": {"deleted": 1}}}
    assert not Appointment.objects.exists()
    rules.quiet(tech)


def test_import_mode_times_only_brings_appointment_without_details(rules: Harness):
    rules.set(import_mode="times_only")
    tech = rules.enrol(1)
    rules.outlook_create(tech, "Dentist", day(1, "15:00"), body="Bring the card")
    rules.sync(tech)
    row = Appointment.objects.get()
    assert (row.title, row.description, row.start) == ("Appointment", "", day(1, "15:00"))
    rules.quiet(tech)


def test_import_mode_none_imports_nothing(rules: Harness):
    rules.set(import_mode="none")
    tech = rules.enrol(1)
    outlook_day(rules, tech)
    run = rules.sync(tech)
    assert run.outcome == SyncRun.Outcome.OK and run.counts == {}
    assert not Appointment.objects.exists()


def test_a_private_item_arrives_as_appointment_without_details(rules: Harness):
    tech = rules.enrol(1)
    rules.outlook_create(
        tech, "Therapy", day(3, "10:00"), body="Room 4", location="Clinic",
        sensitivity="Private",
    )  # fmt: skip
    rules.sync(tech)
    row = Appointment.objects.get()
    assert (row.title, row.description, row.location) == ("Appointment", "", "")
    assert row.start == day(3, "10:00")
    rules.quiet(tech)


def test_free_time_is_not_imported_when_import_free_time_is_off(rules: Harness):
    rules.set(import_free_time=False)
    tech = rules.enrol(1)
    outlook_day(rules, tech)
    rules.outlook_create(
        tech, "Home office", day(3, "08:00"), legacy_free_busy_status="WorkingElsewhere"
    )
    rules.sync(tech)
    assert list(Appointment.objects.values_list("title", flat=True)) == ["Dentist"]
    rules.quiet(tech)


def test_working_elsewhere_arrives_as_free(rules: Harness):
    tech = rules.enrol(1)
    rules.outlook_create(
        tech, "Home office", day(3, "08:00"), legacy_free_busy_status="WorkingElsewhere"
    )
    rules.outlook_create(tech, "Lunch", day(2, "12:00"), legacy_free_busy_status="Free")
    rules.outlook_create(tech, "Offsite", day(4, "08:00"), legacy_free_busy_status="OOF")
    rules.sync(tech)
    shown = dict(Appointment.objects.values_list("title", "show_as"))
    assert shown == {"Home office": "free", "Lunch": "free", "Offsite": "oof"}
    rules.quiet(tech)
