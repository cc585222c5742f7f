"""The test clock: every test reads the clock once, when it starts, and pins that reading.

The reading is the process clock — the real one, or the one ``make test-clock`` moved
(``tests/clock_shift``) (README, "Tests") — so the suite runs on whatever day it is run and the
shifted runs really test other days. Builders and tests place their items relative to it:

* :func:`now` — the pinned reading (whole seconds, UTC) for the running test;
* :func:`day` — a wall-clock time on a day counted from the pinned date, for calendar-shaped
  data ("tomorrow at 09:00", "in three days, all day");
* :func:`zulu` — how Exchange writes such a time on the wire.

Code under test that reads the clock itself (views, commands, workers) sees a time a few
seconds after :func:`now`; tests that run the engine, the planner or the dispatcher pass
``now=clock.now()`` instead, so what they expect never depends on when the test ran.

A test that needs one fixed calendar fact (a daylight-saving change, a leap day) names its
dates with :func:`tests.builders.at` — as long as nothing it checks is compared with the clock.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from django.utils import timezone

_pinned: dt.datetime | None = None


def pin() -> dt.datetime:
    """Read the clock and pin it for the running test (the suite's autouse fixture calls this)."""
    global _pinned
    _pinned = timezone.now().astimezone(dt.UTC).replace(microsecond=0)
    return _pinned


def unpin() -> None:
    global _pinned
    _pinned = None


def now() -> dt.datetime:
    """The running test's pinned clock reading (aware, UTC); pinned on first use if need be."""
    return _pinned or pin()


def day(offset: int = 0, time: str = "00:00", tz: str = "UTC") -> dt.datetime:
    """``time`` (``"HH:MM"``) in ``tz`` on the pinned date (as ``tz`` sees it) plus ``offset``
    days, as an aware UTC datetime. ``day(1, "09:00")`` is tomorrow at 09:00 UTC;
    ``day(2, tz="Europe/Berlin")`` the Berlin midnight starting the day after tomorrow.

    A wall-clock time skipped by a daylight-saving change resolves as ``zoneinfo`` does (fold 0).
    """
    zone = ZoneInfo(tz)
    date = now().astimezone(zone).date() + dt.timedelta(days=offset)
    local = dt.datetime.combine(date, dt.time.fromisoformat(time), tzinfo=zone)
    return local.astimezone(dt.UTC)


def zulu(value: dt.datetime) -> str:
    """``value`` as Exchange writes UTC times: ``2026-11-23T09:00:00Z``."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
