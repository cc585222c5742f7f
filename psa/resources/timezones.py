"""IANA time zones: the list offered in forms and the validator for stored names.

Two sets of names, on purpose:

- **Stored and accepted** (``time_zone_names``, ``validate_time_zone``): every name the tz
  database knows, aliases included (``US/Eastern``, ``Europe/Kiev``, ``Etc/GMT+5``), so a value
  saved earlier, through the admin or by an import, stays valid.
- **Offered** (``time_zone_choices``): canonical names only, grouped by region. The rule: the
  names of ``zone.tab`` — the tz database's table of one zone per populated region of each
  country, which never lists backward-compatibility links (``Asia/Calcutta``, ``Europe/Kiev``,
  ``America/Buenos_Aires``) nor the legacy groups (``US/``, ``Canada/``, ``Etc/``,
  ``SystemV/``, names without a region such as ``Cuba`` or ``EST5EDT``) — plus ``UTC``. The
  table ships with the ``tzdata`` package (a pinned dependency), so the list is the same on
  every machine; should it be unreadable, ``_canonical_by_rule`` drops the same legacy groups
  by their names. A stored alias that is not offered still shows, selected, in an "Other"
  group (``time_zone_choices(keep=...)``).
"""

from __future__ import annotations

import importlib.resources
import zoneinfo
from collections.abc import Iterable
from functools import cache

from django.core.exceptions import ValidationError
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from psa.i18n.collation import sort_key

UTC = "UTC"

# The groups of the list, in the order shown: the first part of a canonical name.
REGIONS: dict[str, Promise] = {
    "Africa": pgettext_lazy("time zone region", "Africa"),
    "America": pgettext_lazy("time zone region", "America"),
    "Antarctica": pgettext_lazy("time zone region", "Antarctica"),
    "Arctic": pgettext_lazy("time zone region", "Arctic"),
    "Asia": pgettext_lazy("time zone region", "Asia"),
    "Atlantic": pgettext_lazy("time zone region", "Atlantic Ocean"),
    "Australia": pgettext_lazy("time zone region", "Australia"),
    "Europe": pgettext_lazy("time zone region", "Europe"),
    "Indian": pgettext_lazy("time zone region", "Indian Ocean"),
    "Pacific": pgettext_lazy("time zone region", "Pacific Ocean"),
}
OTHER = pgettext_lazy("time zone region", "Other")

# Legacy groups of aliases, used only when zone.tab cannot be read.
_LEGACY_PREFIXES = ("Etc/", "SystemV/", "US/", "Canada/", "Brazil/", "Mexico/", "Chile/")

ChoiceGroup = tuple[str, str] | tuple[str, list[tuple[str, str]]]


@cache
def time_zone_names() -> tuple[str, ...]:
    """Every IANA zone name the system's tz database knows, aliases included, sorted."""
    return tuple(sorted(zoneinfo.available_timezones()))


def validate_time_zone(name: str) -> None:
    """Reject anything that is not an IANA zone name (``Europe/Berlin``, ``UTC``)."""
    if name not in time_zone_names():
        raise ValidationError(_("%(name)s is not a known time zone."), params={"name": name})


@cache
def canonical_time_zone_names() -> frozenset[str]:
    """The names offered in forms: zone.tab's zones this system knows, and ``UTC``."""
    known = frozenset(time_zone_names())
    listed = _zone_tab_names()
    canonical = listed & known if listed else _canonical_by_rule(known)
    return canonical | ({UTC} & known)


def _zone_tab_names() -> frozenset[str]:
    """The third column of ``zone.tab`` (``CC coordinates TZ comments``); empty if unreadable."""
    try:
        text = (importlib.resources.files("tzdata.zoneinfo") / "zone.tab").read_text("utf-8")
    except (ModuleNotFoundError, OSError):
        return frozenset()
    rows = (line.split("\t") for line in text.splitlines() if line and not line.startswith("#"))
    return frozenset(row[2] for row in rows if len(row) >= 3)


def _canonical_by_rule(names: Iterable[str]) -> frozenset[str]:
    """The fallback rule: names in a region of ``REGIONS``, outside the legacy groups."""
    return frozenset(
        name
        for name in names
        if name.split("/", 1)[0] in REGIONS and not name.startswith(_LEGACY_PREFIXES)
    )


def place_label(name: str) -> str:
    """What an option says inside its region's group: ``Argentina / Buenos Aires``."""
    place = name.split("/", 1)[-1]
    return place.replace("_", " ").replace("/", " / ")


def time_zone_choices(keep: str | None = None) -> list[ChoiceGroup]:
    """``UTC``, then one group per region of canonical names in the reader's order, then —
    only if ``keep`` (a stored value) is a valid name that is not offered — an "Other" group
    with it, so that saving an unrelated change keeps it."""
    canonical = canonical_time_zone_names()
    choices: list[ChoiceGroup] = [(UTC, UTC)] if UTC in canonical else []
    for region, label in REGIONS.items():
        names = [name for name in canonical if name.split("/", 1)[0] == region]
        options = sorted(((name, place_label(name)) for name in names), key=_by_label)
        if options:
            choices.append((str(label), options))
    if keep and keep not in canonical and keep in time_zone_names():
        choices.append((str(OTHER), [(keep, keep.replace("_", " "))]))
    return choices


def _by_label(option: tuple[str, str]) -> object:
    return sort_key(option[1])
