"""The calendar through its views: agenda rendering, time zones, CRUD with audit, form errors."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from psa.audit.models import AuditEntry
from psa.scheduling.models import Appointment, ServiceCall, Todo
from tests import clock
from tests.builders import (
    at,
    make_account,
    make_appointment,
    make_contact,
    make_dispatcher,
    make_resource,
    make_service_call,
    make_ticket,
    make_todo,
)

pytestmark = pytest.mark.django_db

CALENDAR = reverse("calendar")


def day_html(response, date: str) -> str:
    """The agenda's markup for one local day (``YYYY-MM-DD``)."""
    html = response.content.decode()
    start = html.index(f'id="day-{date}"')
    end = html.find('<li class="day', start + 1)
    return html[start : end if end != -1 else len(html)]


def local_date(resource, instant: dt.datetime) -> str:
    """The resource's local date of ``instant`` (``YYYY-MM-DD``): the agenda day it shows on."""
    return instant.astimezone(resource.tzinfo).date().isoformat()


def times_in(section: str) -> list[str]:
    return re.findall(r"\d\d:\d\d", re.sub(r"\s+", "", section))


def logged_in(client, resource):
    client.force_login(resource.user)
    return client


def audit_for(model: str, pk: int, action: str) -> AuditEntry:
    return AuditEntry.objects.get(model=model, object_id=str(pk), action=action)


# --- the agenda ------------------------------------------------------------------------------


def test_agenda_shows_this_weeks_items_of_the_users_own_resource_by_default(client):
    tech = make_resource("tech1")
    # Noon today on the resource's wall clock: "this week" and "today" are their local ones.
    noon = clock.day(0, "12:00", tz=tech.time_zone)
    make_appointment(tech, start=noon, title="Quarterly review")
    response = logged_in(client, tech).get(CALENDAR)
    assert response.status_code == 200
    today = noon.astimezone(tech.tzinfo).date()
    monday = today - dt.timedelta(days=today.weekday())
    html = response.content.decode()
    assert re.findall(r'id="day-([\d-]+)"', html)[0] == monday.isoformat()
    assert f'class="day today" id="day-{today.isoformat()}"' in html
    assert "Quarterly review" in day_html(response, today.isoformat())


def test_agenda_renders_wall_clock_times_in_berlin_on_both_sides_of_spring_forward(client):
    tech = make_resource(time_zone="Europe/Berlin")
    make_appointment(tech, start=at("2026-03-28 09:00"), title="Before")
    make_appointment(tech, start=at("2026-03-29 09:00"), title="After")
    response = logged_in(client, tech).get(CALENDAR, {"start": "2026-03-23"})
    assert "Europe/Berlin" in response.content.decode()
    assert times_in(day_html(response, "2026-03-28")) == ["10:00", "11:00"]
    assert times_in(day_html(response, "2026-03-29")) == ["11:00", "12:00"]
    assert "CEST" in day_html(response, "2026-03-29")  # the clocks change that day


def test_agenda_renders_wall_clock_times_in_berlin_on_both_sides_of_fall_back(client):
    tech = make_resource(time_zone="Europe/Berlin")
    make_appointment(tech, start=at("2026-10-24 09:00"), title="Before")
    make_appointment(tech, start=at("2026-10-25 09:00"), title="After")
    response = logged_in(client, tech).get(CALENDAR, {"start": "2026-10-19"})
    assert times_in(day_html(response, "2026-10-24")) == ["11:00", "12:00"]
    assert times_in(day_html(response, "2026-10-25")) == ["10:00", "11:00"]


def test_agenda_in_new_york_shows_the_repeated_hour_twice_on_2026_11_01(client):
    tech = make_resource(time_zone="America/New_York")
    make_appointment(tech, start=at("2026-11-01 05:30"), hours=0.5, title="First 1:30 (EDT)")
    make_appointment(tech, start=at("2026-11-01 06:30"), hours=0.5, title="Second 1:30 (EST)")
    make_appointment(tech, start=at("2026-10-31 14:00"), title="Saturday")
    response = logged_in(client, tech).get(CALENDAR, {"start": "2026-10-26"})
    assert times_in(day_html(response, "2026-10-31")) == ["10:00", "11:00"]
    sunday = re.sub(r"<[^>]+>|\s+", "", day_html(response, "2026-11-01"))
    assert "01:30EDT–01:00EST" in sunday and "01:30EST–02:00EST" in sunday


