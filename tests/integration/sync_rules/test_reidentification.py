"""Re-identification (docs/sync-rules.md, "Re-identification"), end to end over EWS and Graph.

The sandbox names an item differently per protocol, as Exchange does (an EWS ItemId is not a
Graph event id), so a switch of protocol changes every id the links hold; an organizer moving
a series changes every occurrence's id. Items we wrote are found again by their tag, imported
items and occurrences by their iCalendar UID and original start: nothing is deleted and
created again, nothing is written to Exchange.
"""

from __future__ import annotations

import pytest

from exchange_ext.models import ItemLink, SyncRun
from psa.scheduling.models import Appointment
from tests.builders import make_appointment
from tests.clock import day
from tests.integration.sync_rules.rules import Harness, daily_recurrence, iso

pytestmark = pytest.mark.django_db
OTHER = {"ews": "graph", "graph": "ews"}


def appointments() -> dict[int, tuple[str, object]]:
    return {a.pk: (a.title, a.start) for a in Appointment.objects.all()}


def calendar_of_a_technician(rules: Harness):  # type: ignore[no-untyped-def]
    """tech1 with a PSA visit, an Outlook appointment and a three-day Outlook series, synced."""
    tech = rules.enrol(1)
    make_appointment(tech.resource, day(1, "09:00"), title="Visit")
    rules.outlook_create(tech, "Dentist", day(2, "15:00"))
    master = rules.outlook_create(
        tech, "Stand-up", day(1, "08:00"), hours=0.5,
        recurrence=daily_recurrence(day(1, "08:00"), 3),
    )  # fmt: skip
    run = rules.sync(tech)
    assert run.outcome == SyncRun.Outcome.OK, run.error
    assert Appointment.objects.count() == 5
    return tech, master


def test_switching_the_protocol_and_back_keeps_every_psa_id_and_writes_nothing(rules: Harness):
    tech, _ = calendar_of_a_technician(rules)
    first, before = rules.kind, appointments()
    ids_before = set(ItemLink.objects.values_list("exchange_id", flat=True))
    for kind in (OTHER[first], first):
        rules.switch_backend(kind)
        rules.sandbox.state.requests.clear()
        run = rules.sync(tech)
        assert run.outcome == SyncRun.Outcome.OK, run.error
        assert run.counts == {}, run.counts  # nothing re-imported, deleted or created
        assert rules.writes() == {}  # and nothing written to Exchange
        assert appointments() == before
        ids = set(ItemLink.objects.values_list("exchange_id", flat=True))
        assert len(ids) == 5 and (ids.isdisjoint(ids_before) if kind != first else True)
        rules.quiet(tech)
    assert set(ItemLink.objects.values_list("exchange_id", flat=True)) == ids_before
    assert sorted(rules.subjects(tech)) == ["Dentist", "Stand-up", "Visit"]


def test_an_organizer_moving_a_series_keeps_the_occurrences_psa_appointments(rules: Harness):
    tech, master = calendar_of_a_technician(rules)
    before = {pk for pk, (title, _) in appointments().items() if title == "Stand-up"}
    rules.outlook_update(
        tech, master, start=iso(day(1, "10:30")), end=iso(day(1, "11:00"))
    )  # every occurrence gets a new original start, hence a new id
    run = rules.sync(tech)
    assert run.outcome == SyncRun.Outcome.OK, run.error
    assert run.counts == {"appointment": {"psa": {"updated": 3}}}
    moved = {pk: start for pk, (title, start) in appointments().items() if title == "Stand-up"}
    assert set(moved) == before
    assert sorted(moved.values()) == [day(n, "10:30") for n in (1, 2, 3)]
    rules.quiet(tech)
