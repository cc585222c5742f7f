"""Helpers of the configuration-page tests: logged-in clients, valid POST data, a sandbox."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from exchange_ext.models import ExchangeConfig, MailboxSettings
from exchange_ext.sandbox.server import SandboxHandle, load_config, start_sandbox
from psa.resources.models import Resource
from tests.builders import make_resource

SANDBOX_LOGIN = "svc-sync"
SANDBOX_PASSWORD = "sandbox-sync"
SANDBOX_DOMAIN = "NORTHWIND"


def make_exchange_admin(username: str = "xadmin") -> Resource:
    """A resource (not a superuser) holding ``exchange_ext.manage_extension``."""
    resource = make_resource(username)
    resource.user.user_permissions.add(Permission.objects.get(codename="manage_extension"))
    return resource


def client_for(resource: Resource) -> Client:
    return client_for_user(resource.user)


def client_for_user(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def general_data(**overrides: Any) -> dict[str, Any]:
    """A valid General-tab POST (basic auth, shared sync account); ``None`` drops a key."""
    data: dict[str, Any] = {
        "enabled": "on",
        "profile_name": "Northwind",
        "server_address": "mail.northwind.example",
        "virtual_directory": "",
        "exchange_version": "2016",
        "sync_interval_minutes": "15",
        "use_basic_auth": "on",
        "username": SANDBOX_LOGIN,
        "password": SANDBOX_PASSWORD,
        "domain": SANDBOX_DOMAIN,
        "use_for_all_users": "on",
        "tenant_id": "",
        "client_id": "",
        "client_secret": "",
        "client_certificate": "",
        "notification_emails": "",
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def sync_data(**overrides: Any) -> dict[str, Any]:
    """A valid Synchronization-tab POST; ``None`` drops a key (an unchecked checkbox)."""
    data: dict[str, Any] = {
        "sync_appointments": "on",
        "sync_contacts": "on",
        "sync_service_calls": "on",
        "sync_todos": "on",
        "import_mode": "all",
        "import_free_time": "on",
        "past_days": "7",
        "recurring_days": "14",
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def store_config(**fields: Any) -> ExchangeConfig:
    config = ExchangeConfig.load()
    for name, value in fields.items():
        setattr(config, name, value)
    config.save()
    return config


def enable(resource: Resource, **fields: Any) -> MailboxSettings:
    settings, _ = MailboxSettings.objects.update_or_create(
        resource=resource, defaults={"sync_enabled": True, **fields}
    )
    return settings


def enrol(name: str) -> MailboxSettings:
    """A new resource ``name`` with its sync enabled on its own PSA address (its mailbox)."""
    resource = make_resource(name)
    return MailboxSettings.objects.create(
        resource=resource, sync_enabled=True, mailbox=resource.email
    )


@contextmanager
def running_sandbox(cert_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SandboxHandle]:
    """The local Exchange sandbox, trusted through EXCHANGE_CA_BUNDLE, its port allowed."""
    handle = start_sandbox(load_config(), tls="ca", cert_dir=cert_dir)
    monkeypatch.setenv("EXCHANGE_CA_BUNDLE", str(handle.ca_file))
    monkeypatch.setenv("EXCHANGE_ALLOWED_PORTS", f"443,2610,{handle.port}")
    try:
        yield handle
    finally:
        from exchangelib.protocol import close_connections

        close_connections()
        handle.stop()
