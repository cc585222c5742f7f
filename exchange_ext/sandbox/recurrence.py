"""Recurrence patterns ⇄ EWS XML, and their expansion into occurrences (pure: no clock, no I/O).

The model mirrors ``t:RecurrenceType`` / ``t:TaskRecurrenceType`` in Microsoft's types.xsd:
one pattern (how the dates repeat) plus one range (where the series starts and stops).
https://learn.microsoft.com/exchange/client-developer/web-service-reference/recurrence-recurrencetype

Public API
----------
- dataclasses ``Recurrence``, the patterns (``DailyPattern``, ``WeeklyPattern``,
  ``AbsoluteMonthlyPattern``, ``RelativeMonthlyPattern``, ``AbsoluteYearlyPattern``,
  ``RelativeYearlyPattern`` and the task-only ``*Regeneration`` patterns) and the ranges
  (``NoEndRange``, ``EndDateRange``, ``NumberedRange``); ``Occurrence``.
- ``parse_recurrence(element)`` / ``recurrence_to_xml(rec)``.
- ``expand(...)``, ``first_and_last(...)``, ``occurrence_by_index(...)``, ``index_of(...)``.

Semantics chosen (and why)
--------------------------
- Dates come from the pattern, starting at the range's ``StartDate``; the time of day and the
  duration come from the master's first occurrence (``start``/``end``) as WALL-CLOCK values in
  the series' time zone ``tz``. Exchange stores occurrences as local minute offsets from
  midnight, so a 09:00 Berlin meeting stays at 09:00 local across DST changes.
- A local start that does not exist (spring-forward gap) moves forward by the gap length, like
  Outlook/Exchange; an ambiguous local time (fall-back) takes the first (daylight) instant.
- ``DayOfMonth`` larger than the month's length means the month's last day, as Microsoft's
  reference for AbsoluteMonthlyRecurrence/AbsoluteYearlyRecurrence states:
  https://learn.microsoft.com/exchange/client-developer/web-service-reference/absolutemonthlyrecurrence
- Monthly and weekly intervals count from the period (month / week starting on
  ``FirstDayOfWeek``) that contains ``StartDate``; candidate dates before ``StartDate`` are
  skipped and do not consume an index.
- ``InstanceIndex`` numbers every date the pattern produces from the series start, 1-based,
  deleted and modified ones included (so indexes are stable when occurrences are deleted):
  https://learn.microsoft.com/exchange/client-developer/web-service-reference/occurrenceitemid
- An ``EndDateRange`` includes occurrences whose local date is on or before ``EndDate``.
- A modified occurrence (exception) is shown where it now is: it is returned when its NEW
  times overlap the window (CalendarView semantics: an item overlaps when
  ``start < window_end and end > window_start``; a zero-length one belongs to the window
  holding its instant).
  https://learn.microsoft.com/exchange/client-developer/web-service-reference/calendarview

Errors are ``contract.EwsError`` with ResponseCodes from messages.xsd:
``ErrorCalendarInvalidRecurrence`` (bad pattern/range), ``ErrorUnsupportedRecurrence``
(expanding a task regeneration pattern), ``ErrorCalendarOccurrenceIndexIsOutOfRecurrenceRange``
and ``ErrorCalendarOccurrenceIsDeletedFromRecurrence`` (``occurrence_by_index``).
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import TypeAlias
from zoneinfo import ZoneInfo

from lxml import etree

from exchange_ext.sandbox.contract import NS_T, EwsError

# --------------------------------------------------------------------------------------------
# Vocabulary (types.xsd DayOfWeekType, DayOfWeekIndexType, MonthNamesType)
# --------------------------------------------------------------------------------------------

WEEKDAY_NAMES: tuple[str, ...] = (
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
)  # position == date.weekday()
DAY_GROUPS: dict[str, tuple[int, ...]] = {
    "Day": (0, 1, 2, 3, 4, 5, 6),
    "Weekday": (0, 1, 2, 3, 4),
    "WeekendDay": (5, 6),
}
DAY_OF_WEEK_INDEXES: tuple[str, ...] = ("First", "Second", "Third", "Fourth", "Last")
MONTH_NAMES: tuple[str, ...] = tuple(calendar.month_name[1:])

# Interval limits from Microsoft's element reference pages (DailyRecurrence: 1-999,
# WeeklyRecurrence/AbsoluteMonthlyRecurrence/RelativeMonthlyRecurrence: 1-99).
_MAX_INTERVAL = {"DailyRecurrence": 999}
_DEFAULT_MAX_INTERVAL = 99
# Occurrence indexes beyond this are treated as out of range for unbounded series (keeps all
# date arithmetic inside datetime's year range whatever the pattern).
MAX_INDEX = 1_000_000

_INVALID = "ErrorCalendarInvalidRecurrence"


def _t(local: str) -> str:
    return f"{{{NS_T}}}{local}"


# --------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DailyPattern:
    """Every ``interval`` days."""

    interval: int


@dataclass(frozen=True)
class WeeklyPattern:
    """Every ``interval`` weeks on ``days_of_week`` (weeks start on ``first_day_of_week``)."""

    interval: int
    days_of_week: tuple[str, ...]
    first_day_of_week: str = "Sunday"


@dataclass(frozen=True)
class AbsoluteMonthlyPattern:
    """Every ``interval`` months on ``day_of_month`` (clamped to the month's last day)."""

    interval: int
    day_of_month: int


@dataclass(frozen=True)
class RelativeMonthlyPattern:
    """Every ``interval`` months on e.g. the "Last" "Friday" (or "Day"/"Weekday"/"WeekendDay")."""

    interval: int
    days_of_week: str
    day_of_week_index: str


@dataclass(frozen=True)
class AbsoluteYearlyPattern:
    """Every year on ``month`` ``day_of_month`` (clamped to the month's last day)."""

    day_of_month: int
    month: str


@dataclass(frozen=True)
class RelativeYearlyPattern:
    """Every year on e.g. the "First" "Monday" of ``month``."""

    days_of_week: str
    day_of_week_index: str
    month: str


@dataclass(frozen=True)
class DailyRegeneration:
    """Task only: the next task is created ``interval`` days after the previous one completes."""

    interval: int


@dataclass(frozen=True)
class WeeklyRegeneration:
    """Task only: regenerate ``interval`` weeks after completion."""

    interval: int


@dataclass(frozen=True)
class MonthlyRegeneration:
    """Task only: regenerate ``interval`` months after completion."""

    interval: int


@dataclass(frozen=True)
class YearlyRegeneration:
    """Task only: regenerate ``interval`` years after completion."""

    interval: int


@dataclass(frozen=True)
class NoEndRange:
    """The series starts on ``start_date`` and never ends."""

    start_date: dt.date


@dataclass(frozen=True)
class EndDateRange:
    """The series runs from ``start_date`` through ``end_date`` (inclusive, local dates)."""

    start_date: dt.date
    end_date: dt.date


@dataclass(frozen=True)
class NumberedRange:
    """The series has ``number_of_occurrences`` occurrences from ``start_date``."""

    start_date: dt.date
    number_of_occurrences: int


Regeneration: TypeAlias = (
    DailyRegeneration | WeeklyRegeneration | MonthlyRegeneration | YearlyRegeneration
)
Pattern: TypeAlias = (
    DailyPattern
    | WeeklyPattern
    | AbsoluteMonthlyPattern
    | RelativeMonthlyPattern
    | AbsoluteYearlyPattern
    | RelativeYearlyPattern
    | Regeneration
)
Range: TypeAlias = NoEndRange | EndDateRange | NumberedRange


@dataclass(frozen=True)
class Recurrence:
    """A ``t:Recurrence``: a pattern and a range."""

    pattern: Pattern
    range: Range

    @property
    def is_regeneration(self) -> bool:
        """True for task regeneration patterns (they never expand into occurrences)."""
        return isinstance(
            self.pattern,
            DailyRegeneration | WeeklyRegeneration | MonthlyRegeneration | YearlyRegeneration,
        )


@dataclass(frozen=True)
class Occurrence:
    """One occurrence of a series; datetimes are aware, expressed in the series' zone.

    ``index`` is the EWS InstanceIndex (1-based from the series start, deleted ones counted);
    ``original_start`` is where the pattern puts it (the key of deleted/modified maps);
    ``start``/``end`` are where it is now (different only for an exception).
    """

    index: int
    original_start: dt.datetime
    start: dt.datetime
    end: dt.datetime
    is_exception: bool = False


# --------------------------------------------------------------------------------------------
# XML → model
# --------------------------------------------------------------------------------------------


def _child(parent: etree._Element, local: str) -> etree._Element:
    found = parent.find(_t(local))
    if found is None:
        name = etree.QName(parent).localname
        raise EwsError(_INVALID, f"{name} lacks t:{local}")
    return found


def _text(parent: etree._Element, local: str) -> str:
    return (_child(parent, local).text or "").strip()


def _int(parent: etree._Element, local: str) -> int:
    raw = _text(parent, local)
    try:
        return int(raw)
    except ValueError:
        raise EwsError(_INVALID, f"{local} is not an integer: {raw!r}") from None


def _date(parent: etree._Element, local: str) -> dt.date:
    # xs:date may carry a zone suffix ("2026-03-02Z", "2026-03-02+01:00"); the calendar date
    # is what matters for a recurrence range, so the suffix is ignored.
    raw = _text(parent, local)
    try:
        return dt.date.fromisoformat(raw[:10])
    except ValueError:
        raise EwsError(_INVALID, f"{local} is not a date: {raw!r}") from None


def _enum(value: str, allowed: Collection[str], what: str) -> str:
    if value not in allowed:
        raise EwsError(_INVALID, f"{what} {value!r} is not one of {sorted(allowed)}")
    return value


def _day_name(value: str) -> str:
    return _enum(value, (*WEEKDAY_NAMES, *DAY_GROUPS), "DaysOfWeek")


def _interval(elem: etree._Element) -> int:
    local = etree.QName(elem).localname
    interval = _int(elem, "Interval")
    maximum = _MAX_INTERVAL.get(local, _DEFAULT_MAX_INTERVAL)
    if local.endswith("Regeneration"):
        maximum = 999
    if not 1 <= interval <= maximum:
        raise EwsError(_INVALID, f"{local}/Interval must be 1..{maximum}, got {interval}")
    return interval


def _day_of_month(elem: etree._Element) -> int:
    day = _int(elem, "DayOfMonth")
    if not 1 <= day <= 31:
        raise EwsError(_INVALID, f"DayOfMonth must be 1..31, got {day}")
    return day


def _parse_pattern(elem: etree._Element) -> Pattern:
    local = etree.QName(elem).localname
    if local == "DailyRecurrence":
        return DailyPattern(_interval(elem))
    if local == "WeeklyRecurrence":
        days = tuple(_day_name(d) for d in _text(elem, "DaysOfWeek").split())
        if not days:
            raise EwsError(_INVALID, "WeeklyRecurrence needs at least one day in DaysOfWeek")
        first = elem.find(_t("FirstDayOfWeek"))
        first_day = "Sunday" if first is None else (first.text or "").strip()
        return WeeklyPattern(
            _interval(elem), days, _enum(first_day, WEEKDAY_NAMES, "FirstDayOfWeek")
        )
    if local == "AbsoluteMonthlyRecurrence":
        return AbsoluteMonthlyPattern(_interval(elem), _day_of_month(elem))
    if local == "RelativeMonthlyRecurrence":
        return RelativeMonthlyPattern(
            _interval(elem),
            _day_name(_text(elem, "DaysOfWeek")),
            _enum(_text(elem, "DayOfWeekIndex"), DAY_OF_WEEK_INDEXES, "DayOfWeekIndex"),
        )
    if local == "AbsoluteYearlyRecurrence":
        return AbsoluteYearlyPattern(
            _day_of_month(elem), _enum(_text(elem, "Month"), MONTH_NAMES, "Month")
        )
    if local == "RelativeYearlyRecurrence":
        return RelativeYearlyPattern(
            _day_name(_text(elem, "DaysOfWeek")),
            _enum(_text(elem, "DayOfWeekIndex"), DAY_OF_WEEK_INDEXES, "DayOfWeekIndex"),
            _enum(_text(elem, "Month"), MONTH_NAMES, "Month"),
        )
    regeneration = _REGENERATIONS.get(local)
    if regeneration is not None:
        return regeneration(_interval(elem))
    raise EwsError(_INVALID, f"unknown recurrence pattern t:{local}")


_REGENERATIONS: dict[str, type[Regeneration]] = {
    "DailyRegeneration": DailyRegeneration,
    "WeeklyRegeneration": WeeklyRegeneration,
    "MonthlyRegeneration": MonthlyRegeneration,
    "YearlyRegeneration": YearlyRegeneration,
}


def _parse_range(elem: etree._Element) -> Range:
    local = etree.QName(elem).localname
    start = _date(elem, "StartDate")
    if local == "NoEndRecurrence":
        return NoEndRange(start)
    if local == "EndDateRecurrence":
        end = _date(elem, "EndDate")
        if end < start:
            raise EwsError(_INVALID, f"EndDate {end} is before StartDate {start}")
        return EndDateRange(start, end)
    if local == "NumberedRecurrence":
        number = _int(elem, "NumberOfOccurrences")
        if number < 1:
            raise EwsError(_INVALID, f"NumberOfOccurrences must be at least 1, got {number}")
        return NumberedRange(start, number)
    raise EwsError(_INVALID, f"unknown recurrence range t:{local}")


def parse_recurrence(element: etree._Element) -> Recurrence:
    """Read a ``t:Recurrence`` element (calendar or task) into a ``Recurrence``.

    Raises ``EwsError("ErrorCalendarInvalidRecurrence")`` when the pattern or range is missing,
    unknown or out of its documented bounds (interval, DayOfMonth, NumberOfOccurrences,
    EndDate before StartDate).
    """
    children = [c for c in element if isinstance(c.tag, str)]
    if len(children) != 2:
        raise EwsError(_INVALID, "t:Recurrence needs exactly one pattern and one range")
    return Recurrence(_parse_pattern(children[0]), _parse_range(children[1]))


# --------------------------------------------------------------------------------------------
# model → XML (element order per types.xsd)
# --------------------------------------------------------------------------------------------


def _sub(parent: etree._Element, local: str, text: str) -> None:
    etree.SubElement(parent, _t(local)).text = text


def _pattern_to_xml(parent: etree._Element, pattern: Pattern) -> None:
    if isinstance(pattern, DailyPattern):
        elem = etree.SubElement(parent, _t("DailyRecurrence"))
        _sub(elem, "Interval", str(pattern.interval))
    elif isinstance(pattern, WeeklyPattern):
        elem = etree.SubElement(parent, _t("WeeklyRecurrence"))
        _sub(elem, "Interval", str(pattern.interval))
        _sub(elem, "DaysOfWeek", " ".join(pattern.days_of_week))
        _sub(elem, "FirstDayOfWeek", pattern.first_day_of_week)
    elif isinstance(pattern, AbsoluteMonthlyPattern):
        elem = etree.SubElement(parent, _t("AbsoluteMonthlyRecurrence"))
        _sub(elem, "Interval", str(pattern.interval))
        _sub(elem, "DayOfMonth", str(pattern.day_of_month))
    elif isinstance(pattern, RelativeMonthlyPattern):
        elem = etree.SubElement(parent, _t("RelativeMonthlyRecurrence"))
        _sub(elem, "Interval", str(pattern.interval))
        _sub(elem, "DaysOfWeek", pattern.days_of_week)
        _sub(elem, "DayOfWeekIndex", pattern.day_of_week_index)
    elif isinstance(pattern, AbsoluteYearlyPattern):
        elem = etree.SubElement(parent, _t("AbsoluteYearlyRecurrence"))
        _sub(elem, "DayOfMonth", str(pattern.day_of_month))
        _sub(elem, "Month", pattern.month)
    elif isinstance(pattern, RelativeYearlyPattern):
        elem = etree.SubElement(parent, _t("RelativeYearlyRecurrence"))
        _sub(elem, "DaysOfWeek", pattern.days_of_week)
        _sub(elem, "DayOfWeekIndex", pattern.day_of_week_index)
        _sub(elem, "Month", pattern.month)
    else:
        elem = etree.SubElement(parent, _t(type(pattern).__name__))
        _sub(elem, "Interval", str(pattern.interval))


def _date_text(day: dt.date, tz: ZoneInfo | None) -> str:
    """An xs:date with a zone suffix, as Exchange returns it (e.g. "2026-03-02+01:00").

    exchangelib reads a suffixed StartDate/EndDate as a date but a bare one as a UTC datetime
    (``DateOrDateTimeField.from_xml``), so the suffix matters to the client.
    """
    if tz is None:
        return f"{day.isoformat()}Z"
    offset = dt.datetime.combine(day, dt.time(12), tz).utcoffset() or dt.timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    hours, mins = divmod(abs(minutes), 60)
    return f"{day.isoformat()}{sign}{hours:02d}:{mins:02d}"


def _range_to_xml(parent: etree._Element, rng: Range, tz: ZoneInfo | None) -> None:
    if isinstance(rng, NoEndRange):
        elem = etree.SubElement(parent, _t("NoEndRecurrence"))
        _sub(elem, "StartDate", _date_text(rng.start_date, tz))
    elif isinstance(rng, EndDateRange):
        elem = etree.SubElement(parent, _t("EndDateRecurrence"))
        _sub(elem, "StartDate", _date_text(rng.start_date, tz))
        _sub(elem, "EndDate", _date_text(rng.end_date, tz))
    else:
        elem = etree.SubElement(parent, _t("NumberedRecurrence"))
        _sub(elem, "StartDate", _date_text(rng.start_date, tz))
        _sub(elem, "NumberOfOccurrences", str(rng.number_of_occurrences))


def recurrence_to_xml(rec: Recurrence, tz: ZoneInfo | None = None) -> etree._Element:
    """Render ``rec`` as a new ``t:Recurrence`` element, valid against types.xsd.

    Range dates carry the UTC offset of ``tz`` on that date (``Z`` when ``tz`` is None). The
    caller appends the element where the schema wants it (CalendarItem or Task).
    """
    elem = etree.Element(_t("Recurrence"), nsmap={"t": NS_T})
    _pattern_to_xml(elem, rec.pattern)
    _range_to_xml(elem, rec.range, tz)
    return elem


# --------------------------------------------------------------------------------------------
# Dates of a pattern, by index (O(1) per index: no walk from the series start)
# --------------------------------------------------------------------------------------------


def _weekday_set(name: str) -> tuple[int, ...]:
    return DAY_GROUPS.get(name) or (WEEKDAY_NAMES.index(name),)


def _add_months(year: int, month: int, months: int) -> tuple[int, int]:
    total = year * 12 + (month - 1) + months
    return total // 12, total % 12 + 1


def _clamped(year: int, month: int, day: int) -> dt.date:
    if not dt.MINYEAR <= year <= dt.MAXYEAR:
        raise OverflowError(f"year {year} is out of range")
    return dt.date(year, month, min(day, calendar.monthrange(year, month)[1]))


def _relative_day(year: int, month: int, days_of_week: str, index: str) -> dt.date:
    """The First..Fourth/Last day of the month that is one of ``days_of_week``."""
    if not dt.MINYEAR <= year <= dt.MAXYEAR:
        raise OverflowError(f"year {year} is out of range")
    wanted = _weekday_set(days_of_week)
    last = calendar.monthrange(year, month)[1]
    matching = [d for d in range(1, last + 1) if dt.date(year, month, d).weekday() in wanted]
    position = -1 if index == "Last" else DAY_OF_WEEK_INDEXES.index(index)
    return dt.date(year, month, matching[position])


class _Dates:
    """Maps occurrence indexes (1-based) to local dates and back, for one pattern + start date."""

    def __init__(self, pattern: Pattern, start_date: dt.date) -> None:
        if isinstance(
            pattern,
            DailyRegeneration | WeeklyRegeneration | MonthlyRegeneration | YearlyRegeneration,
        ):
            raise EwsError(
                "ErrorUnsupportedRecurrence", "regeneration patterns have no occurrences"
            )
        self.pattern = pattern
        self.start_date = start_date
        if isinstance(pattern, WeeklyPattern):
            first = WEEKDAY_NAMES.index(pattern.first_day_of_week)
            self.week_start = start_date - dt.timedelta(days=(start_date.weekday() - first) % 7)
            chosen = {w for name in pattern.days_of_week for w in _weekday_set(name)}
            # Offsets (days from the week's first day) in week order.
            self.offsets = sorted((w - first) % 7 for w in chosen)
            lead = (start_date - self.week_start).days
            self.skipped = sum(1 for o in self.offsets if o < lead)
        elif isinstance(pattern, DailyPattern):
            self.skipped = 0
        else:
            self.skipped = 1 if self._period_date(0) < start_date else 0

    def _period_date(self, period: int) -> dt.date:
        """The single candidate date of monthly/yearly period ``period`` (0 = start's)."""
        p = self.pattern
        y, m = self.start_date.year, self.start_date.month
        if isinstance(p, AbsoluteMonthlyPattern):
            y, m = _add_months(y, m, period * p.interval)
            return _clamped(y, m, p.day_of_month)
        if isinstance(p, RelativeMonthlyPattern):
            y, m = _add_months(y, m, period * p.interval)
            return _relative_day(y, m, p.days_of_week, p.day_of_week_index)
        if isinstance(p, AbsoluteYearlyPattern):
            return _clamped(y + period, MONTH_NAMES.index(p.month) + 1, p.day_of_month)
        if isinstance(p, RelativeYearlyPattern):
            month = MONTH_NAMES.index(p.month) + 1
            return _relative_day(y + period, month, p.days_of_week, p.day_of_week_index)
        raise AssertionError(f"not a period pattern: {p!r}")  # pragma: no cover

    def date(self, index: int) -> dt.date:
        """Local date of occurrence ``index`` (1-based). Raises OverflowError past year 9999."""
        n = index - 1 + self.skipped
        p = self.pattern
        if isinstance(p, DailyPattern):
            return self.start_date + dt.timedelta(days=(index - 1) * p.interval)
        if isinstance(p, WeeklyPattern):
            week, slot = divmod(n, len(self.offsets))
            return self.week_start + dt.timedelta(weeks=week * p.interval, days=self.offsets[slot])
        return self._period_date(n)

    def first_index_on_or_after(self, day: dt.date) -> int:
        """Smallest index whose date is on or after ``day`` (1 when ``day`` precedes the series)."""
        if day <= self.start_date:
            return 1
        p = self.pattern
        if isinstance(p, DailyPattern):
            return -(-(day - self.start_date).days // p.interval) + 1
        if isinstance(p, WeeklyPattern):
            weeks = (day - self.week_start).days // 7 // p.interval
            guess = weeks * len(self.offsets) - self.skipped + 1
        elif isinstance(p, AbsoluteMonthlyPattern | RelativeMonthlyPattern):
            months = (day.year - self.start_date.year) * 12 + day.month - self.start_date.month
            guess = months // p.interval - self.skipped + 1
        else:
            guess = day.year - self.start_date.year - self.skipped + 1
        # The guess is at most one period early; step forward (bounded by one period's dates).
        index = max(1, guess - 1)
        while self.date(index) < day:
            index += 1
        return index

    def last_index_on_or_before(self, day: dt.date) -> int:
        """Largest index (≤ MAX_INDEX) whose date is on or before ``day``; 0 when there is none.

        A binary search (dates grow with the index), so it also copes with patterns that run
        past year 9999 before reaching ``day``.
        """
        low, high = 0, MAX_INDEX
        while low < high:
            middle = (low + high + 1) // 2
            try:
                fits = self.date(middle) <= day
            except OverflowError:
                fits = False
            if fits:
                low = middle
            else:
                high = middle - 1
        return low

    def index_of(self, day: dt.date) -> int | None:
        """The index whose date is ``day``, or None when the pattern does not produce ``day``."""
        index = self.first_index_on_or_after(day)
        return index if self.date(index) == day else None


# --------------------------------------------------------------------------------------------
# Dates → aware datetimes
# --------------------------------------------------------------------------------------------


def _resolve(local: dt.datetime, tz: ZoneInfo) -> dt.datetime:
    """Attach ``tz`` to a naive wall-clock time, moving nonexistent times forward by the gap.

    fold=0 gives the pre-transition offset; converting through UTC normalises a time in a
    spring-forward gap to the later wall-clock time (02:30 → 03:30 in Europe/Berlin), and picks
    the first (daylight) instant of an ambiguous fall-back time.
    """
    aware = local.replace(tzinfo=tz, fold=0)
    return aware.astimezone(dt.UTC).astimezone(tz)


@dataclass(frozen=True)
class _Series:
    """Everything needed to turn an index into an Occurrence."""

    dates: _Dates
    rng: Range
    tz: ZoneInfo
    time_of_day: dt.time
    wall_duration: dt.timedelta

    @classmethod
    def build(cls, rec: Recurrence, start: dt.datetime, end: dt.datetime, tz: ZoneInfo) -> _Series:
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError("start and end must be timezone-aware")
        local_start = start.astimezone(tz).replace(tzinfo=None)
        local_end = end.astimezone(tz).replace(tzinfo=None)
        return cls(
            _Dates(rec.pattern, rec.range.start_date),
            rec.range,
            tz,
            local_start.time(),
            max(local_end - local_start, dt.timedelta(0)),
        )

    def last_index(self) -> int:
        """Index of the last occurrence the range allows (MAX_INDEX for unbounded series)."""
        if isinstance(self.rng, NumberedRange):
            return self.rng.number_of_occurrences
        if isinstance(self.rng, EndDateRange):
            return self.dates.last_index_on_or_before(self.rng.end_date)
        return MAX_INDEX

    def in_range(self, index: int) -> bool:
        if not 1 <= index <= MAX_INDEX:
            return False
        if isinstance(self.rng, NumberedRange):
            return index <= self.rng.number_of_occurrences
        if isinstance(self.rng, EndDateRange):
            return self.dates.date(index) <= self.rng.end_date
        return True

    def original(self, index: int) -> tuple[dt.datetime, dt.datetime]:
        """Pattern start/end of occurrence ``index`` (wall clock kept in ``tz``)."""
        begin = _resolve(dt.datetime.combine(self.dates.date(index), self.time_of_day), self.tz)
        finish = _resolve(begin.replace(tzinfo=None) + self.wall_duration, self.tz)
        return begin, finish

    def index_of(self, original_start: dt.datetime) -> int | None:
        local = original_start.astimezone(self.tz)
        index = self.dates.index_of(local.date())
        if index is None or not self.in_range(index):
            return None
        return index if _utc(self.original(index)[0]) == _utc(original_start) else None


def _overlaps(
    start: dt.datetime, end: dt.datetime, window_start: dt.datetime, window_end: dt.datetime
) -> bool:
    """CalendarView overlap: ``start < window_end and end > window_start``.

    A zero-length occurrence belongs to the window that contains its instant, so that
    adjacent windows partition a series exactly.
    """
    # Compare instants: aware datetimes sharing one tzinfo compare as wall clock in Python,
    # which misorders the repeated hour after a fall-back change.
    start, end, window_start, window_end = (_utc(v) for v in (start, end, window_start, window_end))
    if start == end:
        return window_start <= start < window_end
    return start < window_end and end > window_start


def _utc(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.UTC)


def _occurrence(
    series: _Series,
    index: int,
    modified: Mapping[dt.datetime, tuple[dt.datetime, dt.datetime]],
) -> Occurrence:
    begin, finish = series.original(index)
    change = modified.get(_utc(begin))
    if change is None:
        return Occurrence(index, begin, begin, finish, False)
    new_start, new_end = change
    return Occurrence(
        index, begin, new_start.astimezone(series.tz), new_end.astimezone(series.tz), True
    )


def _normalise(
    deleted: Collection[dt.datetime],
    modified: Mapping[dt.datetime, tuple[dt.datetime, dt.datetime]],
) -> tuple[set[dt.datetime], dict[dt.datetime, tuple[dt.datetime, dt.datetime]]]:
    return {_utc(d) for d in deleted}, {_utc(k): v for k, v in modified.items()}


# --------------------------------------------------------------------------------------------
# Public expansion API
# --------------------------------------------------------------------------------------------


def expand(
    rec: Recurrence,
    *,
    start: dt.datetime,
    end: dt.datetime,
    tz: ZoneInfo,
    window_start: dt.datetime,
    window_end: dt.datetime,
    deleted: Collection[dt.datetime] = (),
    modified: Mapping[dt.datetime, tuple[dt.datetime, dt.datetime]] | None = None,
    limit: int = 10_000,
) -> list[Occurrence]:
    """Occurrences of ``rec`` overlapping ``[window_start, window_end)``, sorted by start.

    ``start``/``end`` are the master's first occurrence (aware); ``deleted`` holds original
    starts of deleted occurrences; ``modified`` maps original start → (new start, new end).
    Keys that are not occurrences of the series are ignored. Returns at most ``limit``
    occurrences (the earliest ones). All returned datetimes are aware, in ``tz``. Raises
    ValueError for naive ``start``/``end`` and ``EwsError("ErrorUnsupportedRecurrence")`` for a
    task regeneration pattern.
    """
    if limit <= 0 or window_end <= window_start:
        return []
    series = _Series.build(rec, start, end, tz)
    gone, moved = _normalise(deleted, modified or {})
    found = [
        occ
        for occ in _regular_in_window(series, window_start, window_end, gone, moved, limit)
        if _overlaps(occ.start, occ.end, window_start, window_end)
    ]
    for original_start in moved:
        index = series.index_of(original_start)
        if index is None or original_start in gone:
            continue
        occ = _occurrence(series, index, moved)
        if _overlaps(occ.start, occ.end, window_start, window_end):
            found.append(occ)
    found.sort(key=lambda o: (_utc(o.start), o.index))
    return found[:limit]


def _regular_in_window(
    series: _Series,
    window_start: dt.datetime,
    window_end: dt.datetime,
    gone: set[dt.datetime],
    moved: Mapping[dt.datetime, object],
    limit: int,
) -> Iterator[Occurrence]:
    """Unmodified, undeleted occurrences that may overlap the window (at most ``limit``)."""
    # Start a little before the window so an occurrence that began earlier but still runs into
    # it is seen: back off by its duration plus two days of zone-offset slack.
    local_from = window_start.astimezone(series.tz).date()
    back = dt.timedelta(days=series.wall_duration.days + 2)
    try:
        index = series.dates.first_index_on_or_after(local_from - back)
    except OverflowError:
        return
    last = series.last_index()
    produced = 0
    while index <= last and produced < limit:
        try:
            begin, finish = series.original(index)
        except OverflowError:
            return
        if begin >= window_end:
            return
        key = _utc(begin)
        if (
            key not in gone
            and key not in moved
            and _overlaps(begin, finish, window_start, window_end)
        ):
            produced += 1
            yield Occurrence(index, begin, begin, finish, False)
        index += 1


def first_and_last(
    rec: Recurrence,
    *,
    start: dt.datetime,
    end: dt.datetime,
    tz: ZoneInfo,
    deleted: Collection[dt.datetime] = (),
    modified: Mapping[dt.datetime, tuple[dt.datetime, dt.datetime]] | None = None,
) -> tuple[Occurrence | None, Occurrence | None]:
    """The master's FirstOccurrence and LastOccurrence (by index, skipping deleted ones).

    LastOccurrence is None for a series without end. Either is None when every occurrence is
    deleted. Walks at most ``len(deleted) + 1`` indexes from each end.
    """
    series = _Series.build(rec, start, end, tz)
    gone, moved = _normalise(deleted, modified or {})
    last_index = series.last_index()
    first = _walk(series, range(1, min(last_index, len(gone) + 1) + 1), gone, moved)
    if isinstance(rec.range, NoEndRange):
        return first, None
    lowest = max(1, last_index - len(gone))
    last = _walk(series, range(last_index, lowest - 1, -1), gone, moved)
    return first, last


def _walk(
    series: _Series,
    indexes: range,
    gone: set[dt.datetime],
    moved: Mapping[dt.datetime, tuple[dt.datetime, dt.datetime]],
) -> Occurrence | None:
    for index in indexes:
        occ = _occurrence(series, index, moved)
        if _utc(occ.original_start) not in gone:
            return occ
    return None


def occurrence_by_index(
    rec: Recurrence,
    *,
    start: dt.datetime,
    end: dt.datetime,
    tz: ZoneInfo,
    index: int,
    deleted: Collection[dt.datetime] = (),
    modified: Mapping[dt.datetime, tuple[dt.datetime, dt.datetime]] | None = None,
) -> Occurrence:
    """The occurrence addressed by ``t:OccurrenceItemId/@InstanceIndex`` (computed directly).

    Raises ``EwsError("ErrorCalendarOccurrenceIndexIsOutOfRecurrenceRange")`` for an index
    outside the series and ``EwsError("ErrorCalendarOccurrenceIsDeletedFromRecurrence")`` for a
    deleted occurrence.
    """
    series = _Series.build(rec, start, end, tz)
    gone, moved = _normalise(deleted, modified or {})
    try:
        valid = series.in_range(index)
        occ = _occurrence(series, index, moved) if valid else None
    except OverflowError:
        occ = None
    if occ is None:
        raise EwsError(
            "ErrorCalendarOccurrenceIndexIsOutOfRecurrenceRange",
            f"Occurrence index {index} is out of the recurrence range.",
        )
    if _utc(occ.original_start) in gone:
        raise EwsError(
            "ErrorCalendarOccurrenceIsDeletedFromRecurrence",
            f"Occurrence with index {index} has been deleted from the recurrence.",
        )
    return occ


def index_of(
    rec: Recurrence,
    *,
    start: dt.datetime,
    end: dt.datetime,
    tz: ZoneInfo,
    original_start: dt.datetime,
) -> int | None:
    """The InstanceIndex of the occurrence whose pattern start is ``original_start``, or None.

    Lets the store check that a DeletedOccurrence/ModifiedOccurrence key is a real occurrence.
    """
    return _Series.build(rec, start, end, tz).index_of(original_start)
