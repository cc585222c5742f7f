"""Exchange → PSA for PSA items: times flow back, details do not, deletes are not reflected."""

from __future__ import annotations

import pytest

from exchange_ext.models import ItemLink, SyncRun
from psa.scheduling.actions import do_update_appointment
from psa.scheduling.models import Appointment, Todo
from tests.builders import make_appointment, make_todo
from tests.clock import day
from tests.integration.sync_rules.rules import USER, Harness, iso

pytestmark = pytest.mark.django_db


def test_an_outlook_time_change_of_a_psa_appointment_flows_back(rules: Harness):
    tech = rules.enrol(1)
    appointment = make_appointment(tech.resource, day(1, "09:00"), title="Visit")
    rules.sync(tech)
    item = rules.item(tech, "Visit")
    rules.outlook_update(tech, item["id"], start=iso(day(1, "11:00")), end=iso(day(1, "13:00")))
    run = rules.sync(tech)
    appointment.refresh_from_db()
    assert (appointment.start, appointment.end) == (day(1, "11:00"), day(1, "13:00"))
    assert run.counts == {"appointment": {"psa": {"updated": 1}}}
    rules.quiet(tech)


def test_an_outlook_time_change_of_a_to_do_flows_back_and_other_edits_do_not(rules: Harness):
    tech = rules.enrol(1)
    todo = make_todo(tech.resource, day(1, "14:00"))
    rules.sync(tech)
    [item] = rules.items(tech)
    rules.outlook_update(
        tech, item["id"], subject="Edited in Outlook", start=iso(day(1, "16:00")),
        end=iso(day(1, "17:00")),
    )  # fmt: skip
    run = rules.sync(tech)
    todo = Todo.objects.get(pk=todo.pk)
    assert (todo.start, todo.end) == (day(1, "16:00"), day(1, "17:00"))
    assert todo.description == "Call back about the backup report"
    assert run.counts == {"todo": {"psa": {"updated": 1}}}
    assert rules.subjects(tech) == ["Edited in Outlook"]  # ignored, not yet overwritten
    rules.quiet(tech)


def test_a_subject_edit_in_outlook_is_ignored_then_overwritten_by_the_next_psa_edit(
    rules: Harness,
):
    tech = rules.enrol(1)
    appointment = make_appointment(tech.resource, day(1, "09:00"), title="Visit")
    rules.sync(tech)
    rules.outlook_update(tech, rules.item(tech, "Visit")["id"], subject="Renamed in Outlook")
    run = rules.sync(tech)
    assert Appointment.objects.get(pk=appointment.pk).title == "Visit"
    assert run.side_total("psa", "updated") == 0
    assert rules.subjects(tech) == ["Renamed in Outlook"]
    do_update_appointment(USER, appointment, location="Room 2")
    run = rules.sync(tech)
    assert run.counts == {"appointment": {"exchange": {"updated": 1}}}
    assert rules.subjects(tech) == ["Visit"]
    assert rules.item(tech, "Visit")["location"] == "Room 2"
    rules.quiet(tech)


def test_outlook_delete_of_psa_appointment_is_not_reflected_and_reexported_on_next_psa_change(
    rules: Harness,
):
    tech = rules.enrol(1)
    appointment = make_appointment(tech.resource, day(1, "09:00"), title="Visit")
    rules.sync(tech)
    [tag] = rules.tags(tech)
    rules.outlook_delete(tech, rules.item(tech, "Visit")["id"])
    run = rules.sync(tech)
    assert run.outcome == SyncRun.Outcome.OK
    assert Appointment.objects.filter(pk=appointment.pk).exists()
    assert rules.items(tech) == []
    do_update_appointment(USER, appointment, title="Visit (moved)")
    run = rules.sync(tech)
    assert (run.outcome, run.errors) == (SyncRun.Outcome.OK, 0)
    # The feed never reported the delete (our create and the user's delete coalesce): this run
    # finds the copy gone; the re-export follows at the latest on the next run.
    if run.counts == {}:
        assert ItemLink.objects.get().state == ItemLink.State.EXCHANGE_DELETED
        run = rules.sync(tech)
    assert run.counts == {"appointment": {"exchange": {"created": 1}}}
    assert rules.subjects(tech) == ["Visit (moved)"]
    assert rules.tags(tech) == [tag]
    rules.quiet(tech)


def test_outlook_delete_after_a_quiet_run_is_marked_and_reexported_on_next_psa_change(
    rules: Harness,
):
    tech = rules.enrol(1)
    appointment = make_appointment(tech.resource, day(1, "09:00"), title="Visit")
    rules.sync(tech)
    rules.quiet(tech)  # the feed has shown our own create: the delete is reported next
    rules.outlook_delete(tech, rules.item(tech, "Visit")["id"])
    run = rules.sync(tech)
    assert (run.outcome, run.counts) == (SyncRun.Outcome.OK, {})
    assert ItemLink.objects.get().state == ItemLink.State.EXCHANGE_DELETED
    assert Appointment.objects.filter(pk=appointment.pk).exists()
    rules.quiet(tech)
    do_update_appointment(USER, appointment, title="Visit (moved)")
    run = rules.sync(tech)
    assert run.counts == {"appointment": {"exchange": {"created": 1}}}
    assert rules.subjects(tech) == ["Visit (moved)"]
    rules.quiet(tech)
