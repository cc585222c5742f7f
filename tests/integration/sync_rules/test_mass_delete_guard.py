"""The mass-delete guard: a run that would delete more than half and more than 20 of a
mailbox's synced items stops and reports; nothing is deleted on either side."""

from __future__ import annotations

import pytest

from exchange_ext.models import MailboxSettings, SyncRun
from psa.scheduling.actions import do_delete_appointment
from psa.scheduling.models import Appointment
from tests.builders import make_appointment
from tests.clock import day
from tests.integration.sync_rules.rules import USER, Harness

pytestmark = pytest.mark.django_db


def test_deleting_most_psa_appointments_at_once_trips_the_guard_and_deletes_nothing(
    rules: Harness,
):
    tech = rules.enrol(1)
    for n in range(30):
        make_appointment(tech.resource, day(1 + n % 5, f"{8 + n % 9:02d}:00"), title=f"V{n}")
    assert rules.sync(tech).side_total("exchange", "created") == 30
    for appointment in Appointment.objects.all()[:25]:
        do_delete_appointment(USER, appointment)
    rules.sandbox.state.requests.clear()
    run = rules.sync(tech)
    assert run.outcome == SyncRun.Outcome.GUARD_TRIPPED
    assert len(rules.items(tech)) == 30
    assert rules.writes() == {}
    settings = MailboxSettings.objects.get(pk=tech.pk)
    assert settings.status == "held" and "Held 25 deletions" in settings.last_error


def test_an_outlook_calendar_emptied_at_once_trips_the_guard_and_the_psa_keeps_everything(
    rules: Harness,
):
    tech = rules.enrol(1)
    ids = [
        rules.outlook_create(tech, f"Meeting {n}", day(1 + n % 5, f"{8 + n % 9:02d}:00"))
        for n in range(24)
    ]
    assert rules.sync(tech).side_total("psa", "created") == 24
    for item_id in ids:
        rules.outlook_delete(tech, item_id)
    run = rules.sync(tech)
    assert run.outcome == SyncRun.Outcome.GUARD_TRIPPED
    assert Appointment.objects.count() == 24
    assert "Held 24 deletions" in run.error
