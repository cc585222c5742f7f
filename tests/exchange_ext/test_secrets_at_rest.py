"""Secrets at rest (docs/reliability.md, "#S1", "#S2"; README, "Secrets"): encrypted columns,
values that never show themselves, key loss."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.db import connection

from exchange_ext.models import ExchangeConfig, MailboxSettings
from exchange_ext.secrets import MASK, Secret, UndecryptableSecret
from tests.builders import make_resource

PLAINTEXT = "Tr0ub4dor&3-plaintext"


def raw_column(table: str, column: str, pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT "{column}" FROM "{table}" WHERE id = %s', [pk])
        return cursor.fetchone()[0]


@pytest.mark.django_db
def test_the_database_columns_hold_no_plaintext_secret():
    config = ExchangeConfig.load()
    config.password = PLAINTEXT
    config.client_secret = PLAINTEXT + "-client"
    config.save()
    settings = MailboxSettings.objects.create(resource=make_resource(), password=PLAINTEXT)

    for table, column, pk in [
        ("exchange_ext_exchangeconfig", "password", config.pk),
        ("exchange_ext_exchangeconfig", "client_secret", config.pk),
        ("exchange_ext_mailboxsettings", "password", settings.pk),
    ]:
        stored = raw_column(table, column, pk)
        assert stored and PLAINTEXT not in stored
        assert stored.startswith("gAAAA")  # a Fernet token

    assert ExchangeConfig.load().password.reveal() == PLAINTEXT


def test_a_secret_never_shows_itself_in_str_repr_format_or_logs(caplog):
    secret = Secret(PLAINTEXT)
    percent = "%s" % secret  # noqa: UP031 — the %-formatting path is what logging uses
    shown = [str(secret), repr(secret), f"{secret}", f"{secret!r}", percent, format(secret)]
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("tests.secrets").warning("password is %s / %r", secret, secret)
    assert all(PLAINTEXT not in text for text in shown)
    assert MASK in str(secret)
    assert PLAINTEXT not in caplog.text


@pytest.mark.django_db
def test_a_secret_stored_under_a_lost_key_loads_as_undecryptable_instead_of_crashing(
    monkeypatch,
):
    config = ExchangeConfig.load()
    config.password = PLAINTEXT
    config.save()
    monkeypatch.setenv("EXCHANGE_SECRET_KEYS", Fernet.generate_key().decode())

    loaded = ExchangeConfig.load()

    assert isinstance(loaded.password, UndecryptableSecret)
    assert bool(loaded.password) and PLAINTEXT not in repr(loaded.password)


def test_production_without_secret_keys_refuses_to_start(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if k not in ("EXCHANGE_SECRET_KEYS",)}
    env.update(
        DJANGO_DEBUG="false",
        DJANGO_SECRET_KEY="x" * 50,
        DJANGO_ALLOWED_HOSTS="localhost",
        PSA_VAR_DIR=str(tmp_path),
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "EXCHANGE_SECRET_KEYS must be set in production" in result.stderr


@pytest.mark.django_db
def test_saving_a_row_with_an_undecryptable_secret_keeps_it_for_when_the_key_returns(
    monkeypatch,
):
    old_key = Fernet.generate_key().decode()
    monkeypatch.setenv("EXCHANGE_SECRET_KEYS", old_key)
    config = ExchangeConfig.load()
    config.client_secret = PLAINTEXT
    config.save()
    token = raw_column("exchange_ext_exchangeconfig", "client_secret", config.pk)
    monkeypatch.setenv("EXCHANGE_SECRET_KEYS", Fernet.generate_key().decode())

    config = ExchangeConfig.load()
    config.password = "re-entered"
    config.save()

    assert raw_column("exchange_ext_exchangeconfig", "client_secret", config.pk) == token
    monkeypatch.setenv("EXCHANGE_SECRET_KEYS", old_key)
    assert ExchangeConfig.load().client_secret.reveal() == PLAINTEXT
