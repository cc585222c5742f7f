"""IANA time zones: the list offered in forms and the validator for stored names."""

from __future__ import annotations

import zoneinfo
from functools import cache

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _


@cache
def time_zone_names() -> tuple[str, ...]:
    """Every IANA zone name the system's tz database knows, sorted."""
    return tuple(sorted(zoneinfo.available_timezones()))


def validate_time_zone(name: str) -> None:
    """Reject anything that is not an IANA zone name (``Europe/Berlin``, ``UTC``)."""
    if name not in time_zone_names():
        raise ValidationError(_("%(name)s is not a known time zone."), params={"name": name})


def time_zone_choices() -> list[tuple[str, str]]:
    return [(name, name.replace("_", " ")) for name in time_zone_names()]
