"""Inactive resources, and resources whose login is disabled, never sync; reactivating resumes
(docs/sync-rules.md, "Inactive resources")."""

from __future__ import annotations

import datetime as dt
import io
import logging

import pytest
from django.core import mail
from django.core.management import CommandError, call_command

from exchange_ext import tasks
from exchange_ext.backends import factory
from exchange_ext.backends.memory import MemoryBackend
from exchange_ext.engine import run_sync
from exchange_ext.jobs import dispatcher, notifications
from exchange_ext.models import ExchangeConfig, ItemLink, MailboxSettings, SyncRun
from psa.resources.models import Resource
from tests.builders import make_appointment, make_resource
from tests.clock import now

pytestmark = pytest.mark.django_db
INACTIVE = "inactive in the PSA"
LOGIN_DISABLED = "login is disabled"


@pytest.fixture
def techs(monkeypatch: pytest.MonkeyPatch) -> tuple[list[MailboxSettings], MemoryBackend]:
    """Three enabled resources with one appointment each, over one MemoryBackend."""
    config = ExchangeConfig.load()
    config.server_address = "mail.example.test"
    config.notification_emails = "it-ops@example.test"
    config.save()
    resources = [make_resource(f"away{n}") for n in range(3)]
    mailboxes = [
        MailboxSettings.objects.create(resource=r, sync_enabled=True, mailbox=r.email)
        for r in resources
    ]
    for resource in resources:
        make_appointment(resource, title=f"Visit of {resource.first_name}")
    backend = MemoryBackend([r.email for r in resources])
    monkeypatch.setattr(factory, "backend_for", lambda config, mailbox_settings=None: backend)
    return mailboxes, backend


def deactivate(mailbox: MailboxSettings) -> None:
    Resource.objects.filter(pk=mailbox.resource_id).update(active=False)


def disable_login(mailbox: MailboxSettings) -> None:
    user = mailbox.resource.user
    user.is_active = False
    user.save()


def command(*args: str) -> str:
    out = io.StringIO()
    call_command("exchange_sync", *args, stdout=out)
    return out.getvalue()


def test_the_dispatcher_never_queues_an_inactive_resource_or_one_whose_login_is_disabled(techs):
    (gone, locked, working), _ = techs
    deactivate(gone)
    disable_login(locked)
    assert dispatcher.queue_due(now()) == [working.pk]
    assert dispatcher.enqueue_syncs([gone.pk, locked.pk], SyncRun.Trigger.SCHEDULED) == []
    MailboxSettings.objects.update(queued_at=None)
    assert dispatcher.after_config_saved(["sync_interval_minutes"]) == 1  # "sync soon": one


def take_out_of_sync(mailbox: MailboxSettings) -> None:
    """Unchecked on the Resources tab (already skipped before inactive resources were)."""
    MailboxSettings.objects.filter(pk=mailbox.pk).update(sync_enabled=False)


@pytest.mark.parametrize(
    ("retire", "reason"),
    [(deactivate, INACTIVE), (disable_login, LOGIN_DISABLED), (take_out_of_sync, "not enabled")],
    ids=["inactive", "login-disabled", "not-enabled"],
)
def test_a_run_queued_before_the_resource_was_retired_is_skipped_and_alerts_nobody(
    techs, retire, reason, caplog
):
    (tech, *_), backend = techs
    MailboxSettings.objects.filter(pk=tech.pk).update(status="failing", consecutive_failures=1)
    assert dispatcher.enqueue_sync(tech.pk, SyncRun.Trigger.SCHEDULED, now())
    retire(tech)
    with caplog.at_level(logging.INFO, logger="exchange_ext"):
        summary = tasks.sync_mailbox(tech.pk)
    assert summary.startswith(f"mailbox {tech.pk}: skipped") and reason in summary
    assert any(reason in r.getMessage() and str(tech.pk) in r.getMessage() for r in caplog.records)
    [run] = SyncRun.objects.filter(mailbox_settings=tech)
    assert run.outcome == SyncRun.Outcome.SKIPPED
    assert backend.items_of(tech.mailbox) == []  # nothing was written
    row = MailboxSettings.objects.get(pk=tech.pk)
    assert (row.status, row.consecutive_failures, row.queued_at) == ("failing", 1, None)
    assert notifications.evaluate(now()) == [] and mail.outbox == []


def test_a_stopped_resource_that_is_deactivated_is_no_longer_anyones_alert(techs):
    (tech, *_), _ = techs
    MailboxSettings.objects.filter(pk=tech.pk).update(status="disabled", last_error="Refused.")
    assert len(notifications.evaluate(now())) == 1  # the failing email
    deactivate(tech)
    assert notifications.evaluate(now() + dt.timedelta(days=2)) == []  # no reminder
    assert MailboxSettings.objects.get(pk=tech.pk).notified_state == ""


def test_exchange_sync_for_a_retired_resource_says_why_and_exits_non_zero(techs):
    (gone, locked, _), _ = techs
    deactivate(gone)
    disable_login(locked)
    with pytest.raises(
        CommandError, match=f"Resource {gone.resource_id} is not synced: .*{INACTIVE}"
    ):
        command("--resource", str(gone.resource_id))
    with pytest.raises(CommandError, match=LOGIN_DISABLED):
        command("--resource", str(locked.resource_id))
    output = command("--all")
    lines = output.strip().splitlines()
    assert len(lines) == 3
    assert "ok; PSA —; Exchange 1 created" in lines[2]
    assert "skipped" in lines[0] and INACTIVE in lines[0]
    assert "skipped" in lines[1] and LOGIN_DISABLED in lines[1]
    assert SyncRun.objects.filter(mailbox_settings__in=[gone, locked]).count() == 0


def test_reactivating_resumes_with_the_settings_and_links_it_had(techs):
    (tech, *_), backend = techs
    MailboxSettings.objects.filter(pk=tech.pk).update(export_todos=False, past_days=3)
    assert run_sync(tech.pk, now=now()).outcome == SyncRun.Outcome.OK
    links = list(ItemLink.objects.filter(mailbox_settings=tech).values_list("pk", flat=True))
    deactivate(tech)
    assert run_sync(tech.pk, now=now()).outcome == SyncRun.Outcome.SKIPPED
    assert tech.pk not in dispatcher.due_mailboxes(now())
    Resource.objects.filter(pk=tech.resource_id).update(active=True)
    row = MailboxSettings.objects.get(pk=tech.pk)
    assert (row.sync_enabled, row.export_todos, row.past_days) == (True, False, 3)
    MailboxSettings.objects.filter(pk=tech.pk).update(sync_requested_at=now())
    assert tech.pk in dispatcher.due_mailboxes(now())
    assert run_sync(tech.pk, now=now()).outcome == SyncRun.Outcome.OK
    assert (
        list(ItemLink.objects.filter(mailbox_settings=tech).values_list("pk", flat=True)) == links
    )
    assert len(backend.items_of(tech.mailbox)) == 1
