"""The time-relative half of the demo: appointments, service calls and to-dos around "now".

Items fall on weekdays from 13 days ago to 20 days ahead, inside 08:00–17:00 of each resource's
OWN time zone (a New York technician's day starts six hours after a Berlin one's), on a 30-minute
grid without overlaps per resource. A seeded random generator makes the same pattern relative to
the day it runs. Every created item is recorded as a :class:`~psa.demo.models.DemoItem`, so
``delete_calendar`` removes exactly what was generated.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import models

from psa.crm.models import Contact
from psa.demo.directory import DEMO, Directory
from psa.demo.models import DemoItem
from psa.resources.models import Resource
from psa.scheduling.actions import (
    do_create_appointment,
    do_create_service_call,
    do_create_todo,
    do_delete_appointment,
    do_delete_service_call,
    do_delete_todo,
)
from psa.scheduling.models import Appointment, ServiceCall, Ticket, Todo

SEED = 20261122
FIRST_DAY, LAST_DAY = -13, 20  # relative to today in the resource's time zone
DAY_START = dt.time(8, 0)
SLOT = dt.timedelta(minutes=30)
SLOTS_PER_DAY = 18  # 08:00–17:00

DELETERS: dict[type[models.Model], Callable[[Any, Any], None]] = {
    Appointment: do_delete_appointment,
    ServiceCall: do_delete_service_call,
    Todo: do_delete_todo,
}


@dataclass
class CalendarSummary:
    """How many items of each kind were generated."""

    appointments: int = 0
    service_calls: int = 0
    todos: int = 0

    def __str__(self) -> str:
        return (
            f"{self.appointments} appointments, {self.service_calls} service calls, "
            f"{self.todos} to-dos"
        )


def calendar_exists() -> bool:
    """True once ``generate_calendar`` has run (and ``delete_calendar`` has not since)."""
    return DemoItem.objects.exists()


def delete_calendar() -> int:
    """Delete every generated item still present, through the actions; return how many."""
    deleted = 0
    for content_type_id in DemoItem.objects.values_list("content_type", flat=True).distinct():
        model = ContentType.objects.get_for_id(content_type_id).model_class()
        ids = DemoItem.objects.filter(content_type_id=content_type_id).values("object_id")
        for item in model._default_manager.filter(pk__in=ids):
            DELETERS[model](DEMO, item)
            deleted += 1
    DemoItem.objects.all().delete()
    return deleted


def generate_calendar(
    directory: Directory, work: dict[str, Any], now: dt.datetime, seed: int = SEED
) -> CalendarSummary:
    """Create the demo calendar around ``now`` (aware) for every resource in ``directory``."""
    builder = _CalendarBuilder(directory, work, now, random.Random(seed))
    for resource in directory.resources:
        builder.fill_calendar(resource)
    DemoItem.objects.bulk_create(builder.records)
    return builder.summary


@dataclass
class _CalendarBuilder:
    directory: Directory
    work: dict[str, Any]
    now: dt.datetime
    rng: random.Random
    summary: CalendarSummary = field(default_factory=CalendarSummary)
    records: list[DemoItem] = field(default_factory=list)
    # (resource id, local date) -> taken 30-minute slot numbers
    busy: dict[tuple[int, dt.date], set[int]] = field(default_factory=lambda: defaultdict(set))

    def __post_init__(self) -> None:
        self.contacts: dict[int, list[Contact]] = defaultdict(list)
        for contact in Contact.objects.filter(active=True).order_by("pk"):
            self.contacts[contact.account_id].append(contact)

    # --- per resource and day -------------------------------------------------------------
    def fill_calendar(self, resource: Resource) -> None:
        today = self.now.astimezone(resource.tzinfo).date()
        vacation = self.pick_vacation(today)
        for offset in range(FIRST_DAY, LAST_DAY + 1):
            day = today + dt.timedelta(days=offset)
            if day.weekday() >= 5:
                if self.rng.random() < 0.1:
                    self.add_all_day(resource, day, self.work["weekend_all_day_appointment"])
            elif day in vacation:
                self.add_all_day(resource, day, self.work["vacation_appointment"])
            else:
                self.fill_workday(resource, day)

    def fill_workday(self, resource: Resource, day: dt.date) -> None:
        if self.rng.random() < 0.06:
            entry = self.rng.choice(self.work["all_day_appointments"])
            self.add_all_day(resource, day, entry)
            if entry.get("show_as", "busy") in ("busy", "oof"):
                return  # away all day: nothing else is booked
        if self.rng.random() < 0.5:
            self.add_service_call(resource, day)
        for _ in range(self.rng.randint(0, 2)):
            self.add_appointment(resource, day)
        if self.rng.random() < 0.5 or not self.busy[(resource.pk, day)]:
            # Every working day gets at least one item, so each agenda looks lived in.
            self.add_todo(resource, day)

    # --- items ----------------------------------------------------------------------------
    def add_all_day(self, resource: Resource, day: dt.date, entry: dict[str, Any]) -> None:
        start = dt.datetime.combine(day, dt.time(0), tzinfo=resource.tzinfo)
        end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tzinfo=resource.tzinfo)
        self.busy[(resource.pk, day)].update(range(SLOTS_PER_DAY))
        self.record(
            do_create_appointment(
                DEMO,
                resource=resource,
                title=entry["title"],
                start=start.astimezone(dt.UTC),
                end=end.astimezone(dt.UTC),
                all_day=True,
                show_as=entry.get("show_as", "busy"),
                private=entry.get("private", False),
            )
        )
        self.summary.appointments += 1

    def add_appointment(self, resource: Resource, day: dt.date) -> None:
        span = self.book([resource], day, self.rng.choice([1, 2, 2, 3]))
        if span is None:
            return
        entry = self.rng.choice(self.work["appointments"])
        self.record(
            do_create_appointment(
                DEMO,
                resource=resource,
                title=entry["title"],
                location=entry.get("location", ""),
                start=span[0],
                end=span[1],
                show_as=entry.get("show_as", "busy"),
                private=entry.get("private", False),
            )
        )
        self.summary.appointments += 1

    def add_service_call(self, resource: Resource, day: dt.date) -> None:
        team = [resource, *self.pick_colleagues(resource, day)]
        span = self.book(team, day, self.rng.choice([2, 3, 4, 4, 6]))
        if span is None:
            return
        description = self.rng.choice(self.work["service_calls"])
        tickets = self.pick_tickets()
        account = tickets[0].account if tickets else self.rng.choice(self.directory.accounts)
        self.record(
            do_create_service_call(
                DEMO,
                account=account,
                description=description,
                start=span[0],
                end=span[1],
                status=self.service_call_status(span),
                location_override="Remote" if description.startswith("Remote") else "",
                resources=team,
                tickets=tickets,
            )
        )
        self.summary.service_calls += 1

    def add_todo(self, resource: Resource, day: dt.date) -> None:
        span = self.book([resource], day, 1)
        if span is None:
            return
        entry = self.rng.choice(self.work["todos"])
        account = self.rng.choice(self.directory.accounts)
        contacts = self.contacts[account.pk]
        contact = self.rng.choice(contacts) if contacts and self.rng.random() < 0.7 else None
        done = span[1] < self.now and self.rng.random() < 0.7
        self.record(
            do_create_todo(
                DEMO,
                resource=resource,
                account=account,
                contact=contact,
                action_type=entry["action_type"],
                description=entry["description"],
                start=span[0],
                end=span[1],
                completed_at=span[1] if done else None,
            )
        )
        self.summary.todos += 1

    # --- choices --------------------------------------------------------------------------
    def pick_vacation(self, today: dt.date) -> set[dt.date]:
        """Some people take a few days off (2–4 days in a row) somewhere in the window."""
        if self.rng.random() >= 0.4:
            return set()
        first = today + dt.timedelta(days=self.rng.randint(FIRST_DAY, LAST_DAY - 4))
        return {first + dt.timedelta(days=n) for n in range(self.rng.randint(2, 4))}

    def pick_colleagues(self, resource: Resource, day: dt.date) -> list[Resource]:
        """Sometimes one or two colleagues in the same time zone join a service call."""
        if self.rng.random() >= 0.35:
            return []
        same_zone = [
            other
            for other in self.directory.resources
            if other.pk != resource.pk and other.time_zone == resource.time_zone
        ]
        return self.rng.sample(same_zone, min(len(same_zone), self.rng.choice([1, 1, 2])))

    def pick_tickets(self) -> list[Ticket]:
        if self.rng.random() < 0.25 or not self.directory.tickets:
            return []
        return [self.rng.choice(self.directory.tickets)]

    def service_call_status(self, span: tuple[dt.datetime, dt.datetime]) -> str:
        if span[1] <= self.now:
            return "cancelled" if self.rng.random() < 0.12 else "complete"
        if span[0] <= self.now:
            return "scheduled"
        return "new" if self.rng.random() < 0.25 else "scheduled"

    def book(
        self, team: list[Resource], day: dt.date, slots: int
    ) -> tuple[dt.datetime, dt.datetime] | None:
        """Take ``slots`` free consecutive slots for the whole team; None when none are free.

        The span is computed in the first member's time zone; colleagues share that zone.
        """
        taken = set().union(*(self.busy[(member.pk, day)] for member in team))
        free = [
            first
            for first in range(SLOTS_PER_DAY - slots + 1)
            if taken.isdisjoint(range(first, first + slots))
        ]
        if not free:
            return None
        first = self.rng.choice(free)
        for member in team:
            self.busy[(member.pk, day)].update(range(first, first + slots))
        start = dt.datetime.combine(day, DAY_START, tzinfo=team[0].tzinfo) + first * SLOT
        return start.astimezone(dt.UTC), (start + slots * SLOT).astimezone(dt.UTC)

    def record(self, item: models.Model) -> None:
        content_type = ContentType.objects.get_for_model(item)
        self.records.append(DemoItem(content_type=content_type, object_id=item.pk))
