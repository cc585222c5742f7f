"""The mass-delete guard: a run that would delete more than half and more than 20 of a
mailbox's synced items holds those deletions and reports; nothing is deleted on either side
until an administrator confirms or restores them on the resource's page."""

from __future__ import annotations

import pytest
from django.test import Client

from exchange_ext.models import HeldDeletion, MailboxSettings, SyncRun
from psa.scheduling.actions import do_delete_appointment
from psa.scheduling.models import Appointment
from tests.builders import make_appointment
from tests.clock import day
from tests.exchange_ext.pages import make_exchange_admin
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


def held_page(rules: Harness, tech: MailboxSettings):
    """An administrator's view of the resource's page."""
    client = Client()
    client.force_login(make_exchange_admin().user)
    return client, f"/extensions/exchange/resources/{tech.resource_id}/"


def empty_the_outlook_calendar(rules: Harness, count: int = 30) -> MailboxSettings:
    tech = rules.enrol(1)
    ids = [
        rules.outlook_create(tech, f"Meeting {n}", day(1 + n % 5, f"{8 + n % 9:02d}:00"))
        for n in range(count)
    ]
    rules.sync(tech)
    for item_id in ids:
        rules.outlook_delete(tech, item_id)
    assert rules.sync(tech).outcome == SyncRun.Outcome.GUARD_TRIPPED
    return tech


def test_the_resource_page_shows_what_is_held_and_confirm_applies_it(rules: Harness):
    tech = empty_the_outlook_calendar(rules)
    client, page = held_page(rules, tech)
    html = client.get(page).content.decode()
    assert "30 deletions are held" in html and "Meeting 0" in html
    assert "Confirm deletions" in html and "Restore" in html
    ids = [str(row.pk) for row in HeldDeletion.objects.filter(state="held")]
    response = client.post(page + "held/confirm/", {"held": ids})
    assert response.status_code == 302
    assert rules.sync(tech).outcome == SyncRun.Outcome.OK
    assert not Appointment.objects.exists()
    tech.refresh_from_db()
    assert tech.status == "ok" and "deletions are held" not in client.get(page).content.decode()


def test_restore_keeps_every_imported_appointment_and_deletes_nothing(rules: Harness):
    tech = empty_the_outlook_calendar(rules)
    client, page = held_page(rules, tech)
    ids = [str(row.pk) for row in HeldDeletion.objects.filter(state="held")]
    client.post(page + "held/restore/", {"held": ids})
    rules.sandbox.state.requests.clear()
    assert rules.sync(tech).outcome == SyncRun.Outcome.OK
    assert Appointment.objects.count() == 30 and rules.writes() == {}
    assert rules.sync(tech).outcome == SyncRun.Outcome.OK  # and stays so
    assert Appointment.objects.count() == 30


def test_a_technician_sees_held_deletions_but_cannot_decide(rules: Harness):
    tech = empty_the_outlook_calendar(rules)
    client = Client()
    client.force_login(tech.resource.user)
    html = client.get("/profile/exchange/").content.decode()
    assert "30 deletions are held" in html and "Your administrator decides" in html
    assert "Confirm deletions</button>" not in html
    url = f"/extensions/exchange/resources/{tech.resource_id}/held/confirm/"
    assert client.post(url, {"held": ["1"]}).status_code == 403
