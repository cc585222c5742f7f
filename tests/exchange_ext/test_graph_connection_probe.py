"""The Graph connection test (General tab and profile tab) against the sandbox's Graph side.

The sandbox's Entra endpoint and Graph API are reached over HTTPS through
``GRAPH_AUTHORITY_URL``/``GRAPH_BASE_URL``, trusted through ``EXCHANGE_CA_BUNDLE`` as an
operator would. Apps come from the sandbox's default config, plus one with a certificate.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from exchange_ext.backends.graph.auth import certificate_thumbprint
from exchange_ext.models import ExchangeConfig, MailboxSettings
from exchange_ext.sandbox.server import SandboxHandle, load_config, start_sandbox
from exchange_ext.web.connection_test import probe_config_connection, probe_mailbox_connection
from tests.builders import make_resource
from tests.certificates import self_signed

TENANT = "7d3f1b2a-5c4e-4f6a-9b8c-1a2b3c4d5e6f"
APP, SECRET = "0f6a3e2d-1b4c-4d5e-8f90-a1b2c3d4e5f6", "sandbox-graph-secret"
SCOPED_APP, SCOPED_SECRET = "1a7b4f3e-2c5d-4e6f-9a01-b2c3d4e5f607", "sandbox-graph-scoped"
NOPERM_APP, NOPERM_SECRET = "2b8c5a4f-3d6e-4f70-8b12-c3d4e5f60718", "sandbox-graph-noperm"
CERT_APP = "3c9d6b50-4e7f-4a81-9c23-d4e5f6071829"
TECH1 = "tech1@northwind.example"
OUTSIDE_SCOPE = "room1@northwind.example"


def make_certificate(name: str = "PSA sync") -> str:
    """A self-signed certificate and its key in one PEM, as an admin uploads it."""
    cert, key = self_signed(name, serialization.PrivateFormat.TraditionalOpenSSL)
    return cert + key


@functools.cache
def registered_certificate() -> str:
    """The certificate registered for ``CERT_APP`` (made once per process, on first use)."""
    return make_certificate()


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxHandle]:
    config = load_config()
    public = registered_certificate().split("-----BEGIN RSA PRIVATE KEY-----")[0]
    config["graph"]["apps"].append({
        "client_id": CERT_APP, "display_name": "PSA sync (certificate)", "certificates": [public],
        "permissions": ["Calendars.ReadWrite", "Contacts.ReadWrite"], "mailboxes": "all",
    })  # fmt: skip
    cert_dir: Path = tmp_path_factory.mktemp("graph-probe-certs")
    handle = start_sandbox(config=config, tls="ca", cert_dir=cert_dir)
    yield handle
    handle.stop()


@pytest.fixture(autouse=True)
def _graph_points_at_the_sandbox(monkeypatch: pytest.MonkeyPatch, sandbox: SandboxHandle) -> None:
    monkeypatch.setenv("EXCHANGE_CA_BUNDLE", str(sandbox.ca_file))
    monkeypatch.setenv("GRAPH_AUTHORITY_URL", sandbox.base_url)
    monkeypatch.setenv("GRAPH_BASE_URL", sandbox.base_url)
    sandbox.state.requests.clear()


def graph_config(**fields: object) -> ExchangeConfig:
    values: dict[str, object] = {
        "profile_name": "Northwind", "server_address": "outlook.office365.com",
        "exchange_version": "online", "use_basic_auth": False, "use_graph": True,
        "tenant_id": TENANT, "client_id": APP, "client_secret": SECRET,
    }  # fmt: skip
    return ExchangeConfig(**{**values, **fields})


def probe(config: ExchangeConfig, mailbox: str | None = TECH1):
    started = time.monotonic()
    report = probe_config_connection(config, mailbox=mailbox)
    assert time.monotonic() - started < 5.0
    return report


def test_a_good_app_registration_signs_in_and_reads_the_mailbox():
    report = probe(graph_config())
    assert report.ok, report
    assert TECH1 in report.message and not report.field_errors


def test_a_certificate_registered_for_the_app_signs_in():
    report = probe(
        graph_config(
            client_id=CERT_APP, client_secret="", client_certificate=registered_certificate()
        )
    )
    assert report.ok, report


def test_a_wrong_tenant_is_reported_on_the_tenant_id():
    report = probe(graph_config(tenant_id="00000000-0000-4000-8000-000000000000"))
    assert not report.ok and set(report.field_errors) == {"tenant_id"}


def test_an_unknown_app_is_reported_on_the_client_id():
    report = probe(graph_config(client_id="99999999-9999-4999-8999-999999999999"))
    assert not report.ok and set(report.field_errors) == {"client_id"}


def test_a_wrong_secret_is_reported_on_the_client_secret_without_echoing_it():
    report = probe(graph_config(client_secret="not-the-secret"))
    assert not report.ok and set(report.field_errors) == {"client_secret"}
    assert "not-the-secret" not in f"{report.message} {report.field_errors}"


def test_a_certificate_the_app_does_not_know_is_reported_on_the_certificate():
    unknown = make_certificate()
    report = probe(graph_config(client_id=CERT_APP, client_secret="", client_certificate=unknown))
    assert not report.ok and set(report.field_errors) == {"client_certificate"}
    assert certificate_thumbprint(unknown) in report.field_errors["client_certificate"]


def test_a_certificate_field_without_a_private_key_is_reported_before_any_request(sandbox):
    public_only = registered_certificate().split("-----BEGIN RSA PRIVATE KEY-----")[0]
    report = probe(
        graph_config(client_id=CERT_APP, client_secret="", client_certificate=public_only)
    )
    assert not report.ok and set(report.field_errors) == {"client_certificate"}
    assert "private key" in report.field_errors["client_certificate"]


def test_a_missing_application_permission_names_the_permissions_to_grant():
    report = probe(graph_config(client_id=NOPERM_APP, client_secret=NOPERM_SECRET))
    assert not report.ok and set(report.field_errors) == {"client_id"}
    assert "Calendars.ReadWrite and Contacts.ReadWrite" in report.field_errors["client_id"]


def test_a_mailbox_outside_the_apps_scope_is_named_with_the_access_policy():
    report = probe(
        graph_config(client_id=SCOPED_APP, client_secret=SCOPED_SECRET), mailbox=OUTSIDE_SCOPE
    )
    assert not report.ok
    assert OUTSIDE_SCOPE in report.message and "access policy" in report.message


def test_missing_fields_are_reported_without_a_request(sandbox):
    report = probe(graph_config(tenant_id="", client_id=" ", client_secret=""))
    assert set(report.field_errors) == {"tenant_id", "client_id", "client_secret"}
    assert not _log(sandbox)


def test_without_an_enabled_mailbox_only_the_sign_in_is_tested(db):
    report = probe_config_connection(graph_config())
    assert report.ok and "when a resource is enabled" in report.message


def test_the_sign_in_asks_for_a_token_and_the_mailbox_check_is_one_batch(sandbox):
    assert probe(graph_config()).ok
    operations = [entry.get("operation") for entry in _log(sandbox)]
    assert operations.count("graph:batch") == 1


@pytest.mark.django_db
def test_the_profile_probe_puts_a_mailbox_outside_the_scope_on_the_mailbox_field():
    resource = make_resource(email=OUTSIDE_SCOPE)
    settings = MailboxSettings.objects.create(resource=resource, sync_enabled=True)
    config = graph_config(client_id=SCOPED_APP, client_secret=SCOPED_SECRET)
    report = probe_mailbox_connection(settings, config)
    assert not report.ok and OUTSIDE_SCOPE in report.field_errors["mailbox"]


@pytest.mark.django_db
def test_the_profile_probe_reports_the_admins_app_problems_in_the_message_only():
    settings = MailboxSettings.objects.create(resource=make_resource(email=TECH1))
    report = probe_mailbox_connection(settings, graph_config(client_secret="wrong"))
    assert not report.ok and not report.field_errors and "admin" in report.message


def _log(sandbox: SandboxHandle) -> list[dict]:
    return sandbox.state.requests.query()["requests"]
