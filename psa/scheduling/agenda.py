"""A resource's agenda: their appointments, service calls and to-dos over a range of days.

Days are the resource's local days (their time zone, not the server's or the viewer's). An item
appears on every day it overlaps; a to-do whose due time equals its start still shows on its day.
The whole agenda costs a constant number of queries, however many items it holds.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal
from zoneinfo import ZoneInfo

from django.db.models import Q, QuerySet
from django.utils.translation import gettext as _

from psa.resources.models import Resource
from psa.scheduling.localtime import day_start, local_today, week_start
from psa.scheduling.models import Appointment, ServiceCall, Todo

MAX_DAYS = 31
DEFAULT_DAYS = 7

Kind = Literal["appointment", "service_call", "todo"]
Item = Appointment | ServiceCall | Todo
_KIND_ORDER: tuple[Kind, ...] = ("appointment", "service_call", "todo")


@dataclass(frozen=True)
class AgendaWindow:
    """The local days shown: ``days`` days from ``start``."""

    start: dt.date
    days: int = DEFAULT_DAYS

    @classmethod
    def this_week(cls, tz: ZoneInfo, days: int = DEFAULT_DAYS) -> AgendaWindow:
        return cls(week_start(local_today(tz)), days)

    @property
    def dates(self) -> list[dt.date]:
        return [self.start + dt.timedelta(days=n) for n in range(self.days)]

    @property
    def last(self) -> dt.date:
        return self.start + dt.timedelta(days=self.days - 1)

    @property
    def previous_start(self) -> dt.date:
        return self.start - dt.timedelta(days=self.days)

    @property
    def next_start(self) -> dt.date:
        return self.start + dt.timedelta(days=self.days)


@dataclass(frozen=True)
class AgendaEntry:
    """One item on one day. ``before``/``after``: it began before or goes on after that day."""

    kind: Kind
    item: Item
    all_day: bool
    before: bool
    after: bool
    when: str

    @property
    def sort_key(self) -> tuple[bool, dt.datetime, int]:
        return (not self.all_day, self.item.start, _KIND_ORDER.index(self.kind))


@dataclass
class AgendaDay:
    """``clock_change``: the zone's UTC offset changes that day, so times show their zone
    abbreviation (01:30 EDT and 01:30 EST are an hour apart)."""

    date: dt.date
    is_today: bool
    clock_change: bool
    entries: list[AgendaEntry] = field(default_factory=list)


@dataclass(frozen=True)
class Agenda:
    resource: Resource
    window: AgendaWindow
    days: list[AgendaDay]

    @property
    def time_zone(self) -> str:
        return self.resource.time_zone

    @property
    def is_empty(self) -> bool:
        return not any(day.entries for day in self.days)


def build_agenda(resource: Resource, window: AgendaWindow) -> Agenda:
    """The agenda of ``resource`` for ``window``, in the resource's time zone (3–6 queries)."""
    tz = resource.tzinfo
    today = local_today(tz)
    bounds = [day_start(date, tz) for date in [*window.dates, window.next_start]]
    days = [
        AgendaDay(date, date == today, _offset(lo, tz) != _offset(hi, tz))
        for date, lo, hi in zip(window.dates, bounds, bounds[1:], strict=False)
    ]
    for kind, item in _items(resource, bounds[0], bounds[-1]):
        all_day = kind == "appointment" and item.all_day
        for day, lo, hi in zip(days, bounds, bounds[1:], strict=False):
            if _overlaps(item.start, item.end, lo, hi):
                when = _when(item, lo, hi, tz, all_day, day.clock_change)
                day.entries.append(
                    AgendaEntry(kind, item, all_day, item.start < lo, item.end > hi, when)
                )
    for day in days:
        day.entries.sort(key=lambda entry: entry.sort_key)
    return Agenda(resource, window, days)


def _when(
    item: Item, lo: dt.datetime, hi: dt.datetime, tz: ZoneInfo, all_day: bool, zoned: bool
) -> str:
    """``09:00–10:00``; ``…`` where the item runs over the day's edge; zone abbreviations on a
    day the clocks change (Django's ``T`` format leaves them out exactly for repeated times)."""
    if all_day:
        return _("All day")
    start = "…" if item.start < lo else _clock(item.start, tz, zoned)
    if item.end == item.start:
        return start
    return f"{start}–{'…' if item.end > hi else _clock(item.end, tz, zoned)}"


def _clock(instant: dt.datetime, tz: ZoneInfo, zoned: bool) -> str:
    local = instant.astimezone(tz)
    return f"{local:%H:%M} {local.tzname()}" if zoned else f"{local:%H:%M}"


def _offset(instant: dt.datetime, tz: ZoneInfo) -> dt.timedelta | None:
    return instant.astimezone(tz).utcoffset()


def _overlaps(start: dt.datetime, end: dt.datetime, lo: dt.datetime, hi: dt.datetime) -> bool:
    # Half-open ranges; a zero-length item (a to-do due when it starts) belongs to its start's day.
    return start < hi and (end > lo or (start == end and start >= lo))


def _in_range(lo: dt.datetime, hi: dt.datetime) -> Q:
    return Q(start__lt=hi) & (Q(end__gt=lo) | Q(start__gte=lo))


def _items(resource: Resource, lo: dt.datetime, hi: dt.datetime) -> list[tuple[Kind, Item]]:
    items: list[tuple[Kind, Item]] = []
    items += [("appointment", a) for a in appointments_of(resource).filter(_in_range(lo, hi))]
    items += [("service_call", s) for s in service_calls_of(resource).filter(_in_range(lo, hi))]
    items += [("todo", t) for t in todos_of(resource).filter(_in_range(lo, hi))]
    return items


def appointments_of(resource: Resource) -> QuerySet[Appointment]:
    return Appointment.objects.filter(resource=resource)


def service_calls_of(resource: Resource) -> QuerySet[ServiceCall]:
    """The calls ``resource`` is assigned to, with what the agenda shows of them prefetched."""
    return (
        ServiceCall.objects.filter(resources=resource)
        .select_related("account")
        .prefetch_related("tickets", "resources")
    )


def todos_of(resource: Resource) -> QuerySet[Todo]:
    return Todo.objects.filter(resource=resource).select_related("account", "contact")
