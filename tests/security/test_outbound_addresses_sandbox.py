"""The resolved-address check over real connections to the in-process sandbox on 127.0.0.1:
through exchangelib (EWS, its OAuth token request too), the Graph session and msal's token
request, the connection test and a sync run (SPEC §8; README, "Where the extension connects").

The resolver seam (:func:`exchange_ext.backends.addresses.resolve`) answers what each test
says; every connection goes to loopback. The suite lists loopback in
``EXCHANGE_ALLOWED_NETWORKS`` (tests/conftest.py); tests narrow it where they need to.
"""

from __future__ import annotations

import datetime as dt
import io
import ipaddress
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from exchangelib import BASIC, IMPERSONATION, OAUTH2
from exchangelib.protocol import BaseProtocol, close_connections

from exchange_ext.backends.base import AddressRefused, FolderKind, Unavailable
from exchange_ext.backends.ews.backend import (
    EwsBackend,
    EwsSettings,
    SessionCredentials,
    SessionOAuth2Credentials,
)
from exchange_ext.backends.ews.endpoint import pinned_version
from exchange_ext.backends.graph import auth as graph_auth
from exchange_ext.backends.graph.auth import GraphCredentials
from exchange_ext.backends.graph.backend import GraphBackend, GraphSettings
from exchange_ext.models import ExchangeConfig, MailboxSettings
from exchange_ext.sandbox.server import SandboxHandle, load_config, start_sandbox
from exchange_ext.sync.windows import SyncWindow
from exchange_ext.web.connection_test import probe_config_connection
from tests import clock
from tests.exchange_ext.pages import client_for, general_data, make_exchange_admin
from tests.integration.ops_support import configure, make_enabled_resources

TECH1 = "tech1@northwind.example"
# The sandbox's Entra tenant and full-access app (exchange_ext/sandbox/default_config.json).
TENANT = "7d3f1b2a-5c4e-4f6a-9b8c-1a2b3c4d5e6f"
APP, SECRET = "0f6a3e2d-1b4c-4d5e-8f90-a1b2c3d4e5f6", "sandbox-graph-secret"
METADATA = "169.254.169.254"
# A sign-in host that only this test's resolver knows (the token endpoint's address is checked
# before anything is sent, so no certificate has to name it).
LOGIN_HOST = "login.example.com"


def refusal(host: str, address: str, reason: str) -> str:
    return (
        f"The server address {host} resolves to {address}, {reason} address; connections there "
        "are refused unless EXCHANGE_ALLOWED_NETWORKS lists it."
    )


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxHandle]:
    cert_dir = tmp_path_factory.mktemp("outbound-addresses-certs")
    handle = start_sandbox(config=load_config(), tls="ca", cert_dir=cert_dir)
    yield handle
    handle.stop()


@pytest.fixture(autouse=True)
def _trust_the_sandbox(monkeypatch: pytest.MonkeyPatch, sandbox: SandboxHandle) -> Iterator[None]:
    monkeypatch.setenv("EXCHANGE_CA_BUNDLE", str(sandbox.ca_file))
    monkeypatch.setenv("EXCHANGE_ALLOWED_PORTS", f"443,{sandbox.port}")
    monkeypatch.setenv("GRAPH_AUTHORITY_URL", sandbox.base_url)
    monkeypatch.setenv("GRAPH_BASE_URL", sandbox.base_url)
    # The product installs its adapter class-globally; put back whatever another suite had.
    monkeypatch.setattr(BaseProtocol, "HTTP_ADAPTER_CLS", BaseProtocol.HTTP_ADAPTER_CLS)
    sandbox.state.reset()
    graph_auth.forget_token_sources()
    yield
    close_connections()
    graph_auth.forget_token_sources()


@pytest.fixture
def only_127_0_0_1(settings) -> None:
    settings.EXCHANGE_ALLOWED_NETWORKS = (ipaddress.ip_network("127.0.0.1/32"),)


def requests_seen(sandbox: SandboxHandle) -> int:
    return len(sandbox.state.requests.query()["requests"])


def window() -> SyncWindow:
    now = clock.now()
    return SyncWindow(now - dt.timedelta(days=7), now + dt.timedelta(days=14))


def ews(sandbox: SandboxHandle, host: str = "localhost", **settings: Any) -> EwsBackend:
    values: dict[str, Any] = {
        "endpoint": f"https://{host}:{sandbox.port}/EWS/Exchange.asmx",
        "make_credentials": lambda: SessionCredentials("svc-sync", "sandbox-sync"),
        "auth_type": BASIC,
        "version": pinned_version("2016"),
        "retry_budget_seconds": 2.0,
        "timeout_seconds": 10.0,
    }
    return EwsBackend(EwsSettings(**(values | settings)))


def graph(sandbox: SandboxHandle, authority: str = "") -> GraphBackend:
    credentials = GraphCredentials(
        tenant_id=TENANT, client_id=APP, client_secret=SECRET,
        authority_url=authority or sandbox.base_url, graph_base_url=sandbox.base_url,
    )  # fmt: skip
    settings = GraphSettings(
        credentials, base_url=sandbox.base_url, retry_budget_seconds=2.0, timeout=(5.0, 10.0)
    )
    return GraphBackend(settings)


