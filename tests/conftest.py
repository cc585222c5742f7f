"""Suite-wide test settings. Subdirectories keep their own fixtures in their own conftest."""

from __future__ import annotations

import os

import pytest
from cryptography.fernet import Fernet

from tests import clock

# pytest-django runs with DEBUG=False, where secrets need explicit keys (as in production).
os.environ.setdefault("EXCHANGE_SECRET_KEYS", Fernet.generate_key().decode())


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # Hashing with the production hasher costs ~0.2 s per login; tests log in hundreds of times.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _pinned_clock():
    """Each test reads the (possibly shifted) clock once and pins it: ``tests.clock.now()``."""
    clock.pin()
    yield
    clock.unpin()
