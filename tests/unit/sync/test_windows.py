"""The sync window: past days back, recurring days ahead for occurrences only."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from exchange_ext.sync.windows import SyncWindow, is_in_window, window_for
from tests import clock
from tests.unit.sync.factories import OPTIONS, calendar, contact


@pytest.fixture
def window() -> SyncWindow:
    """The window of a run at the pinned clock, 7 days back and 14 ahead."""
    return window_for(dataclasses.replace(OPTIONS, past_days=7, recurring_days=14), clock.now())


def test_window_spans_past_days_back_and_recurring_days_ahead(window: SyncWindow) -> None:
    assert window.start == clock.now() - dt.timedelta(days=7)
    assert window.recurring_end == clock.now() + dt.timedelta(days=14)


@pytest.mark.parametrize(
    ("days", "hours", "inside"),
    [(-8, 1, False), (-7, -1, False), (-7, 0.5, True), (-3, 1, True), (100, 1, True)],
)
def test_items_ending_after_the_window_start_are_synced(
    window: SyncWindow, days, hours, inside
) -> None:
    record = calendar(days=days, hours=abs(hours))
    if hours < 0:
        record = dataclasses.replace(record, end=window.start)
    assert is_in_window(record, window) is inside


@pytest.mark.parametrize(("days", "inside"), [(13, True), (14, False), (20, False)])
def test_occurrences_are_expanded_only_up_to_recurring_days_ahead(
    window: SyncWindow, days, inside
) -> None:
    assert is_in_window(calendar(days=days), window, is_occurrence=True) is inside


def test_contacts_are_always_in_the_window(window: SyncWindow) -> None:
    assert is_in_window(contact(), window)


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        window_for(OPTIONS, clock.now().replace(tzinfo=None))
