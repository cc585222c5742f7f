"""Ageing out of the sync window (the clock moves on): forgotten, never deleted on either side."""

from __future__ import annotations

import datetime as dt

import pytest

from exchange_ext.models import ItemLink, SyncRun
from psa.scheduling.models import Appointment
from tests import clock
from tests.builders import make_appointment, make_todo
from tests.clock import day
from tests.integration.sync_rules.rules import Harness

pytestmark = pytest.mark.django_db


def test_items_ageing_out_of_the_window_are_forgotten_and_never_deleted(rules: Harness):
    tech = rules.enrol(1)
    make_appointment(tech.resource, day(1, "09:00"), title="Old visit")
    make_todo(tech.resource, day(1, "14:00"))
    make_appointment(tech.resource, day(28, "09:00"), title="Future visit")
    rules.outlook_create(tech, "Dentist", day(1, "15:00"))
    first = rules.sync(tech)
    assert first.side_total("exchange", "created") == 3
    assert ItemLink.objects.count() == 4
    later = clock.now() + dt.timedelta(days=20)  # past_days is 7: 23 November is out of the window
    run = rules.sync(tech, now=later)
    assert run.outcome == SyncRun.Outcome.OK, run.error
    assert run.counts == {}
    assert Appointment.objects.count() == 3  # the old visit, the future visit, the dentist
    assert len(rules.items(tech)) == 4  # both visits, the to-do and the dentist
    assert [link.psa_id for link in ItemLink.objects.all()] == [
        Appointment.objects.get(title="Future visit").pk
    ]
    rules.quiet(tech, now=later)
