"""Failure, outage, reminder and recovery emails through a real SMTP server
(docs/sync-rules.md, "Notifications").

Syncs run in-process against an in-process sandbox over HTTPS (the product's EWS backend), the
alerts go out through Django's SMTP backend to an aiosmtpd server on loopback, and every test
greps every message it received for the configured secrets.
"""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from exchangelib.protocol import close_connections

from exchange_ext import tasks
from exchange_ext.jobs import dispatcher, notifications
from exchange_ext.models import MailboxSettings, ServerOutage
from tests import clock
from tests.integration.ops_support import (
    SECRET_PASSWORD,
    add_mailboxes,
    configure,
    make_enabled_resources,
    sandbox_env,
    start_ops_sandbox,
)

pytestmark = pytest.mark.django_db
ADMINS = "it-ops@northwind.example; boss@northwind.example"
RESOURCE_PASSWORD = "Per-Resource-Pa55word!"


class Inbox:
    """What the SMTP server received (raw bytes, as sent)."""

    def __init__(self) -> None:
        self.raw: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.raw.append(envelope.original_content or envelope.content)
        return "250 OK"

    @property
    def messages(self) -> list[Message]:
        return [message_from_bytes(raw) for raw in self.raw]

    def subjects(self) -> list[str]:
        return [str(m["Subject"]) for m in self.messages]

    def text(self, index: int) -> str:
        for part in self.messages[index].walk():
            if part.get_content_type() == "text/plain":
                return part.get_payload(decode=True).decode()
        return ""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def inbox(settings: Any) -> Iterator[Inbox]:
    handler = Inbox()
    controller = Controller(handler, hostname="127.0.0.1", port=_free_port())
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", controller.port
    settings.EMAIL_USE_TLS, settings.EMAIL_HOST_USER, settings.EMAIL_HOST_PASSWORD = False, "", ""
    settings.EMAIL_TIMEOUT = 5
    try:
        yield handler
    finally:
        controller.stop()
        # Never a secret in any email, whatever the test did.
        for raw in handler.raw:
            assert SECRET_PASSWORD.encode() not in raw
            assert RESOURCE_PASSWORD.encode() not in raw


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    handle = start_ops_sandbox(tmp_path / "certs")
    for name, value in sandbox_env(handle).items():
        monkeypatch.setenv(name, value)
    # Throttling waits at most a second per call here (production: two minutes).
    monkeypatch.setenv("EXCHANGE_RETRY_BUDGET_SECONDS", "1")
    try:
        yield handle
    finally:
        close_connections()
        handle.stop()


def _setup(handle: Any, count: int) -> list[int]:
    configure(handle.port, notification_emails=ADMINS)
    ids = make_enabled_resources(add_mailboxes(handle, count), appointments=1)
    # A per-resource password too: it must never show up in an email either.
    from exchange_ext.secrets import Secret

    for settings_row in MailboxSettings.objects.filter(pk__in=ids):
        settings_row.password = Secret(RESOURCE_PASSWORD)
        settings_row.save()
    return ids


def _sync_all(ids: list[int]) -> list[str]:
    outcomes = [tasks.sync_mailbox(pk) for pk in ids]
    close_connections()  # as a worker between configs; also drops keep-alive sockets
    return outcomes


def _statuses(ids: list[int]) -> list[str]:
    return list(MailboxSettings.objects.filter(pk__in=ids).order_by("pk").values_list(
        "status", flat=True
    ))  # fmt: skip


