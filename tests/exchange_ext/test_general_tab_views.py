"""The General tab (README, "Configuring the MS Exchange extension"; docs/sync-rules.md,
"Configuration changes"): every field rule, write-only secrets, the connection test on save,
the refusal while a sync runs and the resync reset. The connection test runs against the local
sandbox end to end; failure rendering patches the one seam ``views.probe_config_connection``."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from exchange_ext.models import ExchangeConfig, MailboxSettings
from exchange_ext.web import views
from exchange_ext.web.connection_test import ConnectionReport
from exchange_ext.web.validators import IP_LITERAL_MESSAGE
from tests import clock
from tests.builders import make_resource
from tests.exchange_ext.pages import (
    SANDBOX_PASSWORD,
    client_for,
    enable,
    general_data,
    make_exchange_admin,
    running_sandbox,
    store_config,
)

pytestmark = pytest.mark.django_db
URL = "/extensions/exchange/general/"
SAVED = "MS Exchange configuration successfully updated."


@pytest.fixture
def admin_client():
    return client_for(make_exchange_admin())


@pytest.fixture
def offline(monkeypatch):
    """A connection test that must not run (the integration is disabled in these POSTs)."""

    def fail(*args, **kwargs):
        raise AssertionError("no connection test when the integration is disabled")

    monkeypatch.setattr(views, "probe_config_connection", fail)


def errors_of(response, field: str) -> list[str]:
    return [str(e) for e in response.context["form"].errors.get(field, [])]


def test_general_tab_shows_every_spec_field_under_its_form_name(admin_client):
    html = admin_client.get(URL).content.decode()
    for name in general_data() | {"use_graph": "", "hosted_by_third_party": ""}:
        assert f'name="{name}"' in html, name
    assert "Microsoft Extensions" in html and "Extensions &amp; Integrations" in html


@pytest.mark.parametrize("address", ["192.0.2.10", "[2001:db8::1]", "2001:db8::1", "10.0.0.1:443"])
def test_ip_literal_server_address_is_rejected_with_a_clear_message(admin_client, address):
    response = admin_client.post(URL, general_data(server_address=address))
    assert response.status_code == 400
    assert errors_of(response, "server_address") == [IP_LITERAL_MESSAGE]
    assert ExchangeConfig.load().server_address == ""


def test_server_address_with_a_scheme_or_path_is_rejected(admin_client):
    response = admin_client.post(URL, general_data(server_address="https://mail.example.com/ews"))
    assert errors_of(response, "server_address")


@pytest.mark.parametrize("minutes", ["9", "1441", "0"])
def test_sync_interval_outside_10_to_1440_minutes_is_rejected(admin_client, minutes):
    response = admin_client.post(URL, general_data(sync_interval_minutes=minutes))
    assert errors_of(response, "sync_interval_minutes") == [
        "Sync interval must be between 10 and 1440 minutes"
    ]


@pytest.mark.parametrize("minutes", [10, 1440])
def test_sync_interval_limits_are_accepted(admin_client, offline, minutes):
    response = admin_client.post(
        URL, general_data(enabled=None, sync_interval_minutes=str(minutes))
    )
    assert response.status_code == 302
    assert ExchangeConfig.load().sync_interval_minutes == minutes


def test_129_character_password_is_rejected_and_128_accepted(admin_client, offline):
    response = admin_client.post(URL, general_data(enabled=None, password="p" * 129))
    assert errors_of(response, "password")
    assert "p" * 129 not in response.content.decode()
    response = admin_client.post(URL, general_data(enabled=None, password="p" * 128))
    assert response.status_code == 302
    assert ExchangeConfig.load().password == "p" * 128


def test_bad_notification_address_is_rejected(admin_client):
    response = admin_client.post(
        URL, general_data(notification_emails="ops@example.com; not-an-address")
    )
    assert errors_of(response, "notification_emails")


def test_notification_address_with_header_injection_is_rejected(admin_client):
    response = admin_client.post(
        URL, general_data(notification_emails="ops@example.com\r\nBcc: evil@example.com")
    )
    assert errors_of(response, "notification_emails")


def test_notification_addresses_are_normalized(admin_client, offline):
    response = admin_client.post(
        URL, general_data(enabled=None, notification_emails=" ops@example.com ;lead@example.com;")
    )
    assert response.status_code == 302
    assert ExchangeConfig.load().notification_emails == "ops@example.com; lead@example.com"


def test_domain_is_required_unless_the_username_carries_it(admin_client, offline):
    response = admin_client.post(URL, general_data(username="svc-sync", domain=""))
    assert errors_of(response, "domain")
    for username in ("NORTHWIND\\svc-sync", "svc-sync@northwind.example"):
        response = admin_client.post(URL, general_data(enabled=None, username=username, domain=""))
        assert response.status_code == 302, username


def test_basic_auth_requires_username_and_password(admin_client):
    response = admin_client.post(URL, general_data(username="", password=""))
    assert errors_of(response, "username") and errors_of(response, "password")


def test_use_graph_is_forced_off_with_basic_auth(admin_client, offline):
    response = admin_client.post(URL, general_data(enabled=None, use_graph="on"))
    assert response.status_code == 302
    assert ExchangeConfig.load().use_graph is False


def test_office_365_needs_tenant_client_id_and_a_secret_or_certificate(admin_client, offline):
    office = {"use_basic_auth": None, "username": "", "password": "", "domain": ""}
    response = admin_client.post(URL, general_data(**office))
    assert errors_of(response, "tenant_id") and errors_of(response, "client_id")
    assert errors_of(response, "client_secret")
    ids = {"tenant_id": "contoso.onmicrosoft.com", "client_id": "1234-abcd"}
    response = admin_client.post(
        URL, general_data(enabled=None, use_graph="on", client_secret="s3cret", **office, **ids)
    )
    assert response.status_code == 302
    config = ExchangeConfig.load()
    assert config.use_graph and config.client_secret == "s3cret" and config.backend_name == "graph"


def test_stored_password_is_never_rendered_back_and_blank_keeps_it(admin_client, offline):
    admin_client.post(URL, general_data(enabled=None, password="Very-Secret-1"))
    html = admin_client.get(URL).content.decode()
    assert "Very-Secret-1" not in html
    assert "A value is stored. Leave blank to keep it." in html
    response = admin_client.post(URL, general_data(enabled=None, password="", profile_name="B"))
    assert response.status_code == 302
    config = ExchangeConfig.load()
    assert config.password == "Very-Secret-1" and config.profile_name == "B"


def test_typed_secrets_are_not_rendered_back_after_a_failed_post(admin_client):
    pem = "-----BEGIN PRIVATE KEY-----\nMIIEvSECRETKEY\n-----END PRIVATE KEY-----"
    data = general_data(password="Typed-Secret-2", client_certificate=pem, profile_name="")
    response = admin_client.post(URL, data)
    assert response.status_code == 400
    html = response.content.decode()
    assert "Typed-Secret-2" not in html and "SECRETKEY" not in html
    assert 'value="svc-sync"' in html  # everything else the admin typed is kept


def test_failed_connection_test_saves_nothing_and_marks_the_fields(admin_client, monkeypatch):
    report = ConnectionReport(
        ok=False,
        message="The server rejected the sync account's credentials (401).",
        field_errors={"username": "Check the username.", "password": "Check the password."},
    )
    monkeypatch.setattr(views, "probe_config_connection", lambda config, **kw: report)
    response = admin_client.post(URL, general_data(profile_name="Changed"))
    html = response.content.decode()
    assert response.status_code == 400
    assert "The server rejected the sync account&#x27;s credentials (401)." in html
    assert re.search(r'id="id_username_warning">.*Check the username\.', html)
    assert re.search(r'id="id_password_warning">.*Check the password\.', html)
    assert 'value="Changed"' in html and SANDBOX_PASSWORD not in html
    assert ExchangeConfig.load().profile_name == ""


def test_server_change_is_refused_while_a_sync_runs_but_the_interval_saves(admin_client, offline):
    store_config(enabled=False, profile_name="N", server_address="old.example.com",
                 username="svc", domain="NW", password="pw")  # fmt: skip
    enable(make_resource(), lease_expires_at=clock.now() + dt.timedelta(minutes=5))
    base = {"enabled": None, "server_address": "old.example.com", "username": "svc",
            "domain": "NW", "password": "", "profile_name": "N"}  # fmt: skip
    response = admin_client.post(URL, general_data(**{**base, "server_address": "new.example.com"}))
    assert "because a sync is running, please try again later." in response.content.decode()
    assert ExchangeConfig.load().server_address == "old.example.com"
    response = admin_client.post(URL, general_data(**{**base, "sync_interval_minutes": "60"}))
    assert response.status_code == 302
    assert ExchangeConfig.load().sync_interval_minutes == 60


def test_server_address_change_records_a_resync_and_says_so(admin_client, offline):
    store_config(server_address="old.example.com", password="pw")
    settings = enable(make_resource())
    response = admin_client.post(
        URL, general_data(enabled=None, server_address="new.example.com"), follow=True
    )
    html = response.content.decode()
    assert SAVED in html and "re-read on the next sync" in html
    settings.refresh_from_db()
    assert settings.resync_requested_at is not None


def test_save_against_the_sandbox_tests_the_connection_and_confirms(
    admin_client, tmp_path, monkeypatch
):
    enable(make_resource(email="tech1@northwind.example"))
    with running_sandbox(tmp_path, monkeypatch) as sandbox:
        data = general_data(server_address=f"localhost:{sandbox.port}")
        response = admin_client.post(URL, data, follow=True)
    assert SAVED in response.content.decode()
    config = ExchangeConfig.load()
    assert config.enabled and config.server_address == f"localhost:{sandbox.port}"
    assert config.password == SANDBOX_PASSWORD


def test_wrong_password_against_the_sandbox_marks_the_field_and_saves_nothing(
    admin_client, tmp_path, monkeypatch
):
    enable(make_resource(email="tech1@northwind.example"))
    with running_sandbox(tmp_path, monkeypatch) as sandbox:
        data = general_data(server_address=f"localhost:{sandbox.port}", password="wrong")
        response = admin_client.post(URL, data)
    html = response.content.decode()
    assert response.status_code == 400 and "The connection test failed" in html
    assert response.context["form"].warnings  # at least one field carries the warning icon
    assert 'class="warn-icon"' in html
    assert ExchangeConfig.load().server_address == ""
    assert not MailboxSettings.objects.filter(resync_requested_at__isnull=False).exists()