def test_agenda_days_are_the_resources_local_days_not_utc_days(client):
    tech = make_resource(time_zone="Europe/Berlin")
    make_appointment(tech, start=at("2026-03-29 23:30"), title="Monday early")
    response = logged_in(client, tech).get(CALENDAR, {"start": "2026-03-30", "days": "1"})
    assert "Monday early" in day_html(response, "2026-03-30")
    assert times_in(day_html(response, "2026-03-30")) == ["01:30", "02:30"]


def test_all_day_appointment_is_shown_as_all_day_without_times(client):
    tech = make_resource(time_zone="Europe/Berlin")
    make_appointment(
        tech, start=at("2026-03-29 22:00"), hours=24, all_day=True, title="Training day"
    )
    response = logged_in(client, tech).get(CALENDAR, {"start": "2026-03-30", "days": "3"})
    monday = day_html(response, "2026-03-30")
    assert "All day" in monday and "Training day" in monday
    assert times_in(monday) == []
    assert "Training day" not in day_html(response, "2026-03-31")


def test_agenda_marks_private_read_only_and_exchange_appointments(client):
    tech = make_resource()
    doctor = make_appointment(tech, title="Doctor", private=True)
    make_appointment(tech, title="Board meeting", read_only=True, origin="exchange")
    day = local_date(tech, doctor.start)
    html = day_html(logged_in(client, tech).get(CALENDAR, {"start": day}), day)
    assert "badge private" in html and "badge readonly" in html and "badge exchange" in html


def test_agenda_shows_service_call_account_status_location_and_tickets(client):
    tech = make_resource()
    account = make_account("Acme Ltd", street="5 Harbour Rd", city="Portsmouth")
    call = make_service_call([tech], account=account, status="scheduled")
    call.tickets.add(make_ticket("T-4711", title="Firewall down"))
    day = local_date(tech, call.start)
    html = day_html(logged_in(client, tech).get(CALENDAR, {"start": day}), day)
    for text in ("Acme Ltd", "Scheduled", "5 Harbour Rd", "T-4711", "Firewall down"):
        assert text in html


def test_agenda_marks_completed_todos(client):
    tech = make_resource()
    due = clock.day(1, "14:00")
    make_todo(tech, start=due, completed_at=due + dt.timedelta(hours=1))
    day = local_date(tech, due)
    html = day_html(logged_in(client, tech).get(CALENDAR, {"start": day}), day)
    assert "entry kind-todo done" in html and "Completed" in html


def test_agenda_navigation_links_move_by_the_number_of_days_shown(client):
    tech = make_resource()
    html = logged_in(client, tech).get(CALENDAR, {"start": "2026-11-23", "days": "3"})
    html = html.content.decode()
    assert "start=2026-11-20&amp;days=3" in html and "start=2026-11-26&amp;days=3" in html


@pytest.mark.parametrize(
    ("params", "warning"),
    [
        ({"days": "0"}, "“days” must be a number"),
        ({"days": "99"}, "“days” must be a number"),
        ({"days": "x"}, "“days” must be a number"),
        ({"start": "yesterday"}, "“start” must be a date"),
        ({"start": "0001-01-01"}, "“start” must be a date"),
    ],
)
def test_bad_agenda_parameters_fall_back_with_a_message(client, params, warning):
    response = logged_in(client, make_resource()).get(CALENDAR, params)
    assert response.status_code == 200
    assert warning in response.content.decode()


def test_malformed_resource_parameter_is_a_bad_request(client):
    assert logged_in(client, make_resource()).get(CALENDAR, {"resource": "abc"}).status_code == 400


def test_unknown_resource_is_not_found(client):
    assert (
        logged_in(client, make_resource()).get(CALENDAR, {"resource": "99999"}).status_code == 404
    )


def test_user_without_a_resource_gets_a_friendly_page(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("nobody"))
    response = client.get(CALENDAR)
    assert response.status_code == 200
    assert "not linked to a PSA resource" in response.content.decode()


