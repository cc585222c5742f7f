"""The Synchronization tab (README, "Configuring the MS Exchange extension"): its fields, day
ranges, free time with "do not import", the public contacts folder with Graph, and saving while
a sync runs."""

from __future__ import annotations

import datetime as dt

import pytest

from exchange_ext.models import ExchangeConfig
from tests import clock
from tests.builders import make_resource
from tests.exchange_ext.pages import (
    client_for,
    enable,
    make_exchange_admin,
    store_config,
    sync_data,
)

pytestmark = pytest.mark.django_db
URL = "/extensions/exchange/synchronization/"
DAYS_ERROR = "Enter a number of days between 1 and 30"


@pytest.fixture
def admin_client():
    return client_for(make_exchange_admin())


def test_synchronization_tab_shows_every_field_and_the_import_mode_as_radios(admin_client):
    html = admin_client.get(URL).content.decode()
    for name in sync_data() | {"public_contacts_folder": ""}:
        assert f'name="{name}"' in html, name
    assert html.count('type="radio" name="import_mode"') == 3
    assert "Every Exchange user in your organisation can read this folder." in html


def test_saving_stores_every_field_and_confirms(admin_client):
    data = sync_data(sync_contacts=None, import_mode="times_only", past_days="3",
                     recurring_days="30", public_contacts_folder="on")  # fmt: skip
    response = admin_client.post(URL, data, follow=True)
    assert "MS Exchange configuration successfully updated." in response.content.decode()
    config = ExchangeConfig.load()
    assert (config.sync_contacts, config.import_mode, config.past_days) == (False, "times_only", 3)
    assert config.recurring_days == 30 and config.public_contacts_folder


@pytest.mark.parametrize("field", ["past_days", "recurring_days"])
@pytest.mark.parametrize("days", ["0", "31", "-1"])
def test_days_outside_1_to_30_are_rejected_with_a_clear_message(admin_client, field, days):
    response = admin_client.post(URL, sync_data(**{field: days}))
    assert response.status_code == 400
    assert response.context["form"].errors[field] == [DAYS_ERROR]


def test_free_time_is_ignored_when_appointments_are_not_imported(admin_client):
    store_config(import_free_time=True)
    admin_client.post(URL, sync_data(import_mode="none", import_free_time=None))
    config = ExchangeConfig.load()
    assert config.import_mode == "none" and config.import_free_time is True
    store_config(import_free_time=False)
    admin_client.post(URL, sync_data(import_mode="none", import_free_time="on"))
    assert ExchangeConfig.load().import_free_time is False


def test_free_time_saves_with_an_import_mode(admin_client):
    admin_client.post(URL, sync_data(import_mode="times_only", import_free_time=None))
    assert ExchangeConfig.load().import_free_time is False


def test_public_folder_is_disabled_with_graph_and_a_posted_value_is_ignored(admin_client):
    store_config(use_basic_auth=False, use_graph=True, public_contacts_folder=False)
    html = admin_client.get(URL).content.decode()
    assert 'name="public_contacts_folder"' in html and "disabled" in html
    assert "this configuration uses MS Graph" in html
    admin_client.post(URL, sync_data(public_contacts_folder="on"))
    assert ExchangeConfig.load().public_contacts_folder is False


def test_synchronization_tab_saves_while_a_sync_runs(admin_client):
    enable(make_resource(), lease_expires_at=clock.now() + dt.timedelta(minutes=5))
    response = admin_client.post(URL, sync_data(past_days="20"))
    assert response.status_code == 302
    assert ExchangeConfig.load().past_days == 20


def test_synchronization_save_leaves_the_general_settings_alone(admin_client):
    store_config(server_address="mail.example.com", password="pw", profile_name="P")
    admin_client.post(URL, sync_data())
    config = ExchangeConfig.load()
    assert (config.server_address, config.profile_name) == ("mail.example.com", "P")
    assert config.password == "pw"
