"""Failure, outage, reminder and recovery emails through a real SMTP server
(docs/sync-rules.md, "Notifications").

Syncs run in-process against an in-process sandbox over HTTPS (the product's EWS backend), the
alerts go out through Django's SMTP backend to an aiosmtpd server on loopback, and every test
greps every message it received for the configured secrets.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone
from django_q.models import Schedule
from exchangelib.protocol import close_connections

from exchange_ext import tasks
from exchange_ext.jobs import dispatcher, notifications
from exchange_ext.jobs.schedules import DISPATCH_SCHEDULE
from exchange_ext.models import ExchangeConfig, MailboxSettings, ServerOutage, SyncRun
from exchange_ext.sandbox.accounts import account_from_config
from exchange_ext.secrets import Secret
from tests import clock
from tests.integration.ops_support import (
    DOMAIN,
    SECRET_PASSWORD,
    add_mailboxes,
    configure,
    make_enabled_resources,
    sandbox_env,
    start_ops_sandbox,
)
from tests.smtp import Inbox, smtp_inbox

pytestmark = pytest.mark.django_db
ADMINS = "it-ops@northwind.example; boss@northwind.example"
RESOURCE_PASSWORD = "Per-Resource-Pa55word!"
WRONG_PASSWORD = "Wrong-Pa55word-Typed!"


@pytest.fixture
def inbox(settings: Any) -> Iterator[Inbox]:
    with smtp_inbox(settings) as handler:
        yield handler
    # Never a secret in any email, whatever the test did.
    for raw in handler.raw:
        assert SECRET_PASSWORD.encode() not in raw
        assert RESOURCE_PASSWORD.encode() not in raw
        assert WRONG_PASSWORD.encode() not in raw


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
    # Each resource signs in as itself (no shared account) and ops2's own password is refused:
    # that stops ops2 alone. (The shared account refused stops every mailbox at once:
    # sync_rules/test_shared_account.py.)
    ids = _setup(sandbox, 3)
    ExchangeConfig.objects.update(use_for_all_users=False)
    for n, settings_row in enumerate(MailboxSettings.objects.filter(pk__in=ids).order_by("pk")):
        login = f"ops{n + 1}"
        sandbox.state.accounts.add(account_from_config(
            {"login": login, "password": RESOURCE_PASSWORD, "mailbox": f"{login}@{DOMAIN}"}
        ))  # fmt: skip
        settings_row.username = login
        if login == "ops2":
            settings_row.password = Secret(WRONG_PASSWORD)
        settings_row.save()
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
    assert "credentials on the resource's MS Exchange tab" in body  # its own login
    assert WRONG_PASSWORD not in body
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


# --- the one error boundary: a bug is a failure like any other ------------------------------

UNEXPECTED = (
    "An unexpected error stopped the sync: RuntimeError. The details are in the server log."
)


def test_an_unexpected_error_marks_the_mailbox_failing_and_alerts_once_without_its_details(
    inbox, sandbox, monkeypatch, caplog
):
    ids = _setup(sandbox, 2)
    _sync_all(ids)
    broken = ids[0]

    def engine_bug(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"engine bug near {SECRET_PASSWORD}")

    with monkeypatch.context() as patched:
        # Every page reads the PSA side (a quiet one too), so every run meets the bug.
        patched.setattr("exchange_ext.engine.psa_store.load_psa_items", engine_bug)
        for _ in range(3):  # a bug repeats: still one email
            with pytest.raises(RuntimeError):  # the task fails in django-q too, traceback and all
                tasks.sync_mailbox(broken)
            notifications.evaluate()
        close_connections()

    row = MailboxSettings.objects.get(pk=broken)
    assert (row.status, row.last_error, row.last_error_kind) == (
        MailboxSettings.Status.FAILING, UNEXPECTED, "UnexpectedError",
    )  # fmt: skip
    assert row.consecutive_failures == 3  # the dispatcher backs off as after any failure
    assert row.lease_expires_at is None and row.lease_holder == ""  # the lease was released
    run = SyncRun.objects.filter(mailbox_settings_id=broken).order_by("-pk").first()
    assert (run.outcome, run.error) == (SyncRun.Outcome.FAILED, UNEXPECTED)
    logged = [r for r in caplog.records if r.exc_info and r.exc_info[0] is RuntimeError]
    assert logged, "the traceback belongs in the server log"
    assert _statuses(ids)[1] == "ok"

    assert len(inbox.raw) == 1, inbox.subjects()
    assert "sync failing for" in inbox.subjects()[0]
    body = inbox.text(0)
    assert "An unexpected error stopped the sync" in body and "server log" in body
    assert "engine bug" not in body and "Traceback" not in body

    _sync_all([broken])
    assert _statuses(ids) == ["ok", "ok"]
    sent = notifications.evaluate()
    assert len(sent) == 1 and "works again" in sent[0]


# --- the watchdog (docs/sync-rules.md, "Notifications") --------------------------------------


def _pause_dispatcher(since: dt.datetime) -> None:
    """The cluster's scheduler last fired the dispatcher at ``since`` (then died)."""
    Schedule.objects.filter(name=DISPATCH_SCHEDULE).update(next_run=since)