def test_dispatcher_gets_a_resource_selector_and_sees_another_technicians_calendar(client):
    tech = make_resource(first_name="Tina")
    visit = make_appointment(tech, title="Visit by Tina")
    day = local_date(tech, visit.start)
    response = logged_in(client, make_dispatcher()).get(
        CALENDAR, {"resource": tech.pk, "start": day}
    )
    html = response.content.decode()
    assert 'name="resource"' in html and "Visit by Tina" in day_html(response, day)


def add_items(tech, account, count: int) -> None:
    for n in range(count):
        day = at(f"2026-11-{23 + n % 7} {8 + n % 8:02d}:00")
        make_appointment(tech, start=day)
        make_todo(tech, start=day, account=account, contact=make_contact(account))
        make_service_call([tech], start=day, account=account).tickets.add(make_ticket())


def count_agenda_queries(client) -> tuple[int, str]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(CALENDAR, {"start": "2026-11-23"})
    return len(queries), response.content.decode()


def test_agenda_query_count_is_the_same_for_5_and_50_items(client):
    tech, account = make_resource(), make_account()
    client = logged_in(client, tech)
    add_items(tech, account, 5)
    few, html = count_agenda_queries(client)
    assert html.count("entry kind-") == 15
    add_items(tech, account, 45)
    many, html = count_agenda_queries(client)
    assert html.count("entry kind-") == 150
    assert few == many <= 12


# --- appointments ----------------------------------------------------------------------------


def test_technician_creates_an_appointment_in_their_own_zone_and_it_is_audited(client):
    tech = make_resource(time_zone="Europe/Berlin")
    response = logged_in(client, tech).post(
        reverse("appointment_create"),
        {
            "title": "Install",
            "start": "2026-03-30T09:00",
            "end": "2026-03-30T10:30",
            "show_as": "busy",
        },
    )
    assert response.status_code == 302
    appointment = Appointment.objects.get(resource=tech)
    assert (appointment.start, appointment.end) == (at("2026-03-30 07:00"), at("2026-03-30 08:30"))
    entry = audit_for("scheduling.appointment", appointment.pk, "create")
    assert (entry.origin_kind, entry.user_id) == ("user", tech.user_id)
    assert "start=2026-03-30" in response["Location"]


@pytest.mark.parametrize(
    ("language", "start_time", "end_time"),
    [("de", "15:00", "16:30"), ("en-us", "3:00 PM", "4:30 pm"), ("ja", "１５:００", "16:30")],
)
def test_date_and_time_are_posted_apart_in_the_users_clock(client, language, start_time, end_time):
    """The split inputs: an ISO date and a typed time (24 h, or 12 h in US English), read on
    the resource's wall clock (Berlin, CEST on 30 March 2026: UTC+2)."""
    tech = make_resource(time_zone="Europe/Berlin", language=language)
    response = logged_in(client, tech).post(
        reverse("appointment_create"),
        {
            "title": "Install",
            "start_0": "2026-03-30",
            "start_1": start_time,
            "end_0": "2026-03-30",
            "end_1": end_time,
            "show_as": "busy",
        },
    )
    assert response.status_code == 302
    appointment = Appointment.objects.get(resource=tech)
    assert (appointment.start, appointment.end) == (at("2026-03-30 13:00"), at("2026-03-30 14:30"))


@pytest.mark.parametrize("time_text", ["25:00", "15", "13:00 PM", "noon"])
def test_a_time_that_is_not_one_is_a_field_error(client, time_text):
    tech = make_resource()
    data = {"title": "X", "start_0": "2026-11-23", "start_1": time_text, "show_as": "busy"}
    data |= {"end_0": "2026-11-23", "end_1": "23:00"}
    response = logged_in(client, tech).post(reverse("appointment_create"), data)
    assert response.status_code == 400
    assert "Enter a date and time like 2026-03-30 09:00." in response.content.decode()
    assert not Appointment.objects.exists()


