"""A recurring Exchange series: one PSA appointment per occurrence in the window; a modified
occurrence updates its appointment, a deleted one has none."""

from __future__ import annotations

import pytest

from exchange_ext.models import SyncRun
from psa.scheduling.models import Appointment
from tests.clock import day
from tests.integration.sync_rules.rules import (
    Harness,
    daily_recurrence,
    iso,
    outlook_delete_occurrence,
    outlook_edit_occurrence,
)

pytestmark = pytest.mark.django_db


def starts() -> list[tuple[str, object]]:
    return list(Appointment.objects.order_by("start").values_list("title", "start"))


def test_a_series_with_a_modified_and_a_deleted_occurrence_gives_one_appointment_each(
    rules: Harness,
):
    tech = rules.enrol(1)
    master = rules.outlook_create(
        tech, "Stand-up", day(1, "09:00"), hours=0.5,
        recurrence=daily_recurrence(day(1, "09:00"), 5),
    )  # fmt: skip
    outlook_edit_occurrence(
        rules, master, day(2, "09:00"), subject="Stand-up (late)",
        start=iso(day(2, "11:00")), end=iso(day(2, "11:30")),
    )  # fmt: skip
    outlook_delete_occurrence(rules, master, day(3, "09:00"))
    run = rules.sync(tech)
    assert run.outcome == SyncRun.Outcome.OK, run.error
    assert run.counts == {"appointment": {"psa": {"created": 4}}}
    assert starts() == [
        ("Stand-up", day(1, "09:00")),
        ("Stand-up (late)", day(2, "11:00")),
        ("Stand-up", day(4, "09:00")),
        ("Stand-up", day(5, "09:00")),
    ]
    rules.quiet(tech)


def test_later_occurrence_edits_and_deletes_update_and_remove_their_appointments(
    rules: Harness,
):
    tech = rules.enrol(1)
    master = rules.outlook_create(
        tech, "Stand-up", day(1, "09:00"), hours=0.5,
        recurrence=daily_recurrence(day(1, "09:00"), 4),
    )  # fmt: skip
    rules.sync(tech)
    assert Appointment.objects.count() == 4
    outlook_edit_occurrence(
        rules, master, day(2, "09:00"), start=iso(day(2, "10:00")),
        end=iso(day(2, "10:30")),
    )  # fmt: skip
    outlook_delete_occurrence(rules, master, day(3, "09:00"))
    run = rules.sync(tech)
    assert run.counts == {"appointment": {"psa": {"updated": 1, "deleted": 1}}}
    assert [start for _, start in starts()] == [
        day(1, "09:00"), day(2, "10:00"), day(4, "09:00"),
    ]  # fmt: skip
    assert rules.items(tech)[0]["type"] == "RecurringMaster"  # nothing written back
    rules.quiet(tech)
