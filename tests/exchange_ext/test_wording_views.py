"""Wording that says what really happens, to whom it is said (issue 15 item 12): the admin's
resource page addresses the admin, the Resources tab links each resource's name, the setup email
says where to-dos arrive, turning an item type off says what happens to what already synced, and
the General tab follows the three setups, asking the server address only for EWS."""

from __future__ import annotations

from html import unescape

import pytest

from exchange_ext.jobs.notifications import setup_message
from exchange_ext.models import ExchangeConfig
from exchange_ext.web import views
from tests.builders import make_resource
from tests.exchange_ext.pages import (
    client_for,
    enable,
    general_data,
    make_exchange_admin,
    store_config,
    sync_data,
)

pytestmark = pytest.mark.django_db
GENERAL = "/extensions/exchange/general/"
KEEPS = "items already in Exchange stay there"
OFFICE = {"use_basic_auth": None, "username": "", "password": "", "domain": "",
          "tenant_id": "contoso.onmicrosoft.com", "client_id": "1234-abcd",
          "client_secret": "s3cret"}  # fmt: skip


@pytest.fixture
def admin():
    return make_exchange_admin()


@pytest.fixture
def admin_client(admin):
    return client_for(admin)


@pytest.fixture
def offline(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("no connection test when the integration is disabled")

    monkeypatch.setattr(views, "probe_config_connection", fail)


def text_of(response) -> str:
    return unescape(response.content.decode())


def test_the_admins_resource_page_speaks_to_the_admin_about_that_resource(admin_client):
    store_config(use_for_all_users=True, sync_todos=False, enabled=False)
    tech = make_resource("tech1", first_name="Jonas", last_name="Brandt")
    enable(tech)
    html = text_of(admin_client.get(f"/extensions/exchange/resources/{tech.pk}/"))
    assert "MS Exchange settings of Jonas Brandt" in html
    assert "This resource's mailbox syncs with the shared sync account" in html
    assert "Turned off for every resource on the Synchronization tab." in html
    assert "turned off on the General tab" in html
    assert "your administrator" not in html.lower()
    assert "your PSA email" not in html


def test_the_technician_still_reads_words_addressed_to_them():
    store_config(use_for_all_users=True, sync_todos=False)
    tech = make_resource("tech1")
    html = text_of(client_for(tech).get("/profile/exchange/"))
    assert "Your administrator syncs all mailboxes with a shared service account" in html
    assert "Turned off by your administrator." in html


def test_the_resources_tab_links_each_name_to_its_settings_before_any_sync(admin_client):
    tech = make_resource("tech1", first_name="Jonas", last_name="Brandt")
    html = text_of(admin_client.get("/extensions/exchange/resources/"))
    assert (
        f'<a href="/extensions/exchange/resources/{tech.pk}/" class="xe-name">Jonas Brandt</a>'
        in html
    )
    # the checkbox keeps an accessible name of its own
    assert (
        f'<label for="enable-{tech.pk}" class="visually-hidden">Sync Jonas Brandt</label>' in html
    )


def test_the_setup_email_says_to_dos_arrive_as_calendar_appointments():
    tech = make_resource("tech1")
    message = setup_message(enable(tech))
    html = message.alternatives[0][0]
    for text in (message.body, unescape(html)):
        flat = " ".join(text.split())
        assert "calendar and tasks" not in flat
        assert "appear as appointments in your Exchange calendar (to-dos too, not as" in flat


def test_turning_an_item_type_off_says_what_happens_to_synced_items(admin_client):
    html = text_of(admin_client.get("/extensions/exchange/synchronization/"))
    assert html.count(KEEPS) >= 4  # appointments, contacts, service calls, to-dos
    assert "to-dos assigned to each resource as calendar appointments" in html
    tech = make_resource("tech1")
    html = text_of(client_for(tech).get("/profile/exchange/"))
    assert html.count(KEEPS) == 4  # the four export checkboxes
    assert "appointments already imported stay in the PSA" in html


def test_synchronization_tab_still_saves_with_the_new_help(admin_client):
    response = admin_client.post(
        "/extensions/exchange/synchronization/", sync_data(sync_todos=None)
    )
    assert response.status_code == 302 and not ExchangeConfig.load().sync_todos


def test_the_general_tab_presents_the_three_setups(admin_client):
    html = text_of(admin_client.get(GENERAL))
    for heading in (
        "On-premises Exchange (2013, 2016, 2019)",
        "Exchange hosted by a third party",
        "Exchange Online (Microsoft 365) over Microsoft Graph",
    ):
        assert f"<h3>{heading}</h3>" in html
    assert "No server address is needed" in html
    # the server address and EWS path are marked for the EWS setups only (hidden by CSS :has())
    assert 'xe-ews-only" id="field-server_address"' in html
    assert 'xe-ews-only" id="field-virtual_directory"' in html


def test_exchange_online_over_graph_saves_without_a_server_address(admin_client, offline):
    data = general_data(enabled=None, use_graph="on", server_address="", **OFFICE)
    response = admin_client.post(GENERAL, data)
    assert response.status_code == 302, response.context["form"].errors
    assert ExchangeConfig.load().backend_name == "graph"


def test_a_server_address_posted_with_graph_is_ignored_even_a_hostile_one(admin_client, offline):
    store_config(server_address="mail.northwind.example")
    data = general_data(enabled=None, use_graph="on", server_address="10.0.0.1", **OFFICE)
    response = admin_client.post(GENERAL, data)
    assert response.status_code == 302, response.context["form"].errors
    assert ExchangeConfig.load().server_address == "mail.northwind.example"


@pytest.mark.parametrize("setup", ["basic", "office_ews"])
def test_the_ews_setups_still_require_the_server_address(admin_client, offline, setup):
    extra = {} if setup == "basic" else {**OFFICE, "use_graph": None}
    response = admin_client.post(GENERAL, general_data(enabled=None, server_address="", **extra))
    assert response.status_code == 400
    errors = [str(e) for e in response.context["form"].errors.get("server_address", [])]
    assert errors == ["Enter the Exchange server's host name."]
    assert not ExchangeConfig.load().server_address