@pytest.mark.parametrize(
    ("language", "day", "shown"),
    [
        ("en", "23/11/2026", "15:00"),
        ("de", "23.11.2026", "15:00"),
        ("ja", "2026/11/23", "15:00"),
        ("zh-hans", "2026/11/23", "15:00"),
        ("en-us", "11/23/2026", "3:00 PM"),
    ],
)
def test_the_date_and_time_inputs_show_the_users_formats(client, language, day, shown):
    """Not the browser's: a native date input would show 11/23/2026 in an American Chromium
    whatever the product's language (SPEC §1)."""
    tech = make_resource(time_zone="Europe/Berlin", language=language)
    appointment = make_appointment(tech, start=at("2026-11-23 14:00"))  # 15:00 in Berlin
    html = logged_in(client, tech).get(reverse("appointment_edit", args=[appointment.pk]))
    html = html.content.decode()
    assert f'<html lang="{language}"' in html
    assert f'type="text" name="start_0" value="{day}"' in html
    assert f'type="text" name="start_1" value="{shown}"' in html
    assert 'type="date"' not in html and "datetime-local" not in html


def test_all_day_appointment_spans_local_midnight_to_midnight(client):
    tech = make_resource(time_zone="Europe/Berlin")
    logged_in(client, tech).post(
        reverse("appointment_create"),
        {
            "title": "Offsite",
            "start": "2026-03-28T00:00",
            "end": "2026-03-29T00:00",
            "all_day": "on",
            "show_as": "oof",
        },
    )
    appointment = Appointment.objects.get(resource=tech)
    assert appointment.all_day
    assert (appointment.start, appointment.end) == (at("2026-03-27 23:00"), at("2026-03-29 22:00"))


def test_technician_edits_an_appointment_and_the_change_is_audited(client):
    tech = make_resource()
    appointment = make_appointment(tech)
    response = logged_in(client, tech).post(
        reverse("appointment_edit", args=[appointment.pk]),
        {
            "title": "Moved visit",
            "start": "2026-11-23T11:00",
            "end": "2026-11-23T12:00",
            "show_as": "tentative",
        },
    )
    assert response.status_code == 302
    appointment.refresh_from_db()
    # 11:00 on the resource's Berlin wall clock (CET in November) is 10:00 UTC.
    assert (appointment.title, appointment.start) == ("Moved visit", at("2026-11-23 10:00"))
    entry = audit_for("scheduling.appointment", appointment.pk, "update")
    assert entry.user_id == tech.user_id and entry.changes["title"][1] == "Moved visit"


def test_delete_asks_for_confirmation_then_deletes_on_post(client):
    tech = make_resource()
    appointment = make_appointment(tech)
    url = reverse("appointment_delete", args=[appointment.pk])
    client = logged_in(client, tech)
    assert "Delete this appointment?" in client.get(url).content.decode()
    assert Appointment.objects.filter(pk=appointment.pk).exists()
    assert client.post(url).status_code == 302
    assert not Appointment.objects.filter(pk=appointment.pk).exists()
    assert audit_for("scheduling.appointment", appointment.pk, "delete").user_id == tech.user_id


def test_end_before_start_is_a_field_error_and_keeps_the_input(client):
    tech = make_resource()
    response = logged_in(client, tech).post(
        reverse("appointment_create"),
        {
            "title": "Backwards <b>",
            "start": "2026-11-23T10:00",
            "end": "2026-11-23T09:00",
            "show_as": "busy",
            "location": "Room 7",
        },
    )
    html = response.content.decode()
    assert response.status_code == 400
    assert "The end must be after the start." in html
    assert 'value="Backwards &lt;b&gt;"' in html and 'value="Room 7"' in html
    # The posted end comes back split into its date and its time in the language's formats.
    assert 'name="end_0" value="23/11/2026"' in html and 'name="end_1" value="09:00"' in html
    assert not Appointment.objects.exists()


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        ("2026-03-29T02:30", "2026-03-29T04:00", "does not exist in Europe/Berlin"),
        ("2026-10-25T01:00", "2026-10-25T02:30", "happens twice in Europe/Berlin"),
    ],
    ids=["skipped_by_spring_forward", "repeated_by_fall_back"],
)
def test_a_local_time_a_dst_change_skips_or_repeats_is_a_field_error(client, start, end, message):
    tech = make_resource(time_zone="Europe/Berlin")
    response = logged_in(client, tech).post(
        reverse("appointment_create"),
        {"title": "Night shift", "start": start, "end": end, "show_as": "busy"},
    )
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Appointment.objects.exists()


