"""The connection test against the in-process Exchange sandbox (what a save checks: README,
"Configuring the MS Exchange extension").

The product trusts the sandbox's CA only through ``EXCHANGE_CA_BUNDLE`` (as an operator would),
and the sandbox listens on ``localhost:<port>`` — a host name, since IP literals are refused —
so the port is allowed through ``EXCHANGE_ALLOWED_PORTS``.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from exchangelib import BASIC, Configuration, Credentials, FaultTolerance
from exchangelib.protocol import BaseProtocol, CachingProtocol, Protocol, close_connections

from exchange_ext.backends.ews.endpoint import pinned_version
from exchange_ext.backends.ews.probe import SELF_SIGNED_MESSAGE
from exchange_ext.models import ExchangeConfig, MailboxSettings
from exchange_ext.sandbox.server import SandboxHandle, load_config, start_sandbox
from exchange_ext.web.connection_test import probe_config_connection, probe_mailbox_connection
from tests.builders import make_resource

TECH1 = "tech1@northwind.example"
WRONG_PASSWORD = "not-the-sync-password"
PROBE_BUDGET_SECONDS = 5.0


@pytest.fixture(scope="module")
def cert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("probe-certs")


@pytest.fixture(scope="module")
def sandbox(cert_dir: Path) -> Iterator[SandboxHandle]:
    handle = start_sandbox(config=load_config(), tls="ca", cert_dir=cert_dir)
    yield handle
    handle.stop()
    assert not handle.state.validator.counts["response"], handle.state.validator.report()


@pytest.fixture(scope="module")
def self_signed_sandbox(cert_dir: Path) -> Iterator[SandboxHandle]:
    handle = start_sandbox(config=load_config(), tls="selfsigned", cert_dir=cert_dir)
    yield handle
    handle.stop()


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed once the with-block ends: connection refused


@pytest.fixture(autouse=True)
def _trust_the_sandbox_like_an_operator(
    monkeypatch, sandbox, self_signed_sandbox, closed_port
) -> Iterator[None]:
    monkeypatch.setenv("EXCHANGE_CA_BUNDLE", str(sandbox.ca_file))
    ports = {443, sandbox.port, self_signed_sandbox.port, closed_port}
    monkeypatch.setenv("EXCHANGE_ALLOWED_PORTS", ",".join(map(str, sorted(ports))))
    # The product installs its adapter class-globally; put back whatever another suite had.
    monkeypatch.setattr(BaseProtocol, "HTTP_ADAPTER_CLS", BaseProtocol.HTTP_ADAPTER_CLS)
    sandbox.state.requests.clear()
    yield
    close_connections()


def sync_config(sandbox: SandboxHandle, **fields) -> ExchangeConfig:
    """An unsaved configuration, as the General tab's form builds it before saving."""
    values = {
        "profile_name": "Northwind",
        "server_address": f"localhost:{sandbox.port}",
        "exchange_version": "2016",
        "username": "svc-sync",
        "password": "sandbox-sync",
        "domain": "NORTHWIND",
        "use_basic_auth": True,
        "use_graph": False,
        "use_for_all_users": True,
    }
    return ExchangeConfig(**{**values, **fields})


def timed(probe, *args, **kwargs):
    started = time.monotonic()
    report = probe(*args, **kwargs)
    return report, time.monotonic() - started


def enabled_tech1(**fields) -> MailboxSettings:
    resource = make_resource(email=TECH1)
    return MailboxSettings.objects.create(resource=resource, sync_enabled=True, **fields)


@pytest.mark.django_db
def test_a_good_configuration_impersonates_the_first_enabled_mailbox(sandbox):
    enabled_tech1()

    report = probe_config_connection(sync_config(sandbox))

    assert report.ok, report
    assert report.field_errors == {}
    assert TECH1 in report.message
    [request] = sandbox.state.requests.query()["requests"]  # one request: no version probing
    assert (request["operation"], request["caller"], request["impersonation"]) == (
        "GetFolder",
        "svc-sync",
        TECH1,
    )