# --- EWS, through exchangelib -----------------------------------------------------------------


def test_ews_connects_to_the_checked_loopback_address_when_loopback_is_allowed(sandbox, dns):
    dns["localhost"] = ["127.0.0.1"]

    with ews(sandbox).open_session(TECH1) as session:
        page = session.read_changes(FolderKind.CALENDAR, None, window())

    assert page.new_state
    assert requests_seen(sandbox) >= 1


def test_ews_refuses_a_server_name_resolving_to_the_cloud_metadata_service(sandbox, dns, caplog):
    dns["localhost"] = [METADATA]

    with ews(sandbox).open_session(TECH1) as session, pytest.raises(AddressRefused) as refused:
        session.read_changes(FolderKind.CALENDAR, None, window())

    assert refused.value.message == refusal("localhost", METADATA, "a link-local")
    assert refused.value.permanent
    assert requests_seen(sandbox) == 0
    # exchangelib would log it at ERROR with the whole SOAP request; the backend reports it.
    assert not [r for r in caplog.records if r.name.startswith("exchangelib")]


def test_ews_refuses_loopback_when_no_network_is_allowed(sandbox, dns, settings):
    settings.EXCHANGE_ALLOWED_NETWORKS = ()
    dns["localhost"] = ["127.0.0.1"]

    with ews(sandbox).open_session(TECH1) as session, pytest.raises(AddressRefused) as refused:
        session.read_changes(FolderKind.CALENDAR, None, window())

    assert refused.value.message == refusal("localhost", "127.0.0.1", "a loopback")
    assert requests_seen(sandbox) == 0


def test_ews_connects_to_the_address_it_checked_not_to_a_second_lookup(sandbox, dns):
    # The system resolver says 127.0.0.1, where the sandbox listens; ours says 127.0.0.2, where
    # nothing does. Reaching the sandbox would mean the name was resolved a second time.
    dns["localhost"] = ["127.0.0.2"]

    with ews(sandbox).open_session(TECH1) as session, pytest.raises(Unavailable):
        session.read_changes(FolderKind.CALENDAR, None, window())

    assert requests_seen(sandbox) == 0


def test_a_connection_to_the_checked_address_still_verifies_the_certificate_by_name(sandbox, dns):
    # exchange.example.com is pinned to the sandbox's address, whose certificate names localhost:
    # TLS must refuse it, so the name (not the address) is what the certificate is checked for.
    dns["exchange.example.com"] = ["127.0.0.1"]

    backend = ews(sandbox, host="exchange.example.com")
    with backend.open_session(TECH1) as session, pytest.raises(Unavailable) as failed:
        session.read_changes(FolderKind.CALENDAR, None, window())

    assert "certificate" in failed.value.message.lower()
    assert requests_seen(sandbox) == 0


def test_ews_checks_again_on_the_next_connection_so_dns_rebinding_is_refused(
    sandbox, dns, only_127_0_0_1
):
    dns["localhost"] = ["127.0.0.1"]
    with ews(sandbox).open_session(TECH1) as session:
        session.read_changes(FolderKind.CALENDAR, None, window())
        seen = requests_seen(sandbox)
        dns["localhost"] = ["127.0.0.2"]  # the name now points elsewhere on the machine
        # The next request needs a new connection, as after the server closed an idle one.
        session.account.protocol.close()
        with pytest.raises(AddressRefused) as refused:
            session.read_changes(FolderKind.CALENDAR, None, window())

    assert refused.value.message == refusal("localhost", "127.0.0.2", "a loopback")
    assert requests_seen(sandbox) == seen


def test_ews_oauth_token_request_is_checked_too(sandbox, dns):
    dns["localhost"] = ["127.0.0.1"]
    dns[LOGIN_HOST] = [METADATA]
    backend = ews(
        sandbox,
        make_credentials=lambda: SessionOAuth2Credentials(
            client_id=APP,
            client_secret=SECRET,
            tenant_id=TENANT,
            authority=f"https://{LOGIN_HOST}:{sandbox.port}",
        ),
        auth_type=OAUTH2,
        access_type=IMPERSONATION,
    )

    with backend.open_session(TECH1) as session, pytest.raises(AddressRefused) as refused:
        session.read_changes(FolderKind.CALENDAR, None, window())

    assert refused.value.message == refusal(LOGIN_HOST, METADATA, "a link-local")
    assert requests_seen(sandbox) == 0


# --- Microsoft Graph, through requests and msal -------------------------------------------------


def test_graph_checks_again_on_the_next_connection_so_dns_rebinding_is_refused(
    sandbox, dns, only_127_0_0_1
):
    dns["localhost"] = ["127.0.0.1"]
    with graph(sandbox).open_session(TECH1) as session:
        session.read_changes(FolderKind.CALENDAR, None, window())
        seen = requests_seen(sandbox)
        dns["localhost"] = ["127.0.0.2"]
        session.http.session.close()  # the next request opens a new connection
        with pytest.raises(AddressRefused) as refused:
            session.read_changes(FolderKind.CALENDAR, None, window())

    assert refused.value.message == refusal("localhost", "127.0.0.2", "a loopback")
    assert requests_seen(sandbox) == seen


