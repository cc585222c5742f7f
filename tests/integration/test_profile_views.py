"""My › Profile: the General tab and the tab strip extensions add to."""

from __future__ import annotations

import pytest
from django.urls import reverse

from psa.audit.models import AuditEntry
from psa.extensions import registry
from psa.extensions.registry import ProfileTab
from psa.resources.models import Organisation
from tests.builders import make_resource

pytestmark = pytest.mark.django_db

PROFILE = reverse("profile")


def valid_data(**overrides: str) -> dict[str, str]:
    data = {
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email": "ada@example.test",
        "time_zone": "Europe/Berlin",
    }
    return data | overrides


def test_profile_shows_the_users_own_details_on_the_general_tab(client):
    tech = make_resource(first_name="Grace", time_zone="America/New_York")
    client.force_login(tech.user)
    html = client.get(PROFILE).content.decode()
    assert 'value="Grace"' in html
    assert '<option value="America/New_York" selected>' in html
    assert 'class="tab active" aria-current="page">General</a>' in html


def test_saving_the_profile_updates_the_resource_through_an_audited_action(client):
    tech = make_resource(time_zone="America/New_York")  # the form moves it to Europe/Berlin
    client.force_login(tech.user)
    response = client.post(PROFILE, valid_data())
    assert response.status_code == 302
    tech.refresh_from_db()
    assert (tech.full_name, tech.time_zone) == ("Ada Lovelace", "Europe/Berlin")
    entry = AuditEntry.objects.get(model="resources.resource", action="update")
    assert (entry.origin_kind, entry.user_id) == ("user", tech.user_id)


def test_unknown_time_zone_is_a_field_error_and_keeps_the_input(client):
    tech = make_resource()
    client.force_login(tech.user)
    response = client.post(PROFILE, valid_data(time_zone="Mars/Olympus_Mons"))
    assert response.status_code == 400
    assert "time_zone" in response.context["form"].errors
    assert 'value="Lovelace"' in response.content.decode()


def test_an_email_another_resource_uses_is_a_field_error(client):
    make_resource(email="taken@example.test")
    tech = make_resource()
    client.force_login(tech.user)
    response = client.post(PROFILE, valid_data(email="TAKEN@example.test"))
    assert response.status_code == 400
    assert response.context["form"].errors
    tech.refresh_from_db()
    assert tech.email != "TAKEN@example.test"


def test_user_without_a_resource_gets_a_friendly_profile_page(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("nobody"))
    response = client.get(PROFILE)
    assert response.status_code == 200
    assert "not linked to a PSA resource" in response.content.decode()


def test_a_registered_extension_tab_appears_in_the_tab_strip(client, monkeypatch):
    monkeypatch.setattr(registry, "_profile_tabs", dict(registry._profile_tabs))
    registry.register_profile_tab(
        ProfileTab(slug="extra", label="Extra tab", url_name="calendar", order=50)
    )
    client.force_login(make_resource().user)
    html = client.get(PROFILE).content.decode()
    assert html.index(">General</a>") < html.index(">Extra tab</a>")


def test_layout_shows_the_organisation_name_and_a_post_logout_button(client):
    Organisation.objects.create(name="Contoso MSP")
    client.force_login(make_resource().user)
    html = client.get(PROFILE).content.decode()
    assert "Contoso MSP" in html
    assert f'<a href="{PROFILE}" aria-current="page">Profile</a>' in html
    assert f'<form method="post" action="{reverse("logout")}"' in html


def test_logout_is_a_post_and_ends_the_session(client):
    client.force_login(make_resource().user)
    assert client.post(reverse("logout")).status_code == 302
    assert client.get(PROFILE).status_code == 302