def test_the_watchdog_reports_mailboxes_without_a_sync_for_six_intervals_once_then_recovery(
    inbox, sandbox
):
    ids = _setup(sandbox, 3)  # 15-minute interval: six intervals are 90 minutes
    _sync_all(ids)
    now = clock.now()
    _pause_dispatcher(now)  # no worker runs any more: nothing fails, nothing syncs either

    assert tasks.watchdog(now + dt.timedelta(minutes=85)) is not None
    assert _statuses(ids) == ["ok"] * 3 and inbox.raw == []

    tasks.watchdog(now + dt.timedelta(minutes=95))
    assert _statuses(ids) == ["failing"] * 3
    row = MailboxSettings.objects.get(pk=ids[0])
    assert row.last_error_kind == "SyncOverdue"
    assert "No sync has completed since" in row.last_error
    assert "background worker" in row.last_error  # the dispatcher stopped: say so
    assert len(inbox.raw) == 1, inbox.subjects()
    body = inbox.text(0)
    for n in range(1, 4):
        assert f"ops{n}@northwind.example" in body
    assert "manage.py qcluster" in body

    for minutes in (100, 180, 600):  # once per episode
        tasks.watchdog(now + dt.timedelta(minutes=minutes))
    assert len(inbox.raw) == 1, inbox.subjects()
    tasks.watchdog(now + dt.timedelta(hours=25, minutes=40))
    assert len(inbox.raw) == 2 and "reminder" in inbox.subjects()[1]

    _sync_all(ids)  # the worker is back
    assert _statuses(ids) == ["ok"] * 3
    sent = notifications.evaluate()  # the dispatcher's next minute
    assert len(sent) == 1 and "works again" in sent[0]
    assert len(inbox.raw) == 3


def test_the_watchdog_names_a_run_a_dead_worker_left_and_a_task_the_broker_lost(inbox, sandbox):
    ids = _setup(sandbox, 3)
    _sync_all(ids)
    now = clock.now()
    later = now + dt.timedelta(minutes=95)
    Schedule.objects.filter(name=DISPATCH_SCHEDULE).update(next_run=later)  # it still fires
    left, lost, fine = ids
    # A worker killed mid-run: its lease outlived it; a task queued and never delivered.
    MailboxSettings.objects.filter(pk=left).update(
        lease_holder="worker-7:4242", lease_expires_at=now + dt.timedelta(minutes=11),
        last_attempt_at=now,
    )  # fmt: skip
    MailboxSettings.objects.filter(pk=lost).update(queued_at=now + dt.timedelta(minutes=20))
    MailboxSettings.objects.filter(pk=fine).update(last_success_at=later)

    tasks.watchdog(later)
    assert _statuses(ids) == ["failing", "failing", "ok"]
    errors = dict(MailboxSettings.objects.filter(pk__in=ids).values_list("pk", "last_error"))
    assert "left unfinished" in errors[left] and "worker-7:4242" in errors[left]
    assert "queued" in errors[lost] and "never started" in errors[lost]
    assert inbox.raw == []  # the dispatcher runs: its next minute sends the email
    sent = notifications.evaluate(later)
    assert len(sent) == 1 and len(inbox.raw) == 1


def test_the_watchdog_restores_a_lost_dispatch_schedule_and_survives_its_own_errors(
    inbox, sandbox, monkeypatch, caplog
):
    ids = _setup(sandbox, 2)
    _sync_all(ids)
    Schedule.objects.filter(name=DISPATCH_SCHEDULE).delete()

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("watchdog bug")

    monkeypatch.setattr("exchange_ext.jobs.watchdog.mark_overdue", broken)
    tasks.watchdog(clock.now() + dt.timedelta(minutes=95))  # never raises
    assert Schedule.objects.filter(name=DISPATCH_SCHEDULE, func=dispatcher.DISPATCH_TASK).exists()
    assert any(r.exc_info and r.exc_info[0] is RuntimeError for r in caplog.records)


def test_the_watchdog_command_from_cron_alerts_when_the_cluster_does_not_run(inbox, sandbox):
    # Outside the cluster (cron): the only check that still runs when no qcluster does.
    ids = _setup(sandbox, 2)
    _sync_all(ids)
    hours_ago = timezone.now() - dt.timedelta(hours=2)
    ExchangeConfig.objects.update(updated_at=hours_ago)  # nobody touched the settings since
    MailboxSettings.objects.filter(pk__in=ids).update(last_success_at=hours_ago)
    _pause_dispatcher(hours_ago)
    out = StringIO()
    call_command("exchange_watchdog", stdout=out)
    assert "2 mailboxes overdue; 1 notification emails" in out.getvalue()
    assert "has not run the dispatcher since" in out.getvalue()
    assert _statuses(ids) == ["failing"] * 2 and len(inbox.raw) == 1
    call_command("exchange_watchdog", stdout=StringIO())
    assert len(inbox.raw) == 1  # once per episode
