"""The sandbox's recurrence module: exchangelib's XML in, schema-valid XML out, and expansion.

Expansion facts checked here come from Microsoft's element reference (DayOfMonth beyond the
month's length means its last day) and from how Outlook/Exchange keep a series' wall-clock time
across DST changes (2026: Berlin 03-29 / 10-25, New York 03-08 / 11-01).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from exchangelib import recurrence as xl
from exchangelib.version import EXCHANGE_2016, Version
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from exchange_ext.sandbox import recurrence as r
from exchange_ext.sandbox.contract import NS_T, EwsError

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
UTC = dt.UTC
SCHEMA_DIR = Path("/work/shared/ews-schema")
TEST_NS = "urn:sandbox-test"


# --------------------------------------------------------------------------------------------
# helpers and fixtures
# --------------------------------------------------------------------------------------------


def client_xml(rec: xl.Recurrence) -> etree._Element:
    """What exchangelib itself puts on the wire for a recurrence."""
    return rec.to_xml(version=Version(EXCHANGE_2016))


def local(y: int, mo: int, d: int, h: int = 9, mi: int = 0, tz: ZoneInfo = BERLIN) -> dt.datetime:
    return dt.datetime(y, mo, d, h, mi, tzinfo=tz)


def expand_all(
    rec: r.Recurrence,
    start: dt.datetime,
    duration: dt.timedelta = dt.timedelta(hours=1),
    tz: ZoneInfo = BERLIN,
    **kwargs: object,
) -> list[r.Occurrence]:
    window_start = kwargs.pop("window_start", start - dt.timedelta(days=1))
    window_end = kwargs.pop("window_end", start + dt.timedelta(days=3 * 366))
    return r.expand(
        rec,
        start=start,
        end=start + duration,
        tz=tz,
        window_start=window_start,  # type: ignore[arg-type]
        window_end=window_end,  # type: ignore[arg-type]
        **kwargs,  # type: ignore[arg-type]
    )


def wall(occurrences: list[r.Occurrence], tz: ZoneInfo = BERLIN) -> list[str]:
    return [o.start.astimezone(tz).strftime("%Y-%m-%d %H:%M") for o in occurrences]


@pytest.fixture(scope="module")
def recurrence_schema(tmp_path_factory: pytest.TempPathFactory) -> etree.XMLSchema:
    """Microsoft's RecurrenceType/TaskRecurrenceType as global elements of a test namespace.

    types.xsd imports the xml namespace without a location, and its ArrayOfTransitionsType is
    not deterministic for libxml2; a patched copy in a temp dir fixes both (time zone
    transitions only, nothing a recurrence uses). Microsoft's files stay untouched.
    """
    if not (SCHEMA_DIR / "types.xsd").exists():
        pytest.skip("Microsoft's EWS schema is not available")
    folder = tmp_path_factory.mktemp("xsd")
    (folder / "xml.xsd").write_text(
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"'
        ' targetNamespace="http://www.w3.org/XML/1998/namespace">'
        '<xs:attribute name="lang" type="xs:language"/></xs:schema>'
    )
    types = (SCHEMA_DIR / "types.xsd").read_text(encoding="utf-8")
    begin = types.index('<xs:complexType name="ArrayOfTransitionsType">')
    seq_from = types.index("<xs:sequence>", begin)
    seq_to = types.index("</xs:sequence>", seq_from) + len("</xs:sequence>")
    loose = (
        '<xs:choice minOccurs="0" maxOccurs="unbounded">'
        '<xs:element ref="t:Transition"/></xs:choice>'
    )
    (folder / "types.xsd").write_text(types[:seq_from] + loose + types[seq_to:], encoding="utf-8")
    wrapper = f"""<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:t="{NS_T}"
        targetNamespace="{TEST_NS}" elementFormDefault="qualified">
      <xs:import namespace="http://www.w3.org/XML/1998/namespace" schemaLocation="xml.xsd"/>
      <xs:import namespace="{NS_T}" schemaLocation="types.xsd"/>
      <xs:element name="Recurrence" type="t:RecurrenceType"/>
      <xs:element name="TaskRecurrence" type="t:TaskRecurrenceType"/>
    </xs:schema>"""
    (folder / "wrapper.xsd").write_text(wrapper)
    return etree.XMLSchema(etree.parse(str(folder / "wrapper.xsd")))


def assert_schema_valid(schema: etree.XMLSchema, elem: etree._Element, task: bool = False) -> None:
    holder = etree.Element(f"{{{TEST_NS}}}{'TaskRecurrence' if task else 'Recurrence'}")
    for child in elem:
        holder.append(etree.fromstring(etree.tostring(child)))
    assert schema.validate(holder), schema.error_log


# --------------------------------------------------------------------------------------------
# parsing what exchangelib sends
# --------------------------------------------------------------------------------------------

START = dt.date(2026, 3, 2)

CLIENT_RECURRENCES = [
    (
        xl.Recurrence(pattern=xl.DailyPattern(interval=3), start=START, number=5),
        r.Recurrence(r.DailyPattern(3), r.NumberedRange(START, 5)),
    ),
    (
        xl.Recurrence(
            pattern=xl.WeeklyPattern(interval=2, weekdays=[1, 3, 5], first_day_of_week=1),
            start=START,
            end=dt.date(2026, 6, 30),
        ),
        r.Recurrence(
            r.WeeklyPattern(2, ("Monday", "Wednesday", "Friday"), "Monday"),
            r.EndDateRange(START, dt.date(2026, 6, 30)),
        ),
    ),
    (
        xl.Recurrence(pattern=xl.AbsoluteMonthlyPattern(interval=1, day_of_month=31), start=START),
        r.Recurrence(r.AbsoluteMonthlyPattern(1, 31), r.NoEndRange(START)),
    ),
    (
        xl.Recurrence(
            pattern=xl.RelativeMonthlyPattern(interval=2, weekday=5, week_number=5),
            start=START,
            number=12,
        ),
        r.Recurrence(r.RelativeMonthlyPattern(2, "Friday", "Last"), r.NumberedRange(START, 12)),
    ),
    (
        xl.Recurrence(
            pattern=xl.RelativeMonthlyPattern(interval=1, weekday=9, week_number=2), start=START
        ),
        r.Recurrence(r.RelativeMonthlyPattern(1, "Weekday", "Second"), r.NoEndRange(START)),
    ),
    (
        xl.Recurrence(pattern=xl.AbsoluteYearlyPattern(day_of_month=29, month=2), start=START),
        r.Recurrence(r.AbsoluteYearlyPattern(29, "February"), r.NoEndRange(START)),
    ),
    (
        xl.Recurrence(
            pattern=xl.RelativeYearlyPattern(weekday=1, week_number=1, month=9),
            start=START,
            number=3,
        ),
        r.Recurrence(
            r.RelativeYearlyPattern("Monday", "First", "September"), r.NumberedRange(START, 3)
        ),
    ),
]


@pytest.mark.parametrize(("client", "expected"), CLIENT_RECURRENCES)
def test_exchangelibs_recurrence_xml_parses_into_the_same_pattern_and_range(
    client: xl.Recurrence, expected: r.Recurrence
) -> None:
    assert r.parse_recurrence(client_xml(client)) == expected


def test_task_regeneration_patterns_parse_and_render() -> None:
    client = xl.TaskRecurrence(pattern=xl.WeeklyRegeneration(interval=2), start=START, number=4)
    parsed = r.parse_recurrence(client_xml(client))
    assert parsed == r.Recurrence(r.WeeklyRegeneration(2), r.NumberedRange(START, 4))
    assert parsed.is_regeneration
    assert r.parse_recurrence(r.recurrence_to_xml(parsed)) == parsed


def test_a_start_date_with_a_zone_suffix_is_read_as_its_calendar_date() -> None:
    elem = r.recurrence_to_xml(r.Recurrence(r.DailyPattern(1), r.NoEndRange(START)))
    elem.find(f".//{{{NS_T}}}StartDate").text = "2026-03-02+01:00"  # type: ignore[union-attr]
    assert r.parse_recurrence(elem).range == r.NoEndRange(START)


# --------------------------------------------------------------------------------------------
# rendering: schema-valid and readable by exchangelib
# --------------------------------------------------------------------------------------------

ALL_MODELS = [model for _client, model in CLIENT_RECURRENCES] + [
    r.Recurrence(r.WeeklyPattern(1, ("Sunday",)), r.NumberedRange(START, 1)),
    r.Recurrence(r.RelativeMonthlyPattern(3, "WeekendDay", "Fourth"), r.NoEndRange(START)),
    r.Recurrence(r.RelativeYearlyPattern("Day", "Last", "December"), r.NoEndRange(START)),
]


@pytest.mark.parametrize("model", ALL_MODELS)
def test_rendered_recurrence_is_valid_against_microsofts_schema_and_round_trips(
    model: r.Recurrence, recurrence_schema: etree.XMLSchema
) -> None:
    elem = r.recurrence_to_xml(model)
    assert_schema_valid(recurrence_schema, elem)
    assert r.parse_recurrence(elem) == model


@pytest.mark.parametrize(
    "pattern",
    [
        r.DailyRegeneration(1),
        r.WeeklyRegeneration(2),
        r.MonthlyRegeneration(3),
        r.YearlyRegeneration(1),
    ],
)
def test_rendered_task_regeneration_is_valid_against_the_task_recurrence_type(
    pattern: r.Pattern, recurrence_schema: etree.XMLSchema
) -> None:
    model = r.Recurrence(pattern, r.EndDateRange(START, dt.date(2027, 1, 1)))
    assert_schema_valid(recurrence_schema, r.recurrence_to_xml(model), task=True)


@pytest.mark.parametrize(("client", "model"), CLIENT_RECURRENCES)
def test_exchangelib_reads_back_what_the_sandbox_renders(
    client: xl.Recurrence, model: r.Recurrence
) -> None:
    back = xl.Recurrence.from_xml(elem=r.recurrence_to_xml(model, BERLIN), account=None)
    assert back == client


@pytest.mark.parametrize(
    ("tz", "expected"),
    [(None, "2026-03-02Z"), (BERLIN, "2026-03-02+01:00"), (NEW_YORK, "2026-07-01-04:00")],
)
def test_range_dates_carry_the_series_zone_offset_like_exchange_returns_them(
    tz: ZoneInfo | None, expected: str, recurrence_schema: etree.XMLSchema
) -> None:
    day = dt.date.fromisoformat(expected[:10])
    elem = r.recurrence_to_xml(r.Recurrence(r.DailyPattern(1), r.NoEndRange(day)), tz)
    assert elem.findtext(f".//{{{NS_T}}}StartDate") == expected
    assert_schema_valid(recurrence_schema, elem)


# --------------------------------------------------------------------------------------------
# invalid recurrences
# --------------------------------------------------------------------------------------------


def _xml(pattern: str, rng: str) -> etree._Element:
    return etree.fromstring(f'<t:Recurrence xmlns:t="{NS_T}">{pattern}{rng}</t:Recurrence>')


NO_END = "<t:NoEndRecurrence><t:StartDate>2026-03-02</t:StartDate></t:NoEndRecurrence>"
DAILY_1 = "<t:DailyRecurrence><t:Interval>1</t:Interval></t:DailyRecurrence>"


@pytest.mark.parametrize(
    ("pattern", "rng"),
    [
        ("<t:DailyRecurrence><t:Interval>0</t:Interval></t:DailyRecurrence>", NO_END),
        ("<t:DailyRecurrence><t:Interval>1000</t:Interval></t:DailyRecurrence>", NO_END),
        ("<t:DailyRecurrence><t:Interval>x</t:Interval></t:DailyRecurrence>", NO_END),
        (
            "<t:WeeklyRecurrence><t:Interval>100</t:Interval>"
            "<t:DaysOfWeek>Monday</t:DaysOfWeek></t:WeeklyRecurrence>",
            NO_END,
        ),
        (
            "<t:WeeklyRecurrence><t:Interval>1</t:Interval><t:DaysOfWeek></t:DaysOfWeek>"
            "</t:WeeklyRecurrence>",
            NO_END,
        ),
        (
            "<t:WeeklyRecurrence><t:Interval>1</t:Interval><t:DaysOfWeek>Funday</t:DaysOfWeek>"
            "</t:WeeklyRecurrence>",
            NO_END,
        ),
        (
            "<t:AbsoluteMonthlyRecurrence><t:Interval>1</t:Interval><t:DayOfMonth>32</t:DayOfMonth>"
            "</t:AbsoluteMonthlyRecurrence>",
            NO_END,
        ),
        (
            "<t:AbsoluteYearlyRecurrence><t:DayOfMonth>0</t:DayOfMonth><t:Month>May</t:Month>"
            "</t:AbsoluteYearlyRecurrence>",
            NO_END,
        ),
        (
            "<t:RelativeMonthlyRecurrence><t:Interval>1</t:Interval><t:DaysOfWeek>Friday"
            "</t:DaysOfWeek><t:DayOfWeekIndex>Fifth</t:DayOfWeekIndex></t:RelativeMonthlyRecurrence>",
            NO_END,
        ),
        ("<t:HourlyRecurrence><t:Interval>1</t:Interval></t:HourlyRecurrence>", NO_END),
        (
            DAILY_1,
            "<t:EndDateRecurrence><t:StartDate>2026-03-02</t:StartDate>"
            "<t:EndDate>2026-03-01</t:EndDate></t:EndDateRecurrence>",
        ),
        (
            DAILY_1,
            "<t:NumberedRecurrence><t:StartDate>2026-03-02</t:StartDate>"
            "<t:NumberOfOccurrences>0</t:NumberOfOccurrences></t:NumberedRecurrence>",
        ),
        (DAILY_1, "<t:NoEndRecurrence><t:StartDate>March</t:StartDate></t:NoEndRecurrence>"),
        (DAILY_1, ""),
    ],
)
def test_invalid_recurrences_are_rejected_with_error_calendar_invalid_recurrence(
    pattern: str, rng: str
) -> None:
    with pytest.raises(EwsError) as caught:
        r.parse_recurrence(_xml(pattern, rng))
    assert caught.value.code == "ErrorCalendarInvalidRecurrence"


def test_expanding_a_task_regeneration_pattern_is_unsupported() -> None:
    rec = r.Recurrence(r.DailyRegeneration(1), r.NoEndRange(START))
    with pytest.raises(EwsError) as caught:
        expand_all(rec, local(2026, 3, 2))
    assert caught.value.code == "ErrorUnsupportedRecurrence"


# --------------------------------------------------------------------------------------------
# expansion: the dates of every pattern type
# --------------------------------------------------------------------------------------------

EXPANSIONS = [
    (
        "daily every 2 days, 4 occurrences",
        r.Recurrence(r.DailyPattern(2), r.NumberedRange(dt.date(2026, 1, 30), 4)),
        ["2026-01-30", "2026-02-01", "2026-02-03", "2026-02-05"],
    ),
    (
        "weekly Mon/Wed/Fri every 2 weeks from a Wednesday, weeks starting Monday",
        r.Recurrence(
            r.WeeklyPattern(2, ("Monday", "Wednesday", "Friday"), "Monday"),
            r.NumberedRange(dt.date(2026, 3, 4), 5),
        ),
        ["2026-03-04", "2026-03-06", "2026-03-16", "2026-03-18", "2026-03-20"],
    ),
    (
        "weekly Sunday/Saturday every 2 weeks, weeks starting Sunday",
        r.Recurrence(
            r.WeeklyPattern(2, ("Saturday", "Sunday"), "Sunday"),
            r.NumberedRange(dt.date(2026, 3, 1), 4),
        ),
        ["2026-03-01", "2026-03-07", "2026-03-15", "2026-03-21"],
    ),
    (
        "monthly on day 31 uses each month's last day",
        r.Recurrence(r.AbsoluteMonthlyPattern(1, 31), r.NumberedRange(dt.date(2026, 1, 1), 5)),
        ["2026-01-31", "2026-02-28", "2026-03-31", "2026-04-30", "2026-05-31"],
    ),
    (
        "monthly on day 15 every 3 months from after the 15th starts a period later",
        r.Recurrence(r.AbsoluteMonthlyPattern(3, 15), r.NumberedRange(dt.date(2026, 1, 20), 3)),
        ["2026-04-15", "2026-07-15", "2026-10-15"],
    ),
    (
        "the last Friday of every month",
        r.Recurrence(
            r.RelativeMonthlyPattern(1, "Friday", "Last"), r.NumberedRange(dt.date(2026, 1, 1), 4)
        ),
        ["2026-01-30", "2026-02-27", "2026-03-27", "2026-04-24"],
    ),
    (
        "the second weekday of every month",
        r.Recurrence(
            r.RelativeMonthlyPattern(1, "Weekday", "Second"),
            r.NumberedRange(dt.date(2026, 2, 1), 3),
        ),
        ["2026-02-03", "2026-03-03", "2026-04-02"],
    ),
    (
        "the last weekend day every 2 months",
        r.Recurrence(
            r.RelativeMonthlyPattern(2, "WeekendDay", "Last"),
            r.NumberedRange(dt.date(2026, 1, 1), 3),
        ),
        ["2026-01-31", "2026-03-29", "2026-05-31"],
    ),
    (
        "the first day of every month",
        r.Recurrence(
            r.RelativeMonthlyPattern(1, "Day", "First"), r.EndDateRange(START, dt.date(2026, 6, 1))
        ),
        ["2026-04-01", "2026-05-01", "2026-06-01"],
    ),
    (
        "yearly on 29 February falls on the 28th in common years",
        r.Recurrence(
            r.AbsoluteYearlyPattern(29, "February"), r.NumberedRange(dt.date(2027, 1, 1), 3)
        ),
        ["2027-02-28", "2028-02-29", "2029-02-28"],
    ),
    (
        "yearly on the first Monday of September (US Labor Day)",
        r.Recurrence(
            r.RelativeYearlyPattern("Monday", "First", "September"),
            r.NoEndRange(dt.date(2026, 1, 1)),
        ),
        ["2026-09-07", "2027-09-06", "2028-09-04"],
    ),
    (
        "an end-date range includes its end date",
        r.Recurrence(r.DailyPattern(1), r.EndDateRange(dt.date(2026, 5, 1), dt.date(2026, 5, 3))),
        ["2026-05-01", "2026-05-02", "2026-05-03"],
    ),
]


@pytest.mark.parametrize(
    ("rec", "expected"),
    [(rec, dates) for _name, rec, dates in EXPANSIONS],
    ids=[name for name, _rec, _dates in EXPANSIONS],
)
def test_patterns_produce_the_dates_outlook_shows(rec: r.Recurrence, expected: list[str]) -> None:
    first = dt.date.fromisoformat(expected[0])
    occurrences = expand_all(rec, local(first.year, first.month, first.day))
    got = [o.start.date().isoformat() for o in occurrences][: len(expected)]
    assert got == expected
    assert [o.index for o in occurrences[: len(expected)]] == list(range(1, len(expected) + 1))


def test_numbered_and_end_date_ranges_stop_and_no_end_ranges_run_to_the_window() -> None:
    start = local(2026, 1, 5)
    numbered = r.Recurrence(r.DailyPattern(1), r.NumberedRange(dt.date(2026, 1, 5), 10))
    assert len(expand_all(numbered, start)) == 10
    ended = r.Recurrence(
        r.DailyPattern(7), r.EndDateRange(dt.date(2026, 1, 5), dt.date(2026, 2, 1))
    )
    assert wall(expand_all(ended, start))[-1] == "2026-01-26 09:00"
    endless = r.Recurrence(r.DailyPattern(1), r.NoEndRange(dt.date(2026, 1, 5)))
    window = r.expand(
        endless,
        start=start,
        end=start + dt.timedelta(hours=1),
        tz=BERLIN,
        window_start=local(2030, 1, 1, 0),
        window_end=local(2030, 1, 8, 0),
    )
    assert wall(window) == [f"2030-01-0{d} 09:00" for d in range(1, 8)]
    assert window[0].index == (dt.date(2030, 1, 1) - dt.date(2026, 1, 5)).days + 1


# --------------------------------------------------------------------------------------------
# expansion across DST changes
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tz", "first", "offsets"),
    [
        (BERLIN, dt.date(2026, 3, 23), ["+01:00", "+02:00"]),  # CET → CEST on 2026-03-29
        (BERLIN, dt.date(2026, 10, 19), ["+02:00", "+01:00"]),  # CEST → CET on 2026-10-25
        (NEW_YORK, dt.date(2026, 3, 2), ["-05:00", "-04:00"]),  # EST → EDT on 2026-03-08
        (NEW_YORK, dt.date(2026, 10, 26), ["-04:00", "-05:00"]),  # EDT → EST on 2026-11-01
    ],
)
def test_a_weekly_meeting_keeps_its_local_wall_clock_time_across_the_dst_change(
    tz: ZoneInfo, first: dt.date, offsets: list[str]
) -> None:
    rec = r.Recurrence(r.WeeklyPattern(1, (first.strftime("%A"),)), r.NumberedRange(first, 2))
    start = dt.datetime.combine(first, dt.time(9), tz)
    occurrences = expand_all(rec, start, tz=tz)
    assert [o.start.astimezone(tz).strftime("%H:%M") for o in occurrences] == ["09:00", "09:00"]
    assert [o.start.isoformat()[-6:] for o in occurrences] == offsets
    # Aware datetimes in one zone subtract as wall clock; compare instants in UTC instead.
    elapsed = occurrences[1].start.astimezone(UTC) - occurrences[0].start.astimezone(UTC)
    assert elapsed != dt.timedelta(weeks=1)
    assert all(o.end - o.start == dt.timedelta(hours=1) for o in occurrences)


def test_a_nonexistent_local_start_moves_forward_by_the_gap_and_keeps_its_duration() -> None:
    rec = r.Recurrence(r.DailyPattern(1), r.NumberedRange(dt.date(2026, 3, 28), 3))
    occurrences = expand_all(rec, local(2026, 3, 28, 2, 30))
    assert wall(occurrences) == ["2026-03-28 02:30", "2026-03-29 03:30", "2026-03-30 02:30"]
    assert occurrences[1].end == local(2026, 3, 29, 4, 30)


def test_an_ambiguous_local_start_takes_the_first_daylight_instant() -> None:
    rec = r.Recurrence(r.DailyPattern(1), r.NumberedRange(dt.date(2026, 10, 31), 2))
    occurrences = expand_all(rec, local(2026, 10, 31, 1, 30, NEW_YORK), tz=NEW_YORK)
    assert occurrences[1].start.isoformat() == "2026-11-01T01:30:00-04:00"


def test_the_master_given_in_utc_is_expanded_in_the_series_zone() -> None:
    rec = r.Recurrence(r.DailyPattern(1), r.NumberedRange(dt.date(2026, 3, 28), 2))
    start = dt.datetime(2026, 3, 28, 8, 0, tzinfo=UTC)  # 09:00 CET
    occurrences = expand_all(rec, start)
    assert [o.start.astimezone(UTC).hour for o in occurrences] == [8, 7]


# --------------------------------------------------------------------------------------------
# windows, exceptions, deletions, limits
# --------------------------------------------------------------------------------------------

WEEKLY_MONDAYS = r.Recurrence(
    r.WeeklyPattern(1, ("Monday",)), r.NumberedRange(dt.date(2026, 3, 2), 6)
)
MON_START = local(2026, 3, 2, 10)  # Mondays 10:00-11:00 Berlin: 03-02 … 04-06


def test_an_occurrence_is_in_a_window_when_it_starts_before_its_end_and_ends_after_its_start() -> (
    None
):
    def window(ws: dt.datetime, we: dt.datetime) -> list[int]:
        found = r.expand(
            WEEKLY_MONDAYS,
            start=MON_START,
            end=MON_START + dt.timedelta(hours=1),
            tz=BERLIN,
            window_start=ws,
            window_end=we,
        )
        return [o.index for o in found]

    assert window(local(2026, 3, 9, 11), local(2026, 3, 16, 10)) == []  # touches both ends
    assert window(local(2026, 3, 9, 10, 59), local(2026, 3, 16, 10, 1)) == [2, 3]
    assert window(local(2026, 3, 9, 10, 30), local(2026, 3, 9, 10, 31)) == [2]


def test_deleted_occurrences_are_omitted_and_the_others_keep_their_index() -> None:
    found = expand_all(WEEKLY_MONDAYS, MON_START, deleted=[local(2026, 3, 16, 10)])
    assert [o.index for o in found] == [1, 2, 4, 5, 6]


def test_a_modified_occurrence_is_shown_where_it_now_is() -> None:
    moved_to = (local(2026, 3, 18, 15), local(2026, 3, 18, 16, 30))
    found = expand_all(WEEKLY_MONDAYS, MON_START, modified={local(2026, 3, 16, 10): moved_to})
    exception = next(o for o in found if o.is_exception)
    assert (exception.index, exception.original_start) == (3, local(2026, 3, 16, 10))
    assert (exception.start, exception.end) == moved_to
    assert [o.index for o in found] == [1, 2, 3, 4, 5, 6]


def test_an_exception_moved_out_of_the_window_leaves_it_and_one_moved_in_enters_it() -> None:
    modified = {
        local(2026, 3, 9, 10): (local(2026, 5, 1, 10), local(2026, 5, 1, 11)),  # moved out
        local(2026, 3, 30, 10): (local(2026, 3, 10, 8), local(2026, 3, 10, 9)),  # moved in
    }
    found = r.expand(
        WEEKLY_MONDAYS,
        start=MON_START,
        end=MON_START + dt.timedelta(hours=1),
        tz=BERLIN,
        window_start=local(2026, 3, 9, 0),
        window_end=local(2026, 3, 11, 0),
        modified=modified,
    )
    assert [(o.index, o.is_exception) for o in found] == [(5, True)]


def test_deleting_a_modified_occurrence_removes_it() -> None:
    key = local(2026, 3, 9, 10)
    found = expand_all(
        WEEKLY_MONDAYS,
        MON_START,
        deleted=[key],
        modified={key: (local(2026, 3, 10, 10), local(2026, 3, 10, 11))},
    )
    assert 2 not in [o.index for o in found]


def test_keys_that_are_not_occurrences_of_the_series_are_ignored() -> None:
    stray = local(2026, 3, 3, 10)  # a Tuesday
    found = expand_all(WEEKLY_MONDAYS, MON_START, deleted=[stray], modified={stray: (stray, stray)})
    assert [o.index for o in found] == [1, 2, 3, 4, 5, 6]


def test_expansion_returns_at_most_limit_occurrences_even_without_an_end() -> None:
    endless = r.Recurrence(r.DailyPattern(1), r.NoEndRange(dt.date(2026, 1, 1)))
    start = local(2026, 1, 1)
    found = expand_all(endless, start, window_end=start + dt.timedelta(days=20_000), limit=25)
    assert [o.index for o in found] == list(range(1, 26))
    assert expand_all(endless, start, limit=0) == []


# --------------------------------------------------------------------------------------------
# first/last occurrence, occurrence by index, index of a start
# --------------------------------------------------------------------------------------------


def test_first_and_last_occurrence_skip_deleted_ones_and_a_series_without_end_has_no_last() -> None:
    first, last = r.first_and_last(
        WEEKLY_MONDAYS,
        start=MON_START,
        end=MON_START + dt.timedelta(hours=1),
        tz=BERLIN,
        deleted=[local(2026, 3, 2, 10), local(2026, 4, 6, 10)],
    )
    assert (first and first.index, last and last.index) == (2, 5)
    endless = r.Recurrence(r.DailyPattern(1), r.NoEndRange(dt.date(2026, 3, 2)))
    first, last = r.first_and_last(
        endless, start=MON_START, end=MON_START + dt.timedelta(hours=1), tz=BERLIN
    )
    assert first is not None and first.start == MON_START and last is None


def test_first_and_last_of_an_end_date_series_and_of_a_fully_deleted_series() -> None:
    ended = r.Recurrence(
        r.RelativeMonthlyPattern(1, "Friday", "Last"),
        r.EndDateRange(dt.date(2026, 1, 1), dt.date(2099, 12, 31)),
    )
    start = local(2026, 1, 30)
    first, last = r.first_and_last(ended, start=start, end=start, tz=BERLIN)
    assert first is not None and last is not None
    assert (first.start.date(), last.start.date(), last.index) == (
        dt.date(2026, 1, 30),
        dt.date(2099, 12, 25),
        74 * 12,
    )
    every = [local(2026, 3, d, 10) for d in (2, 9, 16, 23, 30)] + [local(2026, 4, 6, 10)]
    assert r.first_and_last(
        WEEKLY_MONDAYS, start=MON_START, end=MON_START, tz=BERLIN, deleted=every
    ) == (None, None)


def test_occurrence_by_index_is_computed_directly_even_far_into_an_endless_series() -> None:
    endless = r.Recurrence(
        r.WeeklyPattern(1, ("Monday", "Thursday")), r.NoEndRange(dt.date(2026, 3, 2))
    )
    occ = r.occurrence_by_index(
        endless, start=MON_START, end=MON_START + dt.timedelta(hours=1), tz=BERLIN, index=200_001
    )
    assert occ.start.astimezone(BERLIN).strftime("%A %H:%M") == "Monday 10:00"
    assert occ.start.date() == dt.date(2026, 3, 2) + dt.timedelta(weeks=100_000)


@pytest.mark.parametrize(
    ("index", "deleted", "code"),
    [
        (0, [], "ErrorCalendarOccurrenceIndexIsOutOfRecurrenceRange"),
        (7, [], "ErrorCalendarOccurrenceIndexIsOutOfRecurrenceRange"),
        (3, [local(2026, 3, 16, 10)], "ErrorCalendarOccurrenceIsDeletedFromRecurrence"),
    ],
)
def test_occurrence_by_index_reports_out_of_range_and_deleted_occurrences(
    index: int, deleted: list[dt.datetime], code: str
) -> None:
    with pytest.raises(EwsError) as caught:
        r.occurrence_by_index(
            WEEKLY_MONDAYS, start=MON_START, end=MON_START, tz=BERLIN, index=index, deleted=deleted
        )
    assert caught.value.code == code


def test_occurrence_by_index_returns_a_modified_occurrence_at_its_new_time() -> None:
    new = (local(2026, 3, 17, 8), local(2026, 3, 17, 9))
    occ = r.occurrence_by_index(
        WEEKLY_MONDAYS,
        start=MON_START,
        end=MON_START,
        tz=BERLIN,
        index=3,
        modified={local(2026, 3, 16, 10): new},
    )
    assert (occ.start, occ.end, occ.is_exception) == (*new, True)


def test_index_of_finds_an_original_start_and_rejects_other_times() -> None:
    kwargs = {"start": MON_START, "end": MON_START, "tz": BERLIN}
    assert r.index_of(WEEKLY_MONDAYS, original_start=local(2026, 3, 30, 10), **kwargs) == 5
    assert r.index_of(WEEKLY_MONDAYS, original_start=local(2026, 3, 30, 11), **kwargs) is None
    assert r.index_of(WEEKLY_MONDAYS, original_start=local(2026, 4, 13, 10), **kwargs) is None


# --------------------------------------------------------------------------------------------
# properties
# --------------------------------------------------------------------------------------------

DAY_NAMES = st.sampled_from(r.WEEKDAY_NAMES)
ANY_DAY = st.sampled_from((*r.WEEKDAY_NAMES, "Day", "Weekday", "WeekendDay"))
INDEX = st.sampled_from(r.DAY_OF_WEEK_INDEXES)
MONTH = st.sampled_from(r.MONTH_NAMES)

patterns = st.one_of(
    st.builds(r.DailyPattern, st.integers(1, 30)),
    st.builds(
        r.WeeklyPattern,
        st.integers(1, 4),
        st.lists(DAY_NAMES, min_size=1, max_size=7, unique=True).map(tuple),
        DAY_NAMES,
    ),
    st.builds(r.AbsoluteMonthlyPattern, st.integers(1, 12), st.integers(1, 31)),
    st.builds(r.RelativeMonthlyPattern, st.integers(1, 12), ANY_DAY, INDEX),
    st.builds(r.AbsoluteYearlyPattern, st.integers(1, 31), MONTH),
    st.builds(r.RelativeYearlyPattern, ANY_DAY, INDEX, MONTH),
)
start_dates = st.dates(dt.date(2025, 1, 1), dt.date(2027, 12, 31))
ranges = st.one_of(
    st.builds(r.NoEndRange, start_dates),
    st.builds(r.NumberedRange, start_dates, st.integers(1, 60)),
    start_dates.flatmap(
        lambda d: st.builds(r.EndDateRange, st.just(d), st.dates(d, d + dt.timedelta(days=3 * 365)))
    ),
)
recurrences = st.builds(r.Recurrence, patterns, ranges)
zones = st.sampled_from([BERLIN, NEW_YORK])
times = st.times(dt.time(0, 0), dt.time(23, 45)).map(lambda t: t.replace(second=0, microsecond=0))
durations = st.integers(0, 36 * 60).map(lambda m: dt.timedelta(minutes=m))


def _exists(naive: dt.datetime, tz: ZoneInfo) -> bool:
    aware = naive.replace(tzinfo=tz)
    return aware.astimezone(UTC).astimezone(tz).replace(tzinfo=None) == naive


@settings(max_examples=150, deadline=None)
@given(recurrences, zones, times, durations)
def test_every_occurrence_keeps_the_masters_wall_clock_time_and_duration(
    rec: r.Recurrence, tz: ZoneInfo, time_of_day: dt.time, duration: dt.timedelta
) -> None:
    start = dt.datetime.combine(rec.range.start_date, time_of_day, tz)
    found = expand_all(rec, start, duration, tz=tz, limit=400)
    for occ in found:
        naive = dt.datetime.combine(occ.start.astimezone(tz).date(), time_of_day)
        local_start = occ.start.astimezone(tz).replace(tzinfo=None)
        if _exists(naive, tz):
            assert local_start == naive
        local_end = occ.end.astimezone(tz).replace(tzinfo=None)
        if _exists(local_start + duration, tz):
            assert local_end - local_start == duration


@settings(max_examples=150, deadline=None)
@given(recurrences, zones, times, st.integers(0, 50))
def test_expansion_is_strictly_increasing_indexed_from_one_and_never_exceeds_the_limit(
    rec: r.Recurrence, tz: ZoneInfo, time_of_day: dt.time, limit: int
) -> None:
    start = dt.datetime.combine(rec.range.start_date, time_of_day, tz)
    sixty_years = dt.timedelta(days=61 * 366)  # the longest numbered series generated
    found = expand_all(
        rec, start, tz=tz, window_start=start, window_end=start + sixty_years, limit=limit
    )
    assert len(found) <= limit
    assert all(a.start < b.start for a, b in itertools.pairwise(found))
    assert [o.index for o in found] == list(range(1, len(found) + 1))
    if isinstance(rec.range, r.NumberedRange):
        assert len(found) == min(limit, rec.range.number_of_occurrences)
    if isinstance(rec.range, r.EndDateRange):
        assert all(o.start.astimezone(tz).date() <= rec.range.end_date for o in found)
    for occ in found[:5]:
        by_index = r.occurrence_by_index(
            rec, start=start, end=start + dt.timedelta(hours=1), tz=tz, index=occ.index
        )
        assert by_index == occ


@settings(max_examples=150, deadline=None)
@given(
    recurrences,
    zones,
    durations,
    st.integers(0, 400),
    st.integers(0, 400),
    st.integers(0, 400),
    st.sets(st.integers(1, 40), max_size=5),
)
def test_expanding_two_adjacent_windows_equals_expanding_their_union(
    rec: r.Recurrence,
    tz: ZoneInfo,
    duration: dt.timedelta,
    a: int,
    b: int,
    c: int,
    deleted_indexes: set[int],
) -> None:
    start = dt.datetime.combine(rec.range.start_date, dt.time(9, 30), tz)
    end = start + duration
    ws, wm, we = (start + dt.timedelta(days=d, hours=5) for d in sorted((a, b, c)))
    deleted = []
    for i in deleted_indexes:
        with contextlib.suppress(EwsError):
            deleted.append(r.occurrence_by_index(rec, start=start, end=end, tz=tz, index=i).start)

    def run(w1: dt.datetime, w2: dt.datetime) -> set[r.Occurrence]:
        return set(
            r.expand(
                rec, start=start, end=end, tz=tz, window_start=w1, window_end=w2, deleted=deleted
            )
        )

    left, right, whole = run(ws, wm), run(wm, we), run(ws, we)
    assert left | right == whole
    straddling = {o for o in whole if o.start < wm < o.end} if ws < wm < we else set()
    assert left & right == straddling
    assert not {o.original_start for o in whole} & set(deleted)


def test_an_end_date_before_the_first_pattern_date_gives_an_empty_series() -> None:
    rec = r.Recurrence(
        r.AbsoluteMonthlyPattern(1, 10), r.EndDateRange(dt.date(2026, 3, 20), dt.date(2026, 4, 5))
    )
    start = local(2026, 4, 10)
    assert expand_all(rec, start, window_start=local(2026, 1, 1)) == []
    assert r.first_and_last(rec, start=start, end=start, tz=BERLIN) == (None, None)


def test_series_reaching_the_end_of_the_calendar_stay_bounded() -> None:
    yearly = r.Recurrence(
        r.AbsoluteYearlyPattern(1, "June"),
        r.EndDateRange(dt.date(2026, 1, 1), dt.date(9999, 12, 30)),
    )
    start = local(2026, 6, 1)
    _first, last = r.first_and_last(yearly, start=start, end=start, tz=BERLIN)
    assert last is not None and last.start.date() == dt.date(9999, 6, 1)
    far = r.expand(
        yearly,
        start=start,
        end=start,
        tz=BERLIN,
        window_start=local(9990, 1, 1),
        window_end=local(9999, 12, 31),
    )
    assert len(far) == 10
    with pytest.raises(EwsError):
        r.occurrence_by_index(yearly, start=start, end=start, tz=BERLIN, index=10_000)


def test_a_window_decades_into_an_endless_series_is_computed_without_walking_from_the_start() -> (
    None
):
    daily = r.Recurrence(r.DailyPattern(1), r.NoEndRange(dt.date(2026, 1, 1)))
    start = local(2026, 1, 1)
    found = r.expand(
        daily,
        start=start,
        end=start + dt.timedelta(hours=1),
        tz=BERLIN,
        window_start=local(2900, 1, 1, 0),
        window_end=local(2900, 1, 3, 0),
    )
    assert [o.index for o in found] == [
        (dt.date(2900, 1, 1) - dt.date(2026, 1, 1)).days + 1,
        (dt.date(2900, 1, 2) - dt.date(2026, 1, 1)).days + 1,
    ]
