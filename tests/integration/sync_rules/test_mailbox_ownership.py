"""Whose mailbox a sync opens is an administrator's decision (docs/security.md, "Whose
mailbox"), end to end over EWS and Graph: a technician who types a colleague's address, or
changes their own PSA email to it, still syncs their own mailbox only."""

from __future__ import annotations

import pytest
from django.test import Client

from exchange_ext.models import MailboxSettings
from exchange_ext.web.enrollment import set_enabled_resources
from psa.resources.models import Resource
from psa.scheduling.models import Appointment
from tests.builders import make_resource
from tests.clock import day
from tests.integration.sync_rules.rules import DOMAIN, Harness

pytestmark = pytest.mark.django_db
BOARD = "Board: acquisition of Contoso"


def profile_post(settings: MailboxSettings, **fields: str) -> dict[str, str]:
    data = {"mailbox": settings.mailbox, "username": "", "password": "",
            "export_appointments": "on", "import_appointments": "on",
            "export_service_calls": "on", "export_todos": "on", "export_contacts": "on",
            "past_days": "", "recurring_days": ""}  # fmt: skip
    return {**data, **fields}


def signed_in(resource: Resource) -> Client:
    client = Client()
    client.force_login(resource.user)
    return client


def test_a_technician_typing_a_colleagues_mailbox_still_syncs_only_their_own(rules: Harness):
    tech1, tech2 = rules.enrol(1), rules.enrol(2)
    board = rules.outlook_create(tech2, BOARD, day(2, "09:00"), body="Confidential terms")
    response = signed_in(tech1.resource).post(
        "/profile/exchange/", profile_post(tech1, mailbox=tech2.mailbox)
    )
    assert response.status_code == 302
    tech1.refresh_from_db()
    assert tech1.effective_mailbox == f"tech1@{DOMAIN}"
    rules.sync(tech1)
    assert not Appointment.objects.filter(title=BOARD).exists()
    assert [i["id"] for i in rules.items(tech2)] == [board]  # the colleague's calendar untouched


def test_a_technician_changing_their_psa_email_does_not_move_the_sync(rules: Harness):
    resource = make_resource("tech1", email=f"Tech1@{DOMAIN}")
    [tech1] = set_enabled_resources([resource.pk], [])  # as the Resources tab enables
    assert tech1.mailbox == f"tech1@{DOMAIN}"  # stored now, lower-cased
    rules.store.backdoor_create(
        f"admin@{DOMAIN}", "calendar",
        {"subject": BOARD, "start": day(2, "09:00").isoformat(),
         "end": day(2, "10:00").isoformat()},
    )  # fmt: skip
    response = signed_in(tech1.resource).post(
        "/profile/",
        {"first_name": "Tech1", "last_name": "Tester", "email": f"admin@{DOMAIN}",
         "time_zone": "Europe/Berlin"},
    )  # fmt: skip
    assert response.status_code == 302
    tech1.refresh_from_db()
    assert tech1.resource.email == f"admin@{DOMAIN}" and tech1.mailbox == f"tech1@{DOMAIN}"
    rules.sync(tech1)
    assert not Appointment.objects.filter(title=BOARD).exists()
