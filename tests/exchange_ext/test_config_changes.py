"""Saving the General tab: resync reset on server changes, refusal while a sync runs.

The rules: docs/sync-rules.md, "Configuration changes".
"""

from __future__ import annotations

import datetime as dt

import pytest

from exchange_ext.models import ExchangeConfig, FolderSyncState, MailboxSettings
from exchange_ext.web.config_changes import (
    SYNC_RUNNING_MESSAGE,
    SyncRunning,
    reset_sync_state,
    save_config,
    sync_running,
)
from tests import clock
from tests.builders import make_resource

pytestmark = pytest.mark.django_db


@pytest.fixture
def mailboxes() -> list[MailboxSettings]:
    rows = [MailboxSettings.objects.create(resource=make_resource(), sync_enabled=True)
            for _ in range(3)]  # fmt: skip
    for row in rows:
        FolderSyncState.objects.create(mailbox_settings=row, folder="calendar", state="S1")
    return rows


def start_sync(settings: MailboxSettings, minutes: int = 5) -> None:
    settings.lease_expires_at = clock.now() + dt.timedelta(minutes=minutes)
    settings.lease_holder = "worker-1"
    settings.save()


def edited(**fields) -> ExchangeConfig:
    config = ExchangeConfig.load()
    for name, value in fields.items():
        setattr(config, name, value)
    return config


def test_changing_the_server_address_resets_every_mailboxs_sync_state(mailboxes):
    outcome = save_config(edited(server_address="new.example.com"), changed=["server_address"])

    assert outcome.resync_reset and outcome.mailboxes_reset == 3
    assert not FolderSyncState.objects.exists()
    assert MailboxSettings.objects.filter(resync_requested_at__isnull=True).count() == 0
    assert ExchangeConfig.load().server_address == "new.example.com"


def test_switching_between_ews_and_graph_resets_every_mailboxs_sync_state(mailboxes):
    ExchangeConfig.objects.update_or_create(pk=1, defaults={"use_basic_auth": True})
    to_graph = edited(use_basic_auth=False, use_graph=True)
    outcome = save_config(to_graph, changed=["use_basic_auth"])

    assert ExchangeConfig.load().backend_name == "graph"
    assert outcome.resync_reset and outcome.mailboxes_reset == 3
    assert not FolderSyncState.objects.exists()  # the states and ids were EWS's
    assert not MailboxSettings.objects.filter(resync_requested_at__isnull=True).exists()


def test_changing_only_the_interval_keeps_the_sync_state(mailboxes):
    outcome = save_config(edited(sync_interval_minutes=30), changed=["sync_interval_minutes"])

    assert not outcome.resync_reset and outcome.mailboxes_reset == 0
    assert FolderSyncState.objects.count() == 3
    assert not MailboxSettings.objects.filter(resync_requested_at__isnull=False).exists()


@pytest.mark.parametrize(
    ("field", "value"),
    [("server_address", "new.example.com"), ("exchange_version", "2019"),
     ("virtual_directory", "/ews/custom.asmx"), ("domain", "CONTOSO"), ("username", "svc2"),
     ("password", "new-password"), ("use_for_all_users", False)],
)  # fmt: skip
def test_a_server_or_credential_change_is_refused_while_a_sync_runs(mailboxes, field, value):
    start_sync(mailboxes[1])

    with pytest.raises(SyncRunning) as refused:
        save_config(edited(**{field: value}), changed=[field])

    assert str(refused.value) == SYNC_RUNNING_MESSAGE
    assert FolderSyncState.objects.count() == 3
    assert not MailboxSettings.objects.filter(resync_requested_at__isnull=False).exists()
    assert getattr(ExchangeConfig.load(), field) != value


def test_the_interval_and_notifications_save_while_a_sync_runs(mailboxes):
    start_sync(mailboxes[0])
    config = edited(sync_interval_minutes=45, notification_emails="ops@example.com")

    save_config(config, changed=["sync_interval_minutes", "notification_emails"])

    saved = ExchangeConfig.load()
    assert (saved.sync_interval_minutes, saved.notification_emails) == (45, "ops@example.com")


def test_an_expired_lease_is_not_a_running_sync(mailboxes):
    start_sync(mailboxes[0], minutes=-1)

    assert not sync_running()
    save_config(edited(server_address="new.example.com"), changed=["server_address"])


def test_an_unsaved_configuration_keeps_the_installation_id():
    installation_id = ExchangeConfig.load().installation_id

    save_config(ExchangeConfig(server_address="mail.example.com"), changed=["server_address"])

    assert ExchangeConfig.objects.get().installation_id == installation_id


def test_reset_sync_state_drops_states_and_stamps_every_mailbox(mailboxes):
    assert reset_sync_state() == 3
    assert not FolderSyncState.objects.exists()
