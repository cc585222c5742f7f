"""The profile's time-zone list: grouped, no aliases, and a stored alias is not lost."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from psa.resources.models import Resource
from tests.builders import make_resource

pytestmark = pytest.mark.django_db

PROFILE = reverse("profile")


def zone_select(html: str) -> str:
    match = re.search(r'<select name="time_zone".*?</select>', html, re.S)
    assert match is not None
    return match.group(0)


def profile_data(**overrides: str) -> dict[str, str]:
    data = {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.test"}
    return data | overrides


def test_the_zones_are_grouped_by_region_without_aliases(client):
    tech = make_resource(time_zone="Europe/Berlin")
    client.force_login(tech.user)
    select = zone_select(client.get(PROFILE).content.decode())
    groups = re.findall(r'<optgroup label="([^"]+)">', select)
    assert groups == [
        "Africa", "America", "Antarctica", "Arctic", "Asia", "Atlantic Ocean",
        "Australia", "Europe", "Indian Ocean", "Pacific Ocean",
    ]  # fmt: skip
    assert '<option value="Europe/Berlin" selected>Berlin</option>' in select
    assert '<option value="UTC">UTC</option>' in select
    assert select.index('value="UTC"') < select.index("<optgroup")
    for alias in ("US/Eastern", "Europe/Kiev", "Etc/GMT+5", "Asia/Calcutta", "EST5EDT"):
        assert f'value="{alias}"' not in select
    assert 'value="Europe/Kyiv"' in select
    assert len(re.findall("<option ", select)) < 450


def test_a_stored_alias_is_shown_selected_under_other_and_kept_on_save(client):
    tech = make_resource(time_zone="US/Eastern")
    client.force_login(tech.user)
    select = zone_select(client.get(PROFILE).content.decode())
    assert re.search(
        r'<optgroup label="Other">\s*<option value="US/Eastern" selected>US/Eastern</option>',
        select,
    )
    response = client.post(PROFILE, profile_data(time_zone="US/Eastern", first_name="Grace"))
    assert response.status_code == 302
    tech.refresh_from_db()
    assert (tech.first_name, tech.time_zone) == ("Grace", "US/Eastern")


def test_another_alias_than_the_stored_one_is_refused(client):
    tech = make_resource(time_zone="Europe/Berlin")
    client.force_login(tech.user)
    response = client.post(PROFILE, profile_data(time_zone="Europe/Kiev"))
    assert response.status_code == 400
    assert "time_zone" in response.context["form"].errors
    assert Resource.objects.get(pk=tech.pk).time_zone == "Europe/Berlin"


def test_moving_from_an_alias_to_a_canonical_zone_drops_the_other_group(client):
    tech = make_resource(time_zone="Asia/Calcutta")
    client.force_login(tech.user)
    assert client.post(PROFILE, profile_data(time_zone="Asia/Kolkata")).status_code == 302
    select = zone_select(client.get(PROFILE).content.decode())
    assert "Other" not in select and 'value="Asia/Calcutta"' not in select