def test_graph_token_request_to_a_sign_in_host_resolving_to_metadata_is_refused(sandbox, dns):
    dns["localhost"] = ["127.0.0.1"]
    dns[LOGIN_HOST] = [METADATA]
    backend = graph(sandbox, authority=f"https://{LOGIN_HOST}:{sandbox.port}")

    with backend.open_session(TECH1) as session, pytest.raises(AddressRefused) as refused:
        session.read_changes(FolderKind.CALENDAR, None, window())

    assert refused.value.message == refusal(LOGIN_HOST, METADATA, "a link-local")
    assert requests_seen(sandbox) == 0


# --- what an administrator sees -----------------------------------------------------------------


def general_tab(sandbox: SandboxHandle, **fields: Any) -> ExchangeConfig:
    """An unsaved configuration, as the General tab's form builds it before saving."""
    values = {
        "profile_name": "Northwind", "server_address": f"localhost:{sandbox.port}",
        "exchange_version": "2016", "username": "svc-sync", "password": "sandbox-sync",
        "domain": "NORTHWIND", "use_basic_auth": True, "use_graph": False,
        "use_for_all_users": True,
    }  # fmt: skip
    return ExchangeConfig(**(values | fields))


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("answer", "allowed", "reason"),
    [([METADATA], "127.0.0.0/8", "a link-local"), (["127.0.0.1"], "", "a loopback")],
)
def test_the_connection_test_names_the_refused_address_on_the_server_field(
    sandbox, dns, settings, answer, allowed, reason
):
    settings.EXCHANGE_ALLOWED_NETWORKS = tuple(
        ipaddress.ip_network(a) for a in allowed.split(",") if a
    )
    dns["localhost"] = answer

    report = probe_config_connection(general_tab(sandbox), mailbox=TECH1)

    message = refusal("localhost", answer[0], reason)
    assert not report.ok
    assert report.message == message
    assert report.field_errors == {"server_address": message}
    assert requests_seen(sandbox) == 0


@pytest.mark.django_db
def test_saving_the_general_tab_shows_the_refusal_and_keeps_the_old_settings(sandbox, dns):
    dns["localhost"] = [METADATA]
    admin = client_for(make_exchange_admin())

    response = admin.post(
        "/extensions/exchange/general/", general_data(server_address=f"localhost:{sandbox.port}")
    )

    assert response.status_code == 400
    assert refusal("localhost", METADATA, "a link-local") in response.content.decode()
    assert ExchangeConfig.load().server_address == ""
    assert requests_seen(sandbox) == 0


@pytest.mark.django_db
def test_the_graph_connection_test_names_the_refused_sign_in_address(sandbox, dns, monkeypatch):
    monkeypatch.setenv("GRAPH_AUTHORITY_URL", f"https://{LOGIN_HOST}:{sandbox.port}")
    dns[LOGIN_HOST] = [METADATA]
    config = general_tab(
        sandbox, use_basic_auth=False, use_graph=True, tenant_id=TENANT, client_id=APP,
        client_secret=SECRET,
    )  # fmt: skip

    report = probe_config_connection(config, mailbox=TECH1)

    assert not report.ok
    assert report.message == refusal(LOGIN_HOST, METADATA, "a link-local")


@pytest.mark.django_db
def test_the_ews_oauth_connection_test_blames_the_sign_in_host_not_the_server_field(
    sandbox, dns, monkeypatch
):
    monkeypatch.setenv("GRAPH_AUTHORITY_URL", f"https://{LOGIN_HOST}:{sandbox.port}")
    dns["localhost"] = ["127.0.0.1"]
    dns[LOGIN_HOST] = [METADATA]
    config = general_tab(
        sandbox, use_basic_auth=False, tenant_id=TENANT, client_id=APP, client_secret=SECRET
    )

    report = probe_config_connection(config, mailbox=TECH1)

    assert not report.ok
    assert report.message == refusal(LOGIN_HOST, METADATA, "a link-local")
    assert report.field_errors == {}  # GRAPH_AUTHORITY_URL is no field of the General tab
    assert requests_seen(sandbox) == 0


@pytest.mark.django_db
def test_a_sync_run_stops_the_mailbox_with_the_refusal_in_plain_words(sandbox, dns):
    dns["localhost"] = [METADATA]
    configure(sandbox.port)
    [mailbox_id] = make_enabled_resources([TECH1], appointments=1)

    with pytest.raises(CommandError, match="1 of 1 sync runs failed"):
        call_command("exchange_sync", "--all", stdout=io.StringIO())

    mailbox = MailboxSettings.objects.get(pk=mailbox_id)
    assert mailbox.last_error_kind == "AddressRefused"
    assert refusal("localhost", METADATA, "a link-local") in mailbox.last_error
    assert mailbox.status == "disabled"  # permanent: stopped until the settings are saved
    assert requests_seen(sandbox) == 0