@pytest.mark.parametrize("version", ["2013", "2016", "2019", "online"])
def test_every_pinned_version_talks_to_the_server(sandbox, version):
    report = probe_config_connection(sync_config(sandbox, exchange_version=version), mailbox=TECH1)
    assert report.ok, report


@pytest.mark.django_db
def test_without_an_enabled_mailbox_the_accounts_own_access_is_tested(sandbox):
    report = probe_config_connection(sync_config(sandbox))

    assert report.ok, report
    assert "Impersonation will be checked when a resource is enabled" in report.message


def test_a_wrong_password_is_reported_on_username_and_password_within_five_seconds(sandbox, caplog):
    with caplog.at_level(logging.DEBUG):
        report, seconds = timed(
            probe_config_connection, sync_config(sandbox, password=WRONG_PASSWORD), mailbox=TECH1
        )

    assert not report.ok
    assert report.message == "The server rejected the username or password."
    assert set(report.field_errors) == {"username", "password"}
    assert seconds < PROBE_BUDGET_SECONDS
    assert WRONG_PASSWORD not in caplog.text + repr(report)
    assert logging.getLogger("exchangelib").getEffectiveLevel() > logging.DEBUG


def test_a_denied_impersonation_is_reported_on_the_shared_credentials_checkbox(sandbox):
    config = sync_config(sandbox, username="svc-noimp", password="sandbox-noimp")

    report = probe_config_connection(config, mailbox=TECH1)

    assert not report.ok
    assert report.field_errors == {
        "use_for_all_users": f"The sync account may not impersonate {TECH1}: grant it the "
        "ApplicationImpersonation role."
    }


def test_a_self_signed_certificate_is_refused(self_signed_sandbox):
    report = probe_config_connection(sync_config(self_signed_sandbox), mailbox=TECH1)

    assert not report.ok
    assert report.field_errors == {"server_address": SELF_SIGNED_MESSAGE}


def test_a_certificate_from_an_untrusted_ca_is_refused(sandbox, monkeypatch):
    monkeypatch.delenv("EXCHANGE_CA_BUNDLE")  # certifi alone does not know the sandbox CA

    report = probe_config_connection(sync_config(sandbox), mailbox=TECH1)

    assert not report.ok
    assert "not signed by a trusted CA" in report.field_errors["server_address"]


def test_an_unreachable_server_is_reported_on_the_address_within_five_seconds(sandbox, closed_port):
    config = sync_config(sandbox, server_address=f"localhost:{closed_port}")

    report, seconds = timed(probe_config_connection, config, mailbox=TECH1)

    assert not report.ok
    assert report.field_errors == {
        "server_address": f"Cannot reach localhost:{closed_port}: connection refused."
    }
    assert seconds < PROBE_BUDGET_SECONDS


def test_a_server_that_never_answers_is_given_up_on_within_five_seconds(sandbox, monkeypatch):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)  # accepts the TCP connection, never says a word
        port = silent.getsockname()[1]
        monkeypatch.setenv("EXCHANGE_ALLOWED_PORTS", str(port))
        config = sync_config(sandbox, server_address=f"localhost:{port}")

        report, seconds = timed(probe_config_connection, config, mailbox=TECH1)

    assert not report.ok
    assert report.field_errors == {
        "server_address": f"Cannot reach localhost:{port}: no answer (timed out)."
    }
    assert seconds < PROBE_BUDGET_SECONDS


def test_a_wrong_virtual_directory_is_reported_on_that_field(sandbox):
    config = sync_config(sandbox, virtual_directory="/owa/Exchange.asmx")

    report = probe_config_connection(config, mailbox=TECH1)

    assert not report.ok
    assert list(report.field_errors) == ["virtual_directory"]
    assert "HTTP 404" in report.message


