"""``load_demo`` makes a believable, idempotent demo around the current date."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.contrib.auth import authenticate
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import transaction
from django.db.models import Count
from django.test import RequestFactory, override_settings
from django.utils import timezone

from psa.audit.models import AuditEntry
from psa.crm.models import Account, Contact, Opportunity
from psa.demo.models import DemoItem
from psa.resources.models import Organisation, Resource
from psa.scheduling.models import Appointment, ServiceCall, Ticket, Todo
from tests import clock
from tests.builders import make_appointment

pytestmark = pytest.mark.django_db

TECHNICIANS = [f"tech{n}" for n in range(1, 9)]
FAST_HASHER = ["django.contrib.auth.hashers.MD5PasswordHasher"]
MODELS = [User, Resource, Organisation, Account, Contact, Opportunity, Ticket]
CALENDAR_MODELS = [Appointment, ServiceCall, Todo]


def load_demo(*args: str) -> str:
    out = io.StringIO()
    call_command("load_demo", *args, stdout=out)
    return out.getvalue()


@pytest.fixture(scope="module", autouse=True)
def demo(django_db_setup, django_db_blocker):
    """Load the demo once for the module, inside a transaction rolled back at the end.

    Each test runs in its own nested transaction (pytest-django), so tests that load again
    or refresh the calendar do not affect each other.
    """
    with (
        django_db_blocker.unblock(),
        # pytest-django runs with DEBUG off, where the demo commands refuse to run.
        override_settings(PASSWORD_HASHERS=FAST_HASHER, DEBUG=True),
        transaction.atomic(),
    ):
        loaded_at = clock.now()  # the command reads the clock itself, moments later
        output = load_demo()
        yield loaded_at, output
        transaction.set_rollback(True)


def counts(models: list) -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in models}


def calendar_items() -> list:
    return [item for model in CALENDAR_MODELS for item in model.objects.all()]


def test_demo_has_one_organisation_an_admin_and_eight_technicians(demo):
    assert Organisation.objects.get().name == "Northwind IT Services"
    admin = User.objects.get(username="admin")
    assert admin.is_superuser and admin.is_staff and admin.resource.active
    assert admin.has_perm("exchange_ext.manage_extension")
    for username in TECHNICIANS:
        resource = Resource.objects.get(user__username=username)
        assert resource.email == f"{username}@northwind.example"
        assert not resource.user.is_superuser
    zones = set(Resource.objects.values_list("time_zone", flat=True))
    assert {"Europe/Berlin", "Europe/London", "America/New_York"} <= zones


def test_demo_logins_authenticate_with_password_demo(demo, settings):
    settings.PASSWORD_HASHERS = FAST_HASHER
    # Login throttling (django-axes) needs the request a login comes with.
    request = RequestFactory().post("/accounts/login/")
    for username in ["admin", *TECHNICIANS]:
        assert authenticate(request, username=username, password="demo") is not None, username
    assert authenticate(request, username="tech1", password="wrong") is None


def test_demo_has_accounts_with_managers_contacts_and_opportunities(demo):
    assert Account.objects.count() >= 30
    assert not Account.objects.filter(account_manager__isnull=True).exists()
    assert Contact.objects.count() >= 100
    assert Contact.objects.filter(active=False).exists()
    assert Contact.objects.exclude(email2="").exists()
    assert Contact.objects.exclude(email3="").exists()
    stages = set(Opportunity.objects.values_list("stage", flat=True))
    assert len(stages) >= 4 and {"won", "lost"} & stages
    assert Opportunity.objects.values("owner").distinct().count() >= 4
    assert (
        Ticket.objects.filter(kind="task").exists()
        and Ticket.objects.filter(kind="ticket").exists()
    )


def test_every_technician_has_items_this_week(demo):
    now, _ = demo
    for resource in Resource.objects.all():
        local_today = now.astimezone(resource.tzinfo).date()
        monday = local_today - dt.timedelta(days=local_today.weekday())
        week_start = dt.datetime.combine(monday, dt.time(0), tzinfo=resource.tzinfo)
        week = {"start__gte": week_start, "start__lt": week_start + dt.timedelta(days=7)}
        items = (
            resource.appointments.filter(**week).count()
            + resource.service_calls.filter(**week).count()
            + resource.todos.filter(**week).count()
        )
        assert items >= 3, resource


def test_calendar_has_the_variety_a_demo_needs(demo):
    assert Appointment.objects.filter(all_day=True).exists()
    assert Appointment.objects.filter(private=True).exists()
    assert {"busy", "free", "tentative", "oof"} <= set(
        Appointment.objects.values_list("show_as", flat=True)
    )
    team_sizes = ServiceCall.objects.annotate(team=Count("resources")).values_list(
        "team", flat=True
    )
    assert sum(size >= 2 for size in team_sizes) >= 3
    assert max(team_sizes) == 3 and min(team_sizes) == 1
    assert {"new", "scheduled", "complete", "cancelled"} <= set(
        ServiceCall.objects.values_list("status", flat=True)
    )
    assert ServiceCall.objects.filter(tickets__isnull=False).distinct().count() >= 5
    assert Todo.objects.filter(completed_at__isnull=False).exists()
    assert Todo.objects.filter(completed_at__isnull=True).exists()


def test_calendar_items_are_aware_inside_the_window_and_in_local_working_hours(demo):
    now, _ = demo
    window = (now - dt.timedelta(days=14), now + dt.timedelta(days=21, minutes=5))
    for item in calendar_items():
        assert timezone.is_aware(item.start) and timezone.is_aware(item.end)
        assert window[0] <= item.start < item.end <= window[1], item
        if isinstance(item, Appointment) and item.all_day:
            local = item.start.astimezone(item.resource.tzinfo)
            assert local.time() == dt.time(0), item
            continue
        zone = item.resources.first().tzinfo if isinstance(item, ServiceCall) else None
        zone = zone or item.resource.tzinfo
        start, end = item.start.astimezone(zone), item.end.astimezone(zone)
        assert dt.time(8) <= start.time() and end.time() <= dt.time(17), item
        assert start.weekday() < 5, item


def test_demo_writes_go_through_the_actions_with_the_demo_origin(demo):
    demo_entries = AuditEntry.objects.filter(origin_kind="system", origin_source="demo")
    models = set(demo_entries.values_list("model", flat=True))
    assert {"crm.account", "crm.contact", "scheduling.servicecall", "scheduling.todo"} <= models
    assert demo_entries.filter(model="scheduling.appointment").count() == (
        Appointment.objects.count()
    )


def test_loading_twice_keeps_every_count_and_writes_nothing(demo):
    before = counts([*MODELS, *CALENDAR_MODELS, DemoItem, AuditEntry])
    output = load_demo()
    assert counts([*MODELS, *CALENDAR_MODELS, DemoItem, AuditEntry]) == before
    assert "already present" in output


def test_refresh_calendar_replaces_generated_items_and_keeps_user_items(demo):
    own = make_appointment(Resource.objects.get(user__username="tech1"), title="My own")
    generated = {(type(item), item.pk) for item in calendar_items()} - {(Appointment, own.pk)}
    before = counts([*MODELS, DemoItem])

    output = load_demo("--refresh-calendar")

    assert f"deleted {len(generated)} generated items" in output
    regenerated = {(type(item), item.pk) for item in calendar_items()}
    assert generated.isdisjoint(regenerated)
    assert (Appointment, own.pk) in regenerated
    assert counts([*MODELS, DemoItem]) == before


def test_load_demo_prints_a_summary_with_the_logins(demo):
    _, output = demo
    assert "Demo data loaded" in output and "accounts" in output
    assert "admin, tech1" in output and "tech8" in output
