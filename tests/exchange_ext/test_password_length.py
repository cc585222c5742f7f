"""A password longer than Exchange accepts is refused with its length, never cut (issue 15,
item 10): no ``maxlength`` in the page (a browser would cut a paste silently), the server says
how long it is and what the limit is, saves nothing and tries no connection; the limit itself
is accepted. Both password fields: the General tab's sync account and a resource's own."""

from __future__ import annotations

import re

import pytest

from exchange_ext.models import ExchangeConfig, MailboxSettings
from exchange_ext.web import views
from exchange_ext.web.connection_test import ConnectionReport
from exchange_ext.web.validators import MAX_PASSWORD_LENGTH
from tests.builders import make_resource
from tests.exchange_ext.pages import (
    client_for,
    enable,
    general_data,
    make_exchange_admin,
    store_config,
)

pytestmark = pytest.mark.django_db
GENERAL = "/extensions/exchange/general/"
PROFILE = "/profile/exchange/"
TOO_LONG = "This password is 200 characters long; Exchange accepts at most 128 here."


@pytest.fixture
def no_connection(monkeypatch):
    """Any connection test fails the test: an invalid form must not reach the server."""

    def refuse(*args, **kwargs):
        raise AssertionError("a connection was tried")

    monkeypatch.setattr(views, "probe_config_connection", refuse)
    monkeypatch.setattr(views, "probe_mailbox_connection", refuse)


@pytest.fixture
def tech():
    store_config(use_for_all_users=False)
    return make_resource("longpw", email="longpw@northwind.example")


def password_inputs(html: str) -> list[str]:
    return re.findall(r"<input[^>]*type=\"password\"[^>]*>", html)


def profile_data(**overrides: str) -> dict[str, str]:
    data = {"mailbox": "longpw@northwind.example", "username": "longpw", "password": "",
            "export_appointments": "on", "past_days": "4"}  # fmt: skip
    data.update(overrides)
    return data


def test_no_password_input_has_a_maxlength(tech):
    admin = client_for(make_exchange_admin())
    pages = [admin.get(GENERAL), client_for(tech).get(PROFILE)]
    pages.append(admin.get(f"/extensions/exchange/resources/{tech.pk}/"))
    for response in pages:
        inputs = password_inputs(response.content.decode())
        assert inputs and not [i for i in inputs if "maxlength" in i], inputs


def test_a_200_character_profile_password_is_refused_with_its_length(tech, no_connection):
    enable(tech, username="before", past_days=2)
    response = client_for(tech).post(PROFILE, profile_data(password="p" * 200))
    assert response.status_code == 400
    html = response.content.decode()
    assert TOO_LONG in html
    assert 'value="longpw"' in html and 'value="4"' in html  # the other input is kept
    assert "p" * 129 not in html  # and the password is not rendered back
    settings = MailboxSettings.objects.get(resource=tech)
    assert (settings.username, settings.password, settings.past_days) == ("before", None, 2)


def test_a_200_character_sync_account_password_is_refused_with_its_length(no_connection):
    admin = client_for(make_exchange_admin())
    ExchangeConfig.load()  # the stored row, before the POST
    response = admin.post(GENERAL, general_data(password="p" * 200, profile_name="Changed"))
    assert response.status_code == 400
    html = response.content.decode()
    assert TOO_LONG in html and 'value="Changed"' in html
    after = ExchangeConfig.load()
    assert after.profile_name != "Changed" and not after.password


def test_a_password_of_exactly_the_limit_is_saved_whole(tech):
    enable(tech)
    password = "€" * MAX_PASSWORD_LENGTH  # characters, not bytes
    response = client_for(tech).post(PROFILE, profile_data(password=password))
    assert response.status_code == 302
    assert MailboxSettings.objects.get(resource=tech).password == password


def test_a_sync_account_password_of_exactly_the_limit_is_saved_whole(monkeypatch):
    ok = ConnectionReport(ok=True, message="")
    monkeypatch.setattr(views, "probe_config_connection", lambda config, **kw: ok)
    password = " x" * (MAX_PASSWORD_LENGTH // 2)  # spaces kept: a password is never stripped
    response = client_for(make_exchange_admin()).post(GENERAL, general_data(password=password))
    assert response.status_code == 302
    assert ExchangeConfig.load().password == password


def test_one_over_the_limit_is_refused(tech, no_connection):
    response = client_for(tech).post(PROFILE, profile_data(password="x" * 129))
    assert response.context["form"].errors["password"] == [
        "This password is 129 characters long; Exchange accepts at most 128 here."
    ]
