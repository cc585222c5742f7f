"""A conflict as the technician sees it (issue 15, item 4): after both sides moved the same
appointment, the profile tab's "Conflicts" list and the run log name the item, link its PSA
page and say which change was kept and which was dropped — never an internal key, and apart
from the errors."""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

import pytest

from exchange_ext.models import SyncLogEntry
from psa.scheduling.actions import do_update_appointment
from tests.builders import make_appointment
from tests.clock import day
from tests.exchange_ext.pages import client_for
from tests.integration.sync_rules.rules import USER, Harness, iso

pytestmark = pytest.mark.django_db


def hm(value: dt.datetime, zone: str) -> str:
    return value.astimezone(ZoneInfo(zone)).strftime("%H:%M")


def test_the_technician_sees_which_outlook_change_the_psa_replaced_and_why(rules: Harness):
    tech = rules.enrol(1)
    appointment = make_appointment(tech.resource, day(1, "09:00"), title="Visit at Contoso")
    rules.sync(tech)
    rules.quiet(tech)
    do_update_appointment(USER, appointment, start=day(1, "10:00"), end=day(1, "11:00"))
    item = rules.item(tech, "Visit at Contoso")
    rules.outlook_update(tech, item["id"], start=iso(day(1, "14:00")), end=iso(day(1, "15:00")))
    run = rules.sync(tech)
    assert run.conflicts == 1
    entry = SyncLogEntry.objects.get(run=run)
    key = entry.psa_key  # "appointment:<id>"

    zone = tech.resource.time_zone
    html = client_for(tech.resource).get("/profile/exchange/").content.decode()
    section = html[html.index('id="conflicts-title"') : html.index('id="sync-log-title"')]
    text = re.sub(r"\s+", " ", section)
    assert "Visit at Contoso" in text
    assert f'href="/calendar/appointments/{appointment.pk}/"' in text
    dropped = f"time {hm(day(1, '14:00'), zone)}–{hm(day(1, '15:00'), zone)}"
    kept = f"time {hm(day(1, '10:00'), zone)}–{hm(day(1, '11:00'), zone)}"
    assert (
        f"The change made in Outlook ({dropped}) was replaced by the PSA&#x27;s ({kept}), "
        "because the item was created in the PSA." in text
    )
    log = html[html.index('id="sync-log-title"') :]
    assert "xe-run-conflicts" in log and "Visit at Contoso" in log
    assert key not in html and "origin side" not in html and "side wins" not in html
    assert ">Conflict " not in log  # not filed under the errors' Details