def test_editing_another_field_keeps_an_existing_ambiguous_time(client):
    tech = make_resource(time_zone="Europe/Berlin")
    # 01:30 UTC is the second 02:30 in Berlin on 2026-10-25 (after the clocks went back).
    appointment = make_appointment(tech, start=at("2026-10-25 01:30"), hours=1)
    response = logged_in(client, tech).post(
        reverse("appointment_edit", args=[appointment.pk]),
        {
            "title": "Renamed",
            "start": "2026-10-25T02:30",
            "end": "2026-10-25T03:30",
            "show_as": "busy",
        },
    )
    assert response.status_code == 302
    appointment.refresh_from_db()
    assert (appointment.title, appointment.start) == ("Renamed", at("2026-10-25 01:30"))


def test_read_only_appointment_shows_a_read_only_page_and_refuses_changes(client):
    tech = make_resource()
    appointment = make_appointment(tech, read_only=True, origin="exchange", title="All hands")
    client = logged_in(client, tech)
    url = reverse("appointment_edit", args=[appointment.pk])
    page = client.get(url)
    assert page.status_code == 200 and "Read-only" in page.content.decode()
    assert "<form" not in page.content.decode().split("<main", 1)[1]
    assert client.post(url, {"title": "Hacked"}).status_code == 403
    assert client.post(reverse("appointment_delete", args=[appointment.pk])).status_code == 403
    appointment.refresh_from_db()
    assert appointment.title == "All hands"


def test_redirect_after_save_follows_a_local_next_but_not_an_external_one(client):
    tech = make_resource()
    client = logged_in(client, tech)
    data = {"title": "X", "start": "2026-11-23T09:00", "end": "2026-11-23T10:00", "show_as": "busy"}
    evil = client.post(reverse("appointment_create") + "?next=https://evil.example/", data)
    assert evil["Location"].startswith(CALENDAR)
    local = client.post(reverse("appointment_create"), {**data, "next": "/crm/accounts/"})
    assert local["Location"] == "/crm/accounts/"


# --- to-dos ----------------------------------------------------------------------------------


def test_technician_creates_completes_and_deletes_a_todo(client):
    tech = make_resource(time_zone="America/New_York")
    account = make_account()
    client = logged_in(client, tech)
    data = {
        "account": account.pk,
        "action_type": "phone_call",
        "description": "Call Bob",
        "start": "2026-11-23T09:00",
        "end": "2026-11-23T09:00",
    }
    assert client.post(reverse("todo_create"), data).status_code == 302
    todo = Todo.objects.get(resource=tech)
    assert todo.start == at("2026-11-23 14:00") and todo.completed_at is None
    assert audit_for("scheduling.todo", todo.pk, "create").user_id == tech.user_id
    client.post(reverse("todo_edit", args=[todo.pk]), {**data, "completed": "on"})
    todo.refresh_from_db()
    assert todo.completed
    assert audit_for("scheduling.todo", todo.pk, "update").changes["completed_at"][0] is None
    client.post(reverse("todo_delete", args=[todo.pk]))
    assert not Todo.objects.filter(pk=todo.pk).exists()


def test_todo_due_before_start_is_a_field_error(client):
    tech = make_resource()
    response = logged_in(client, tech).post(
        reverse("todo_create"),
        {
            "account": make_account().pk,
            "action_type": "email",
            "description": "Mail",
            "start": "2026-11-23T09:00",
            "end": "2026-11-23T08:00",
        },
    )
    assert response.status_code == 400
    assert "The due time cannot be before the start." in response.content.decode()


def test_a_contact_of_another_account_becomes_an_error_on_the_contact_field(client):
    tech = make_resource()
    response = logged_in(client, tech).post(
        reverse("todo_create"),
        {
            "account": make_account().pk,
            "contact": make_contact().pk,
            "action_type": "email",
            "description": "Mail",
            "start": "2026-11-23T09:00",
            "end": "2026-11-23T10:00",
        },
    )
    assert response.status_code == 400
    form = response.context["form"]
    assert form.errors["contact"] == ["The contact must belong to the to-do's account."]


