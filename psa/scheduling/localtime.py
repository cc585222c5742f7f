"""A resource's wall-clock times ⇄ aware UTC instants.

Forms take naive local date-times (``<input type="datetime-local">``) meant in the resource's time
zone. Around a DST change a wall-clock time can be missing (clocks spring forward: 02:30 on
2026-03-29 in Europe/Berlin) or happen twice (clocks fall back: 02:30 on 2026-10-25). Picking an
instant silently would put the item an hour away from what the user meant, so :func:`to_utc`
refuses both and says why; callers turn that into a field error.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from django.utils.translation import gettext as _


class LocalTimeError(ValueError):
    """A wall-clock time that does not name exactly one instant in its zone."""


class NonexistentLocalTime(LocalTimeError):
    """The time falls into a gap: the clocks skip it."""


class AmbiguousLocalTime(LocalTimeError):
    """The time happens twice; ``instants`` holds both, earlier first."""

    def __init__(self, message: str, instants: tuple[dt.datetime, dt.datetime]) -> None:
        super().__init__(message)
        self.instants = instants


def to_utc(local: dt.datetime, tz: ZoneInfo) -> dt.datetime:
    """The UTC instant of the wall-clock time ``local`` (its tzinfo is ignored) in ``tz``.

    Raises :class:`NonexistentLocalTime` or :class:`AmbiguousLocalTime` around DST changes.
    """
    naive = local.replace(tzinfo=None, fold=0)
    # zoneinfo fold semantics: fold=0 and fold=1 give the offsets before and after a transition;
    # they differ only inside a gap or an overlap. A gap time does not survive a round trip.
    earlier = naive.replace(tzinfo=tz, fold=0)
    later = naive.replace(tzinfo=tz, fold=1)
    if earlier.utcoffset() == later.utcoffset():
        return earlier.astimezone(dt.UTC)
    when = {"time": f"{naive:%H:%M}", "date": f"{naive:%Y-%m-%d}", "zone": tz.key}
    if earlier.astimezone(dt.UTC).astimezone(tz).replace(tzinfo=None) != naive:
        raise NonexistentLocalTime(
            _(
                "%(time)s on %(date)s does not exist in %(zone)s: the clocks go forward then. "
                "Choose a time outside the skipped hour."
            )
            % when
        )
    raise AmbiguousLocalTime(
        _(
            "%(time)s on %(date)s happens twice in %(zone)s: the clocks go back then. "
            "Choose a time outside the repeated hour."
        )
        % when,
        (earlier.astimezone(dt.UTC), later.astimezone(dt.UTC)),
    )


def to_local(instant: dt.datetime, tz: ZoneInfo) -> dt.datetime:
    """The naive wall-clock time of the aware ``instant`` in ``tz`` (what a form shows)."""
    return instant.astimezone(tz).replace(tzinfo=None)


def day_start(day: dt.date, tz: ZoneInfo) -> dt.datetime:
    """The UTC instant ``day`` begins in ``tz``.

    Where midnight itself is skipped (some zones change at 00:00), fold=0 lands on the first
    instant after the gap, which is when that day really begins.
    """
    return dt.datetime.combine(day, dt.time(), tzinfo=tz).astimezone(dt.UTC)


def local_today(tz: ZoneInfo, now: dt.datetime | None = None) -> dt.date:
    """Today's date in ``tz`` (``now`` defaults to the current instant)."""
    return (now or dt.datetime.now(dt.UTC)).astimezone(tz).date()


def week_start(day: dt.date) -> dt.date:
    """The Monday of ``day``'s week."""
    return day - dt.timedelta(days=day.weekday())
