"""Suite-wide test settings. Subdirectories keep their own fixtures in their own conftest."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from cryptography.fernet import Fernet
from django.test import override_settings
from django.utils import translation

from psa.environment import env_networks
from tests import clock

# pytest-django runs with DEBUG=False, where secrets need explicit keys (as in production).
os.environ.setdefault("EXCHANGE_SECRET_KEYS", Fernet.generate_key().decode())

# The sandbox listens on 127.0.0.1, and the product refuses loopback addresses unless
# EXCHANGE_ALLOWED_NETWORKS lists them (exchange_ext/backends/addresses.py). Set here for the
# processes tests start; this process read its settings before this file, hence the override.
SANDBOX_NETWORKS = "127.0.0.0/8,::1/128"
os.environ.setdefault("EXCHANGE_ALLOWED_NETWORKS", SANDBOX_NETWORKS)


@pytest.fixture(scope="session")
def django_db_modify_db_settings(
    django_db_modify_db_settings_parallel_suffix: None, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """On SQLite the test database is a file (one per xdist worker), opened with the settings
    production uses (WAL, IMMEDIATE transactions, a busy timeout: psa/settings.py), not Django's
    default in-memory database. That one is shared by the live server's threads through the
    test thread's own connection, and two threads in one SQLite connection deadlock when one
    waits for SQLite's lock holding the GIL while the other runs a Python callback (the
    collation, Django's SQL functions) holding SQLite's lock. It also refused a second
    connection's write at once ("table is locked") where a file database waits, as in
    production."""
    from django.conf import settings

    for database in settings.DATABASES.values():
        if database["ENGINE"] == "django.db.backends.sqlite3":
            name = tmp_path_factory.mktemp("database") / "test.sqlite3"
            database.setdefault("TEST", {})["NAME"] = str(name)


@pytest.fixture(scope="session", autouse=True)
def _sandbox_loopback_is_allowed() -> Iterator[None]:
    networks = env_networks("EXCHANGE_ALLOWED_NETWORKS")
    with override_settings(EXCHANGE_ALLOWED_NETWORKS=networks):
        yield


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # Hashing with the production hasher costs ~0.2 s per login; tests log in hundreds of times.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _default_language():
    """A page a test requested as a German user leaves German active in the thread (Django's
    middleware activates and never resets): each test starts and ends in the default."""
    translation.deactivate()
    yield
    translation.deactivate()


@pytest.fixture(autouse=True)
def _pinned_clock():
    """Each test reads the (possibly shifted) clock once and pins it: ``tests.clock.now()``."""
    clock.pin()
    yield
    clock.unpin()
