"""``exchange_demo_setup`` points an unconfigured extension at the sandbox, and only then."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from exchange_ext.models import ExchangeConfig
from exchange_ext.secrets import Secret

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _debug(settings):
    # pytest-django runs with DEBUG off, where the demo commands refuse to run.
    settings.DEBUG = True


def test_an_unconfigured_extension_gets_the_sandbox_settings():
    call_command("exchange_demo_setup", stdout=io.StringIO())
    config = ExchangeConfig.load()
    assert config.server_address == "localhost:8443"
    assert config.username == "svc-sync" and config.password == Secret("sandbox-sync")
    assert config.use_for_all_users and config.backend_name == "ews"


def test_a_configured_server_is_never_overwritten():
    config = ExchangeConfig.load()
    config.server_address = "mail.customer.example"
    config.save()
    call_command("exchange_demo_setup", stdout=io.StringIO())
    assert ExchangeConfig.load().server_address == "mail.customer.example"


def test_graph_switches_a_configured_sandbox_to_the_graph_app_and_back():
    call_command("exchange_demo_setup", stdout=io.StringIO())
    call_command("exchange_demo_setup", "--graph", stdout=io.StringIO())
    config = ExchangeConfig.load()
    assert config.backend_name == "graph"
    assert config.client_secret == Secret("sandbox-graph-secret") and config.tenant_id
    call_command("exchange_demo_setup", "--ews", stdout=io.StringIO())
    assert ExchangeConfig.load().backend_name == "ews"
