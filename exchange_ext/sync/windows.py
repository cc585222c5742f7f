"""The sync window: which items the sync looks at this run.

Only items ending after ``now - past_days`` are synced; recurring series are expanded up to
``now + recurring_days``. An item that ages out of the window is forgotten (its link dropped),
never deleted on either side: leaving the window says nothing about the item's life.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from exchange_ext.sync.records import CalendarRecord, ContactRecord, Record, SyncOptions


@dataclass(frozen=True)
class SyncWindow:
    """``start``: items must end after it. ``recurring_end``: occurrences must start before it."""

    start: dt.datetime
    recurring_end: dt.datetime


def window_for(options: SyncOptions, now: dt.datetime) -> SyncWindow:
    """The window of a run at ``now`` (aware). Raises ``ValueError`` for a naive ``now``."""
    if now.tzinfo is None:
        raise ValueError("now must be aware")
    return SyncWindow(
        start=now - dt.timedelta(days=options.past_days),
        recurring_end=now + dt.timedelta(days=options.recurring_days),
    )


def is_in_window(record: Record, window: SyncWindow, *, is_occurrence: bool = False) -> bool:
    """Whether ``record`` is synced in ``window``. Contacts have no time and always are."""
    if isinstance(record, ContactRecord):
        return True
    return _calendar_in_window(record, window, is_occurrence)


def _calendar_in_window(record: CalendarRecord, window: SyncWindow, is_occurrence: bool) -> bool:
    if record.end <= window.start:
        return False
    # Single items far in the future stay synced; only expanded occurrences are bounded ahead.
    return not is_occurrence or record.start < window.recurring_end
