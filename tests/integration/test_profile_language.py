"""The language a user reads: chosen on the profile's General tab or in the header's switcher.

The catalogues may not be compiled here, so the language of a page is read from what Django
reports (``Content-Language``, ``<html lang>``), not from translated words.
"""

from __future__ import annotations

import pytest
from django.conf import settings
from django.urls import reverse

from tests.builders import make_resource

pytestmark = pytest.mark.django_db

PROFILE = reverse("profile")
CALENDAR = reverse("calendar")
SWITCH = reverse("choose_language")


def profile_data(**overrides: str) -> dict[str, str]:
    data = {
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email": "ada@example.test",
        "time_zone": "Europe/Berlin",
        "language": "",
    }
    return data | overrides


# --- the profile's General tab --------------------------------------------------------------


def test_the_general_tab_offers_the_browsers_language_then_every_language(client):
    tech = make_resource()
    client.force_login(tech.user)
    form = client.get(PROFILE).context["form"]
    codes = [code for code, _label in form.fields["language"].choices]
    assert codes == ["", "en", "en-us", "de", "ja", "zh-hans"]
    html = client.get(PROFILE).content.decode()
    assert '<option value="" selected>Browser&#x27;s language</option>' in html
    assert "Pages, your emails and the text the PSA writes into your Exchange items" in html


def test_a_saved_language_is_stored_and_sets_the_language_cookie_at_once(client):
    tech = make_resource()
    client.force_login(tech.user)
    response = client.post(PROFILE, profile_data(language="de"))
    assert response.status_code == 302
    tech.refresh_from_db()
    assert tech.language == "de"
    assert response.cookies[settings.LANGUAGE_COOKIE_NAME].value == "de"
    page = client.get(PROFILE, HTTP_ACCEPT_LANGUAGE="ja")
    assert page["Content-Language"] == "de"
    assert '<option value="de" selected>Deutsch</option>' in page.content.decode()


def test_a_stored_language_wins_over_the_browsers(client):
    tech = make_resource(language="zh-hans")
    client.force_login(tech.user)
    response = client.get(CALENDAR, HTTP_ACCEPT_LANGUAGE="de,en;q=0.5")
    assert response["Content-Language"] == "zh-hans"
    assert '<html lang="zh-hans">' in response.content.decode()


def test_the_browsers_language_decides_when_none_is_stored(client):
    tech = make_resource(language="")
    client.force_login(tech.user)
    assert client.get(CALENDAR, HTTP_ACCEPT_LANGUAGE="ja")["Content-Language"] == "ja"
    assert client.get(CALENDAR, HTTP_ACCEPT_LANGUAGE="de-DE,de;q=0.9")["Content-Language"] == "de"


def test_going_back_to_the_browsers_language_clears_the_choice_and_the_cookie(client):
    tech = make_resource(language="de")
    client.force_login(tech.user)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "de"
    response = client.post(PROFILE, profile_data(language=""), HTTP_ACCEPT_LANGUAGE="ja")
    assert response.status_code == 302
    tech.refresh_from_db()
    assert tech.language == ""
    cookie = response.cookies[settings.LANGUAGE_COOKIE_NAME]
    assert cookie.value == "" and cookie["max-age"] == 0
    assert client.get(CALENDAR, HTTP_ACCEPT_LANGUAGE="ja")["Content-Language"] == "ja"


def test_an_unknown_language_is_a_field_error_and_stores_nothing(client):
    tech = make_resource(language="de")
    client.force_login(tech.user)
    response = client.post(PROFILE, profile_data(language="xx", last_name="Changed"))
    assert response.status_code == 400
    assert "language" in response.context["form"].errors
    assert settings.LANGUAGE_COOKIE_NAME not in response.cookies
    tech.refresh_from_db()
    assert tech.language == "de"
    assert tech.last_name != "Changed"


# --- the header's switcher -------------------------------------------------------------------


def test_every_page_has_the_switcher_with_the_current_language_selected(client):
    html = client.get(reverse("login"), HTTP_ACCEPT_LANGUAGE="ja").content.decode()
    assert f'action="{SWITCH}"' in html
    assert '<option value="ja" lang="ja" selected>日本語</option>' in html
    for name in ("English", "English (US)", "Deutsch", "简体中文"):
        assert f">{name}</option>" in html
    assert 'name="next" value="/accounts/login/"' in html


def test_the_switcher_stores_the_choice_of_a_signed_in_user(client):
    tech = make_resource()
    client.force_login(tech.user)
    response = client.post(SWITCH, {"language": "ja", "next": "/crm/accounts/?q=a"})
    assert response.status_code == 302
    assert response["Location"] == "/crm/accounts/?q=a"
    tech.refresh_from_db()
    assert tech.language == "ja"
    assert client.get(CALENDAR, HTTP_ACCEPT_LANGUAGE="de")["Content-Language"] == "ja"


def test_the_switcher_sets_the_cookie_for_an_anonymous_visitor(client):
    response = client.post(SWITCH, {"language": "de", "next": "/accounts/login/"})
    assert response.status_code == 302
    assert response.cookies[settings.LANGUAGE_COOKIE_NAME].value == "de"
    page = client.get(reverse("login"), HTTP_ACCEPT_LANGUAGE="ja")
    assert page["Content-Language"] == "de"


def test_the_switcher_refuses_an_unknown_language(client):
    tech = make_resource(language="de")
    client.force_login(tech.user)
    response = client.post(SWITCH, {"language": "klingon", "next": "/calendar/"})
    assert response.status_code == 400
    assert settings.LANGUAGE_COOKIE_NAME not in response.cookies
    tech.refresh_from_db()
    assert tech.language == "de"


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/", "/\\evil.example"])
def test_the_switcher_never_redirects_off_site(client, target):
    response = client.post(SWITCH, {"language": "de", "next": target})
    assert response.status_code == 302
    assert "evil.example" not in response["Location"]