def test_outage_is_one_email_with_a_reminder_after_a_day_and_one_recovery_email(inbox, sandbox):
    ids = _setup(sandbox, 4)
    _sync_all(ids)
    assert _statuses(ids) == ["ok"] * 4
    assert notifications.evaluate() == []

    port, store = sandbox.port, sandbox.state.store
    sandbox.stop()
    close_connections()
    for _ in range(3):  # several failed rounds: still one email
        outcomes = _sync_all(ids)
        assert all("failed" in o for o in outcomes), outcomes
        notifications.evaluate()
    assert _statuses(ids) == ["failing"] * 4
    assert len(inbox.raw) == 1, inbox.subjects()
    assert "cannot be reached (4 resources failing)" in inbox.subjects()[0]
    body = inbox.text(0)
    for n in range(1, 5):
        assert f"ops{n}@northwind.example" in body
    assert f"https://localhost:{port}/EWS/Exchange.asmx" in body
    assert "Check that the Exchange server is running" in body
    assert "Error: The Exchange server could not be reached." in body and "Details: " in body

    now = clock.now()
    assert notifications.evaluate(now + dt.timedelta(hours=23)) == []
    reminder = notifications.evaluate(now + dt.timedelta(hours=24, minutes=1))
    assert len(reminder) == 1 and "reminder" in reminder[0]
    assert notifications.evaluate(now + dt.timedelta(hours=25)) == []

    back = start_ops_sandbox(sandbox.ca_file.parent, port=port, store=store)
    try:
        _sync_all(ids)
        assert _statuses(ids) == ["ok"] * 4
        sent = notifications.evaluate(now + dt.timedelta(hours=25))
        assert len(sent) == 1 and "works again (4 resources" in sent[0]
        assert notifications.evaluate(now + dt.timedelta(hours=26)) == []
    finally:
        close_connections()
        back.stop()
    assert len(inbox.raw) == 3
    assert not ServerOutage.objects.filter(ended_at__isnull=True).exists()
    assert set(MailboxSettings.objects.values_list("notified_state", flat=True)) == {""}


def test_401_for_one_resource_is_one_email_naming_it_and_a_disabled_status(inbox, sandbox):
    ids = _setup(sandbox, 3)
    sandbox.state.faults.add(
        {"kind": "http_status", "status": 401, "mailbox": "ops2@northwind.example", "count": None}
    )
    for _ in range(2):
        _sync_all(ids)  # the second round skips the disabled one
        notifications.evaluate()
    row = MailboxSettings.objects.select_related("resource").get(resource__email__startswith="ops2")
    assert row.status == MailboxSettings.Status.DISABLED
    assert "refused the credentials" in row.last_error
    assert _statuses(ids).count("ok") == 2
    assert len(inbox.raw) == 1, inbox.subjects()
    assert row.resource.full_name in inbox.subjects()[0]
    body = inbox.text(0)
    assert "ops2@northwind.example" in body and "ops1@" not in body
    assert "username and password on the General tab" in body  # shared sync account
    assert inbox.messages[0]["To"] == "it-ops@northwind.example, boss@northwind.example"
    # Stopped until its settings are saved again: the dispatcher leaves it alone.
    assert row.pk not in dispatcher.due_mailboxes(clock.now() + dt.timedelta(hours=2))

    now = clock.now()
    assert notifications.evaluate(now + dt.timedelta(hours=12)) == []
    reminder = notifications.evaluate(now + dt.timedelta(hours=24, minutes=1))
    assert len(reminder) == 1 and row.resource.full_name in reminder[0]


def test_a_throttling_episode_sends_no_email(inbox, sandbox):
    ids = _setup(sandbox, 3)
    rule = sandbox.state.faults.add(
        {"kind": "server_busy", "back_off_ms": 30000, "mailbox": "ops3@northwind.example",
         "count": None}
    )  # fmt: skip
    for _ in range(3):
        _sync_all(ids)
        assert notifications.evaluate() == []
    row = MailboxSettings.objects.get(resource__email__startswith="ops3")
    assert row.status == MailboxSettings.Status.FAILING and row.last_error_kind == "Throttled"
    assert row.consecutive_failures == 3
    assert notifications.evaluate(clock.now() + dt.timedelta(minutes=90)) == []
    sandbox.state.faults.remove(rule.id)
    _sync_all(ids)
    assert _statuses(ids) == ["ok"] * 3
    assert notifications.evaluate() == []
    assert inbox.raw == []


def test_a_failing_resource_emails_after_two_failures_then_recovers(inbox, sandbox):
    ids = _setup(sandbox, 3)
    rule = sandbox.state.faults.add(
        {"kind": "reset_before", "mailbox": "ops1@northwind.example", "count": None}
    )
    _sync_all(ids)
    assert notifications.evaluate() == []  # one failed run is not news yet
    _sync_all(ids)
    sent = notifications.evaluate()
    assert len(sent) == 1 and "sync failing for" in sent[0]
    sandbox.state.faults.remove(rule.id)
    _sync_all(ids)
    sent = notifications.evaluate()
    assert len(sent) == 1 and "works again" in sent[0]
    assert len(inbox.raw) == 2
