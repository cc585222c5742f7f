"""The time-zone list: canonical names grouped by region; stored aliases stay valid."""

from __future__ import annotations

import zoneinfo

import pytest
from django.core.exceptions import ValidationError

from psa.resources.timezones import (
    REGIONS,
    _canonical_by_rule,
    canonical_time_zone_names,
    place_label,
    time_zone_choices,
    validate_time_zone,
)

ALIASES = (
    "US/Eastern",
    "Europe/Kiev",
    "Etc/GMT+5",
    "Asia/Calcutta",
    "America/Buenos_Aires",
    "Asia/Saigon",
    "Canada/Pacific",
    "Brazil/East",
    "GB",
    "Cuba",
    "EST5EDT",
    "Pacific/Truk",
    "America/Godthab",
    "Antarctica/South_Pole",
)
CANONICAL = (
    "UTC",
    "Europe/Berlin",
    "Europe/Kyiv",
    "Europe/Oslo",  # a link since tzdata 2022b, but the zone of a country: offered
    "Asia/Kolkata",
    "America/New_York",
    "America/Argentina/Buenos_Aires",
    "America/Indiana/Indianapolis",
    "Pacific/Chuuk",
    "Arctic/Longyearbyen",
)


def offered(choices) -> dict[str, str]:
    """{value: group label} of every option ("" for the options outside a group)."""
    found: dict[str, str] = {}
    for value, label in choices:
        if isinstance(label, list):
            found |= {name: value for name, _ in label}
        else:
            found[value] = ""
    return found


def test_the_list_groups_canonical_names_by_region_with_utc_first():
    choices = time_zone_choices()
    assert choices[0] == ("UTC", "UTC")
    groups = [value for value, label in choices[1:]]
    assert groups == [str(label) for label in REGIONS.values()]
    names = offered(choices)
    assert names["Europe/Berlin"] == "Europe" and names["Indian/Maldives"] == "Indian Ocean"
    assert 350 < len(names) < 450  # not the ~600 raw names


@pytest.mark.parametrize("alias", ALIASES)
def test_aliases_are_not_offered_but_stay_valid(alias):
    assert alias not in offered(time_zone_choices())
    validate_time_zone(alias)  # a value stored earlier is still accepted


@pytest.mark.parametrize("name", CANONICAL)
def test_canonical_names_are_offered(name):
    assert name in offered(time_zone_choices())


def test_every_offered_name_is_one_the_system_knows():
    assert canonical_time_zone_names() <= zoneinfo.available_timezones()


def test_a_stored_alias_is_kept_selectable_in_an_other_group():
    choices = time_zone_choices(keep="US/Eastern")
    assert choices[-1] == ("Other", [("US/Eastern", "US/Eastern")])
    assert time_zone_choices(keep="Europe/Berlin") == time_zone_choices()  # offered already
    assert time_zone_choices(keep="Mars/Olympus_Mons") == time_zone_choices()  # not a zone


def test_an_unknown_name_is_still_refused():
    with pytest.raises(ValidationError):
        validate_time_zone("Mars/Olympus_Mons")


def test_options_name_the_place_within_the_region():
    assert place_label("America/Argentina/Buenos_Aires") == "Argentina / Buenos Aires"
    assert place_label("Europe/Berlin") == "Berlin"


def test_the_fallback_rule_drops_the_legacy_groups_and_names_without_a_region():
    kept = _canonical_by_rule(zoneinfo.available_timezones())
    assert "Europe/Berlin" in kept and "Asia/Kolkata" in kept
    for legacy in ("US/Eastern", "Etc/GMT+5", "Canada/Pacific", "Brazil/East", "Cuba", "UTC"):
        assert legacy not in kept
