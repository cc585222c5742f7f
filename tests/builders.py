"""Small builders for test data. Each takes only what a test cares about; the rest defaults.

They write through the PSA's ``do_*`` actions (origin: system "tests"), like every writer.
Dated items default to days after the test's pinned clock (``tests.clock``), and resources to
time zones that change to and from daylight-saving time, so the suite runs on any date.
"""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

from django.contrib.auth.models import Permission, User

from psa.audit.origin import Origin
from psa.crm.actions import do_create_account, do_create_contact, do_create_opportunity
from psa.crm.models import Account, Contact, Opportunity
from psa.resources.actions import do_create_resource
from psa.resources.models import Resource
from psa.scheduling.actions import (
    do_create_appointment,
    do_create_service_call,
    do_create_ticket,
    do_create_todo,
)
from psa.scheduling.models import Appointment, ServiceCall, Ticket, Todo
from tests import clock

TESTS = Origin.by_system("tests")
PASSWORD = "correct horse battery staple"
_serial = itertools.count(1)


def make_user(username: str | None = None, **fields: Any) -> User:
    username = username or f"user{next(_serial)}"
    return User.objects.create_user(username=username, password=PASSWORD, **fields)


def make_resource(
    username: str | None = None, time_zone: str = "Europe/Berlin", **fields: Any
) -> Resource:
    user = make_user(username)
    n = next(_serial)
    defaults = {
        "first_name": user.username.title(),
        "last_name": f"Tester{n}",
        "email": f"{user.username}.{n}@example.test",
        "time_zone": time_zone,
    }
    return do_create_resource(TESTS, user=user, **{**defaults, **fields})


def make_admin(username: str = "boss") -> Resource:
    """A resource whose user is a superuser (Django admin, every calendar)."""
    resource = make_resource(username)
    resource.user.is_staff = resource.user.is_superuser = True
    resource.user.save()
    return resource


def make_dispatcher(username: str = "dispatch") -> Resource:
    """A non-superuser holding ``resources.view_all_calendars``."""
    resource = make_resource(username)
    resource.user.user_permissions.add(Permission.objects.get(codename="view_all_calendars"))
    return resource


def make_account(name: str | None = None, **fields: Any) -> Account:
    defaults = {
        "name": name or f"Account {next(_serial)}",
        "street": "1 Main St",
        "city": "Springfield",
    }
    return do_create_account(TESTS, **{**defaults, **fields})


def make_contact(account: Account | None = None, **fields: Any) -> Contact:
    n = next(_serial)
    defaults = {"first_name": "Casey", "last_name": f"Contact{n}", "email": f"c{n}@client.test"}
    return do_create_contact(TESTS, account=account or make_account(), **{**defaults, **fields})


def at(text: str) -> dt.datetime:
    """An aware UTC datetime from ``"2026-03-29 10:00"``: a fixed calendar fact, for tests that
    never compare it with the clock (use ``tests.clock.day`` for everything else)."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def make_appointment(
    resource: Resource, start: dt.datetime | None = None, hours: float = 1, **fields: Any
) -> Appointment:
    """An appointment of ``hours`` from ``start`` (default: tomorrow 09:00 UTC)."""
    begin = start or clock.day(1, "09:00")
    defaults = {"title": "Site visit", "start": begin, "end": begin + dt.timedelta(hours=hours)}
    return do_create_appointment(TESTS, **{**defaults, **fields, "resource": resource})


def make_todo(resource: Resource, start: dt.datetime | None = None, **fields: Any) -> Todo:
    """A half-hour to-do from ``start`` (default: tomorrow 14:00 UTC)."""
    begin = start or clock.day(1, "14:00")
    defaults = {
        "description": "Call back about the backup report",
        "start": begin,
        "end": begin + dt.timedelta(minutes=30),
        "account": fields.pop("account", None) or make_account(),
    }
    return do_create_todo(TESTS, resource=resource, **{**defaults, **fields})


def make_service_call(
    resources: list[Resource], start: dt.datetime | None = None, **fields: Any
) -> ServiceCall:
    """A two-hour service call from ``start`` (default: the day after tomorrow, 08:00 UTC)."""
    begin = start or clock.day(2, "08:00")
    defaults = {
        "description": "Replace the firewall",
        "start": begin,
        "end": begin + dt.timedelta(hours=2),
        "account": fields.pop("account", None) or make_account(),
    }
    return do_create_service_call(TESTS, resources=resources, **{**defaults, **fields})


def make_ticket(number: str | None = None, **fields: Any) -> Ticket:
    n = next(_serial)
    defaults = {"number": number or f"T{n:05d}", "title": f"Printer offline {n}"}
    return do_create_ticket(TESTS, **{**defaults, **fields})


def make_opportunity(account: Account, owner: Resource, **fields: Any) -> Opportunity:
    defaults = {"title": f"Managed backup {next(_serial)}"}
    return do_create_opportunity(TESTS, account=account, owner=owner, **{**defaults, **fields})
