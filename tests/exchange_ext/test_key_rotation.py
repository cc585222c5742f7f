"""``manage.py exchange_rotate_keys``: re-encrypt every secret under a new first key."""

from __future__ import annotations

import io

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command
from django.db import connection

from exchange_ext.models import ExchangeConfig, MailboxSettings
from exchange_ext.secrets import UndecryptableSecret
from tests.builders import make_resource

pytestmark = pytest.mark.django_db


def stored_tokens() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT password FROM exchange_ext_exchangeconfig UNION ALL "
            "SELECT client_secret FROM exchange_ext_exchangeconfig UNION ALL "
            "SELECT password FROM exchange_ext_mailboxsettings"
        )
        return sorted(row[0] for row in cursor.fetchall())


@pytest.fixture
def old_key(monkeypatch) -> str:
    key = Fernet.generate_key().decode()
    monkeypatch.setenv("EXCHANGE_SECRET_KEYS", key)
    return key


@pytest.fixture
def secrets_under_old_key(old_key):
    config = ExchangeConfig.load()
    config.password, config.client_secret = "sync-password", "client-secret"
    config.save()
    first = MailboxSettings.objects.create(resource=make_resource(), password="tech-password")
    MailboxSettings.objects.create(resource=make_resource())  # no secret: left alone
    return first


def rotate(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("exchange_rotate_keys", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_after_rotation_every_secret_reads_with_only_the_new_key(
    secrets_under_old_key, old_key, monkeypatch
):
    new_key = Fernet.generate_key().decode()
    monkeypatch.setenv("EXCHANGE_SECRET_KEYS", f"{new_key},{old_key}")

    out, _ = rotate()

    assert "re-encrypted 3 secret(s)" in out
    monkeypatch.setenv("EXCHANGE_SECRET_KEYS", new_key)
    config = ExchangeConfig.load()
    assert config.password.reveal() == "sync-password"
    assert config.client_secret.reveal() == "client-secret"
    assert MailboxSettings.objects.get(pk=secrets_under_old_key.pk).password == "tech-password"


def test_check_mode_reports_and_changes_nothing(secrets_under_old_key, old_key, monkeypatch):
    before = stored_tokens()
    monkeypatch.setenv("EXCHANGE_SECRET_KEYS", f"{Fernet.generate_key().decode()},{old_key}")

    out, _ = rotate("--check")

    assert "exchange_ext.ExchangeConfig.password: would re-encrypt 1" in out
    assert "exchange_ext.MailboxSettings.password: would re-encrypt 1" in out
    assert stored_tokens() == before


def test_an_undecryptable_secret_is_reported_exits_non_zero_and_changes_nothing(
    secrets_under_old_key, monkeypatch
):
    monkeypatch.setenv("EXCHANGE_SECRET_KEYS", Fernet.generate_key().decode())  # old key lost
    MailboxSettings.objects.create(resource=make_resource(), password="under-the-new-key")
    before = stored_tokens()
    err = io.StringIO()

    with pytest.raises(CommandError, match="nothing was changed"):
        call_command("exchange_rotate_keys", stdout=io.StringIO(), stderr=err)

    reported = err.getvalue()
    assert f"exchange_ext.MailboxSettings.password pk={secrets_under_old_key.pk}" in reported
    assert "exchange_ext.ExchangeConfig.password pk=1" in reported
    assert "under-the-new-key" not in reported
    assert stored_tokens() == before
    assert isinstance(ExchangeConfig.load().password, UndecryptableSecret)
