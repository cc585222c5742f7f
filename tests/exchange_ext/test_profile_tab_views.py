"""A resource's MS Exchange settings (README, "Configuring the MS Exchange extension"): the
technician's /profile/exchange/ and the admin's /extensions/exchange/resources/<id>/ — one form
and template; disabled fields keep their stored values whatever is posted; Test connection and
Sync now are their own views."""

from __future__ import annotations

import pytest

from exchange_ext.models import MailboxSettings
from exchange_ext.web import views
from exchange_ext.web.connection_test import ConnectionReport
from tests.builders import make_resource, make_user
from tests.exchange_ext.pages import (
    client_for,
    client_for_user,
    enable,
    make_exchange_admin,
    store_config,
)

pytestmark = pytest.mark.django_db
URL = "/profile/exchange/"
FIELDS = ["mailbox", "username", "password", "export_appointments", "import_appointments",
          "export_service_calls", "export_todos", "export_contacts", "past_days",
          "recurring_days"]  # fmt: skip


@pytest.fixture
def tech():
    return make_resource("tech1", email="tech1@northwind.example")


@pytest.fixture
def tech_client(tech):
    return client_for(tech)


def profile_data(**overrides):
    data = {"mailbox": "tech1@northwind.example", "username": "", "password": "",
            "export_appointments": "on", "import_appointments": "on",
            "export_service_calls": "on", "export_todos": "on", "export_contacts": "on",
            "past_days": "", "recurring_days": ""}  # fmt: skip
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def test_profile_tab_shows_every_field_the_status_and_the_empty_log(tech_client):
    html = tech_client.get(URL).content.decode()
    for name in FIELDS:
        assert f'name="{name}"' in html, name
    assert 'value="tech1@northwind.example"' in html  # mailbox defaults to the resource email
    assert "Recent sync log" in html and "No sync runs yet." in html
    assert 'aria-current="page">MS Exchange</a>' in html  # the profile tab strip
    assert "Sync not enabled" in html and "n/a" in html
    assert not MailboxSettings.objects.exists()  # a GET creates nothing


def test_saving_the_profile_tab_stores_the_settings(tech_client, tech):
    store_config(use_for_all_users=False)
    response = tech_client.post(
        URL, profile_data(username="tech1", password="demo", export_todos=None, past_days="3"),
        follow=True,
    )  # fmt: skip
    assert "MS Exchange settings saved." in response.content.decode()
    settings = MailboxSettings.objects.get(resource=tech)
    assert (settings.username, settings.password, settings.export_todos) == ("tech1", "demo", False)
    assert settings.past_days == 3 and settings.mailbox == ""  # blank follows the email
    assert "demo" not in tech_client.get(URL).content.decode().split("<main")[1]


@pytest.mark.parametrize("days", ["0", "31"])
def test_profile_days_outside_1_to_30_are_rejected(tech_client, days):
    response = tech_client.post(URL, profile_data(recurring_days=days))
    assert response.context["form"].errors["recurring_days"] == [
        "Enter a number of days between 1 and 30"
    ]


def test_129_character_profile_password_is_rejected(tech_client):
    store_config(use_for_all_users=False)
    response = tech_client.post(URL, profile_data(password="x" * 129))
    assert response.context["form"].errors["password"]


def test_types_turned_off_by_the_admin_are_disabled_and_posted_values_ignored(tech_client, tech):
    store_config(sync_appointments=False, sync_todos=False, import_mode="none")
    enable(tech, export_appointments=True, export_todos=True, import_appointments=True)
    html = tech_client.get(URL).content.decode()
    assert html.count("Turned off by your administrator.") == 3
    form = tech_client.get(URL).context["form"]
    disabled = {name for name, field in form.fields.items() if field.disabled}
    assert {"export_appointments", "export_todos", "import_appointments"} <= disabled
    tech_client.post(URL, profile_data(export_appointments=None, export_todos=None,
                                       import_appointments=None, export_contacts=None))  # fmt: skip
    settings = MailboxSettings.objects.get(resource=tech)
    assert settings.export_appointments and settings.export_todos and settings.import_appointments
    assert settings.export_contacts is False  # still on globally, so the technician's choice


def test_credentials_are_greyed_out_with_a_shared_sync_account(tech_client, tech):
    store_config(use_for_all_users=True)
    html = tech_client.get(URL).content.decode()
    assert "syncs all mailboxes with a shared service account; no password is needed." in html
    tech_client.post(URL, profile_data(username="sneaky", password="ignored"))
    settings = MailboxSettings.objects.get(resource=tech)
    assert settings.username == "" and settings.password is None


def test_user_without_a_resource_gets_a_friendly_page():
    client = client_for_user(make_user("nobody"))
    response = client.get(URL)
    assert response.status_code == 200
    assert "not linked to a PSA resource" in response.content.decode()
    assert client.post(URL + "sync/").status_code == 200


def test_sync_now_records_the_request(tech_client, tech):
    enable(tech)
    response = tech_client.post(URL + "sync/", follow=True)
    assert "Sync requested; it will start within a minute." in response.content.decode()
    assert MailboxSettings.objects.get(resource=tech).sync_requested_at is not None


def test_sync_now_is_refused_when_the_resource_is_not_enabled(tech_client, tech):
    response = tech_client.post(URL + "sync/", follow=True)
    assert "Sync is not enabled for this resource." in response.content.decode()
    assert not MailboxSettings.objects.filter(sync_requested_at__isnull=False).exists()


def test_sync_now_is_refused_when_the_integration_is_off(tech_client, tech):
    store_config(enabled=False)
    enable(tech)
    response = tech_client.post(URL + "sync/", follow=True)
    assert "The MS Exchange integration is turned off" in response.content.decode()
    assert MailboxSettings.objects.get(resource=tech).sync_requested_at is None


def test_sync_now_and_test_connection_accept_only_post(tech_client):
    assert tech_client.get(URL + "sync/").status_code == 405
    assert tech_client.get(URL + "test/").status_code == 405


def test_failed_connection_test_marks_the_fields(tech_client, tech, monkeypatch):
    store_config(use_for_all_users=False)
    report = ConnectionReport(ok=False, message="Exchange rejected the password.",
                              field_errors={"password": "Check your password."})  # fmt: skip
    monkeypatch.setattr(views, "probe_mailbox_connection", lambda settings, config: report)
    html = tech_client.post(URL + "test/").content.decode()
    assert "Connection test failed: Exchange rejected the password." in html
    assert 'id="id_password_warning"' in html and "Check your password." in html


def test_admin_page_is_the_same_form_with_a_back_link(tech):
    admin_client = client_for(make_exchange_admin())
    url = f"/extensions/exchange/resources/{tech.pk}/"
    response = admin_client.get(url)
    html = response.content.decode()
    assert set(FIELDS) <= set(response.context["form"].fields)
    assert "Back to Resources" in html and f'action="{url}test/"' in html
    admin_client.post(url, profile_data(past_days="9"))
    assert MailboxSettings.objects.get(resource=tech).past_days == 9
    enable(tech)
    admin_client.post(url + "sync/")
    assert MailboxSettings.objects.get(resource=tech).sync_requested_at is not None