# --- service calls ---------------------------------------------------------------------------


def test_dispatcher_reassigns_a_service_call_and_the_change_is_audited(client):
    first, second = make_resource(), make_resource()
    call = make_service_call([first])
    dispatcher = make_dispatcher()
    response = logged_in(client, dispatcher).post(
        reverse("service_call_edit", args=[call.pk]),
        {
            "description": call.description,
            "start": "2026-11-24T08:00",
            "end": "2026-11-24T10:00",
            "status": "scheduled",
            "resources": [first.pk, second.pk],
        },
    )
    assert response.status_code == 302
    assert set(call.resources.all()) == {first, second}
    entry = audit_for("scheduling.servicecall", call.pk, "update")
    assert entry.user_id == dispatcher.user_id
    assert entry.changes["resources"] == [[first.pk], sorted([first.pk, second.pk])]


def test_assigned_technician_edits_a_service_call_but_cannot_change_its_assignment(client):
    tech, other = make_resource(), make_resource()
    call = make_service_call([tech])
    response = logged_in(client, tech).post(
        reverse("service_call_edit", args=[call.pk]),
        {
            "description": "Done, replaced PSU",
            "start": "2026-11-24T08:00",
            "end": "2026-11-24T10:00",
            "status": "complete",
            "resources": [other.pk],
        },
    )
    assert response.status_code == 302
    call.refresh_from_db()
    assert call.status == "complete" and list(call.resources.all()) == [tech]


def test_dispatcher_creates_a_service_call_with_tickets(client):
    tech = make_resource()
    ticket = make_ticket()
    dispatcher = make_dispatcher()
    response = logged_in(client, dispatcher).post(
        reverse("service_call_create"),
        {
            "account": make_account().pk,
            "description": "Patch servers",
            "status": "new",
            "start": "2026-11-25T08:00",
            "end": "2026-11-25T09:00",
            "resources": [tech.pk],
            "tickets": [ticket.pk],
        },
    )
    assert response.status_code == 302
    call = ServiceCall.objects.get()
    assert list(call.resources.all()) == [tech] and list(call.tickets.all()) == [ticket]
    assert audit_for("scheduling.servicecall", call.pk, "create").user_id == dispatcher.user_id


def test_an_item_spanning_midnight_shows_on_both_days_with_open_ends(client):
    tech = make_resource(time_zone="Europe/Berlin")
    make_appointment(tech, start=at("2026-03-30 20:00"), hours=4, title="Night migration")
    response = logged_in(client, tech).get(CALENDAR, {"start": "2026-03-30", "days": "2"})
    assert "22:00–…" in day_html(response, "2026-03-30")
    assert "…–02:00" in day_html(response, "2026-03-31")


def test_the_forms_list_names_in_the_readers_order(client):
    """Accounts, contacts and resources sort with umlauts beside their base letter."""
    dispatcher = make_dispatcher()
    for name in ("Zeta", "Bäckerei", "Apfel", "Ärzte", "Brightwater"):
        make_account(name, street="", city="")
    acme = make_account("Acme")
    for first in ("Zoe", "Özlem", "Anna"):
        make_contact(acme, first_name=first, last_name="Meyer")
    for n, last in enumerate(("Zimmer", "Öztürk", "Albers")):
        make_resource(f"tech{n}", last_name=last)
    client = logged_in(client, dispatcher)
    todo = client.get(reverse("todo_create")).content.decode()
    accounts = re.findall(r">(Zeta|Bäckerei|Apfel|Ärzte|Brightwater)<", todo)
    assert accounts == ["Apfel", "Ärzte", "Bäckerei", "Brightwater", "Zeta"]
    assert re.findall(r">(\w+) Meyer \(Acme\)<", todo) == ["Anna", "Özlem", "Zoe"]
    call = client.get(reverse("service_call_create")).content.decode()
    assert re.findall(r"Tech\d (Zimmer|Öztürk|Albers)", call) == ["Albers", "Öztürk", "Zimmer"]
