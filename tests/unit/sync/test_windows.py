"""The sync window: past days back, recurring days ahead for occurrences only."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from exchange_ext.sync.windows import is_in_window, window_for
from tests.unit.sync.factories import NOW, OPTIONS, calendar, contact

WINDOW = window_for(dataclasses.replace(OPTIONS, past_days=7, recurring_days=14), NOW)


def test_window_spans_past_days_back_and_recurring_days_ahead() -> None:
    assert WINDOW.start == NOW - dt.timedelta(days=7)
    assert WINDOW.recurring_end == NOW + dt.timedelta(days=14)


@pytest.mark.parametrize(
    ("days", "hours", "inside"),
    [(-8, 1, False), (-7, -1, False), (-7, 0.5, True), (-3, 1, True), (100, 1, True)],
)
def test_items_ending_after_the_window_start_are_synced(days, hours, inside) -> None:
    record = calendar(days=days, hours=abs(hours))
    if hours < 0:
        record = dataclasses.replace(record, end=WINDOW.start)
    assert is_in_window(record, WINDOW) is inside


@pytest.mark.parametrize(("days", "inside"), [(13, True), (14, False), (20, False)])
def test_occurrences_are_expanded_only_up_to_recurring_days_ahead(days, inside) -> None:
    assert is_in_window(calendar(days=days), WINDOW, is_occurrence=True) is inside


def test_contacts_are_always_in_the_window() -> None:
    assert is_in_window(contact(), WINDOW)


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        window_for(OPTIONS, NOW.replace(tzinfo=None))
