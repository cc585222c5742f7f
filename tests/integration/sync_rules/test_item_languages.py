"""The text the extension writes into Exchange items is in the resource's language, and a
changed language rewrites it at the next run as an update without meeting messages; the title
of an appointment imported without details is shown in the viewer's language (SPEC §1,
"Languages"). Over both backends; the catalogues must carry these translations.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from exchange_ext.sync.mapping import PLACEHOLDER_SUBJECT
from psa.resources.models import Resource
from psa.scheduling.models import IMPORTED_PLACEHOLDER_TITLE, Appointment
from tests.builders import make_account, make_admin, make_service_call, make_ticket
from tests.clock import day
from tests.integration.sync_rules.rules import Harness

pytestmark = pytest.mark.django_db
GUEST = "guest@client.example"


def speaks(resource: Resource, language: str) -> None:
    Resource.objects.filter(pk=resource.pk).update(language=language)


def test_a_german_resources_service_call_turns_japanese_with_an_update_and_no_meeting_message(
    rules: Harness, settings: Any
):
    settings.PSA_BASE_URL = "https://psa.example.test"
    tech = rules.enrol(1)
    speaks(tech.resource, "de")
    account = make_account("Acme", phone="+49 30 1234")
    call = make_service_call([tech.resource], day(2, "08:00"), account=account)
    call.tickets.add(make_ticket("T-42", title="Firewall down"))

    assert rules.sync(tech).counts == {"service_call": {"exchange": {"created": 1}}}
    [item] = rules.items(tech)
    assert item["subject"] == "Servicetermin: Acme"
    body = item["body"]
    assert "Firma: Acme" in body and "Telefon: +49 30 1234" in body
    assert "Ticket T-42: Firewall down" in body
    assert f"In PSA öffnen: https://psa.example.test/calendar/service-calls/{call.pk}/" in body
    assert "Account:" not in body and "Open in PSA" not in body
    rules.quiet(tech)

    # Someone made a meeting of it in Outlook: a careless update would invite the guest.
    rules.outlook_update(tech, item["id"], required_attendees=[GUEST])
    rules.sync(tech)  # the Exchange side moved; nothing flows back from a service call
    speaks(tech.resource, "ja")
    run = rules.sync(tech)

    assert run.counts == {"service_call": {"exchange": {"updated": 1}}}, run.error
    [item] = rules.items(tech)
    assert item["subject"] == "サービス コール：Acme"
    body = item["body"]
    assert "取引先企業：Acme" in body and "電話：+49 30 1234" in body
    assert "チケット T-42：Firewall down" in body
    assert f"PSA で開く：https://psa.example.test/calendar/service-calls/{call.pk}/" in body
    assert "Firma:" not in body
    assert rules.outbox() == []  # no meeting message
    rules.quiet(tech)
    assert rules.outbox() == []


def test_an_imported_private_appointment_is_titled_in_each_viewers_language(rules: Harness):
    tech = rules.enrol(1)
    speaks(tech.resource, "ja")
    rules.outlook_create(tech, "Therapy", day(3, "10:00"), sensitivity="Private")
    rules.sync(tech)
    row = Appointment.objects.get()
    assert row.title == "Appointment"  # stored once, whoever reads it

    def agenda_as(resource: Resource) -> str:
        client = Client()
        client.force_login(resource.user)
        url = reverse("calendar") + f"?resource={tech.resource_id}&start={day(3):%Y-%m-%d}"
        response = client.get(url)
        assert response.status_code == 200
        return response.content.decode()

    assert 'class="title">予定</a>' in agenda_as(tech.resource)
    boss = make_admin()
    speaks(boss, "de")
    assert 'class="title">Termin</a>' in agenda_as(boss)
    speaks(boss, "zh-hans")
    assert 'class="title">约会</a>' in agenda_as(boss)
    speaks(boss, "en")
    assert 'class="title">Appointment</a>' in agenda_as(boss)
    rules.quiet(tech)
    # A PSA appointment that happens to be called so is the user's own word: never translated.
    Appointment.objects.filter(pk=row.pk).update(origin=Appointment.Origin.PSA)
    speaks(boss, "de")
    assert 'class="title">Appointment</a>' in agenda_as(boss)


def test_the_psa_translates_the_very_title_the_import_stores():
    assert IMPORTED_PLACEHOLDER_TITLE == PLACEHOLDER_SUBJECT
