"""How the connection test puts a probe's findings on each form's fields, over MemoryBackend.

The probes themselves run against the sandbox (test_connection_probe.py,
test_graph_connection_probe.py, tests/contract); here only the mapping is under test.
"""

from __future__ import annotations

import pytest

from exchange_ext.backends import factory
from exchange_ext.backends.base import AuthFailed, ImpersonationDenied
from exchange_ext.backends.memory import MemoryBackend
from exchange_ext.models import ExchangeConfig, MailboxSettings
from exchange_ext.web.connection_test import probe_config_connection, probe_mailbox_connection

MAILBOX = "tech1@northwind.example"
GHOST = "ghost@northwind.example"


@pytest.fixture
def memory(monkeypatch: pytest.MonkeyPatch) -> MemoryBackend:
    backend = MemoryBackend([MAILBOX])
    monkeypatch.setattr(factory, "backend_for", lambda config, mailbox_settings=None: backend)
    return backend


def config(**fields: object) -> ExchangeConfig:
    values: dict[str, object] = {
        "server_address": "mail.northwind.example", "exchange_version": "2016",
        "username": "svc-sync", "password": "sync-password", "domain": "NORTHWIND",
        "use_basic_auth": True, "use_for_all_users": True,
    }  # fmt: skip
    return ExchangeConfig(**{**values, **fields})


def own_settings(mailbox: str = MAILBOX) -> MailboxSettings:
    return MailboxSettings(mailbox=mailbox, username="tech1", password="own-password")


def test_the_general_tab_marks_refused_credentials_on_username_and_password(memory):
    memory.fail_next(AuthFailed(), operations=["probe"])

    report = probe_config_connection(config(), mailbox=MAILBOX)

    assert not report.ok
    assert report.field_errors == {"username": AuthFailed.plain, "password": AuthFailed.plain}


def test_the_general_tab_has_no_mailbox_field_so_an_unknown_mailbox_is_in_the_message(memory):
    report = probe_config_connection(config(), mailbox=GHOST)

    assert not report.ok and GHOST in report.message
    assert report.field_errors == {}


def test_the_profile_tab_marks_its_own_credentials_and_mailbox(memory):
    shared_off = config(use_for_all_users=False)
    memory.fail_next(AuthFailed(), operations=["probe"])

    refused = probe_mailbox_connection(own_settings(), shared_off)
    unknown = probe_mailbox_connection(own_settings(GHOST), shared_off)

    assert set(refused.field_errors) == {"username", "password"}
    assert set(unknown.field_errors) == {"mailbox"} and GHOST in unknown.field_errors["mailbox"]


def test_the_profile_tab_leaves_the_shared_accounts_credentials_to_the_admin(memory):
    memory.fail_next(AuthFailed(), operations=["probe"])

    report = probe_mailbox_connection(own_settings(), config())

    assert not report.ok and report.message == AuthFailed.plain
    assert report.field_errors == {}


def test_a_probe_that_passes_is_reported_as_is(memory):
    report = probe_mailbox_connection(own_settings(), config())

    assert report.ok and MAILBOX in report.message


def test_the_graph_profile_tab_puts_mailbox_problems_on_the_mailbox_and_the_rest_to_the_admin(
    memory,
):
    graph = config(
        use_basic_auth=False, use_graph=True, tenant_id="t", client_id="c", client_secret="s"
    )
    memory.fail_next(ImpersonationDenied(), operations=["probe"])
    memory.fail_next(AuthFailed(), operations=["probe"])

    outside_scope = probe_mailbox_connection(own_settings(), graph)
    refused = probe_mailbox_connection(own_settings(), graph)

    assert set(outside_scope.field_errors) == {"mailbox"}
    assert refused.field_errors == {} and refused.message.endswith(" Ask your admin.")
