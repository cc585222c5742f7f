"""Wall-clock times ⇄ UTC around DST changes, as the calendar forms use them."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from psa.scheduling.localtime import (
    AmbiguousLocalTime,
    NonexistentLocalTime,
    day_start,
    to_local,
    to_utc,
    week_start,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("local", "tz", "expected"),
    [
        ("2026-03-29 01:59", BERLIN, "2026-03-29 00:59"),
        ("2026-03-29 03:00", BERLIN, "2026-03-29 01:00"),
        ("2026-10-25 03:00", BERLIN, "2026-10-25 02:00"),
        ("2026-11-01 00:59", NEW_YORK, "2026-11-01 04:59"),
        ("2026-11-01 02:00", NEW_YORK, "2026-11-01 07:00"),
    ],
)
def test_unambiguous_wall_clock_times_convert_to_one_utc_instant(local, tz, expected):
    assert to_utc(dt.datetime.fromisoformat(local), tz) == utc(expected)


def test_a_time_in_the_spring_forward_gap_is_rejected():
    with pytest.raises(NonexistentLocalTime, match="does not exist in Europe/Berlin"):
        to_utc(dt.datetime(2026, 3, 29, 2, 30), BERLIN)


def test_a_time_in_the_fall_back_overlap_is_rejected_with_both_candidates():
    with pytest.raises(AmbiguousLocalTime) as raised:
        to_utc(dt.datetime(2026, 11, 1, 1, 30), NEW_YORK)
    assert raised.value.instants == (utc("2026-11-01 05:30"), utc("2026-11-01 06:30"))


def test_to_local_gives_the_naive_wall_clock_time():
    assert to_local(utc("2026-10-25 01:30"), BERLIN) == dt.datetime(2026, 10, 25, 2, 30)


def test_a_day_starts_at_local_midnight():
    assert day_start(dt.date(2026, 3, 29), BERLIN) == utc("2026-03-28 23:00")
    assert day_start(dt.date(2026, 3, 30), BERLIN) == utc("2026-03-29 22:00")


def test_weeks_start_on_monday():
    assert week_start(dt.date(2026, 3, 29)) == dt.date(2026, 3, 23)
    assert week_start(dt.date(2026, 3, 23)) == dt.date(2026, 3, 23)