def test_an_unknown_mailbox_is_named_in_the_message(sandbox):
    report = probe_config_connection(sync_config(sandbox), mailbox="ghost@northwind.example")

    assert not report.ok
    assert "ghost@northwind.example does not exist" in report.message


def test_an_ip_address_is_refused_before_any_request(sandbox):
    report = probe_config_connection(
        sync_config(sandbox, server_address=f"127.0.0.1:{sandbox.port}"), mailbox=TECH1
    )
    assert not report.ok
    assert "IP addresses are not allowed" in report.field_errors["server_address"]


def test_office_365_with_graph_is_tested_by_the_graph_probe(sandbox):
    # The Graph path has its own tests: tests/exchange_ext/test_graph_connection_probe.py.
    config = sync_config(sandbox, use_basic_auth=False, use_graph=True)

    report = probe_config_connection(config)

    assert not report.ok and set(report.field_errors) == {"tenant_id", "client_id", "client_secret"}


def test_a_missing_ca_bundle_file_is_reported_naming_the_variable(sandbox, monkeypatch, tmp_path):
    monkeypatch.setenv("EXCHANGE_CA_BUNDLE", str(tmp_path / "missing.pem"))

    report = probe_config_connection(sync_config(sandbox), mailbox=TECH1)

    assert not report.ok
    assert "EXCHANGE_CA_BUNDLE" in report.message


def test_the_probe_neither_uses_nor_leaves_a_cached_protocol(sandbox):
    """A background sync's FaultTolerance Protocol (same endpoint and credentials) stays apart.

    If the probe shared it, a wrong password would be retried as "throttling" for up to
    max_wait (docs/reliability.md, "#E2", "#E3"); and the probe's FailFast/timeout must not leak
    to the sync.
    """
    config = sync_config(sandbox, password=WRONG_PASSWORD)
    sync_protocol = Protocol(
        config=Configuration(
            service_endpoint=sandbox.url,
            credentials=Credentials("NORTHWIND\\svc-sync", WRONG_PASSWORD),
            auth_type=BASIC,
            version=pinned_version("2016"),
            retry_policy=FaultTolerance(max_wait=600),
        )
    )

    report, seconds = timed(probe_config_connection, config, mailbox=TECH1)

    assert not report.ok and seconds < PROBE_BUDGET_SECONDS
    cached = [protocol for protocol, _ in CachingProtocol._protocol_cache.values()]
    assert cached == [sync_protocol]
    assert not sync_protocol.retry_policy.fail_fast


@pytest.mark.django_db
def test_the_profile_probe_impersonates_the_resources_mailbox_with_the_sync_account(sandbox):
    settings = enabled_tech1()

    assert probe_mailbox_connection(settings, sync_config(sandbox)).ok


@pytest.mark.django_db
def test_the_profile_probe_reports_denied_impersonation_on_the_mailbox(sandbox):
    settings = enabled_tech1()
    config = sync_config(sandbox, username="svc-noimp", password="sandbox-noimp")

    report = probe_mailbox_connection(settings, config)

    assert not report.ok
    assert list(report.field_errors) == ["mailbox"]


@pytest.mark.django_db
def test_the_profile_probe_logs_in_with_the_resources_own_credentials(sandbox):
    settings = enabled_tech1(username="tech1", password="demo")
    config = sync_config(sandbox, use_for_all_users=False, username="", password="")

    report = probe_mailbox_connection(settings, config)

    assert report.ok, report


@pytest.mark.django_db
def test_the_profile_probe_marks_the_resources_own_wrong_password(sandbox):
    settings = enabled_tech1(username="tech1", password="wrong")

    report, seconds = timed(
        probe_mailbox_connection, settings, sync_config(sandbox, use_for_all_users=False)
    )

    assert not report.ok and seconds < PROBE_BUDGET_SECONDS
    assert set(report.field_errors) == {"username", "password"}
