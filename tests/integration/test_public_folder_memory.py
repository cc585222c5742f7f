"""The public contacts folder job over the ORM and a MemoryBackend.

The rules: docs/sync-rules.md, "Public contacts folder".
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest
from django_q.models import OrmQ

from exchange_ext import engine, tasks
from exchange_ext.backends import factory
from exchange_ext.backends.base import FolderKind, Unavailable
from exchange_ext.backends.memory import MemoryBackend
from exchange_ext.engine import leases, public_folder
from exchange_ext.jobs import dispatcher
from exchange_ext.models import (
    ExchangeConfig,
    ItemLink,
    MailboxSettings,
    PublicFolderLink,
    PublicFolderState,
    SyncRun,
)
from exchange_ext.sync.records import ContactRecord
from psa.audit.origin import Origin
from psa.crm.actions import do_delete_contact, do_update_contact
from psa.crm.models import Contact
from tests import clock
from tests.builders import make_account, make_contact, make_resource, make_user

pytestmark = pytest.mark.django_db

USER = Origin.by_system("tests")
SYNC_ACCOUNT = "svc-sync@northwind.example"


class Crash(Exception):
    """The worker died (simulated)."""


@pytest.fixture
def config() -> ExchangeConfig:
    config = ExchangeConfig.load()
    config.public_contacts_folder = True
    config.use_basic_auth, config.username = True, SYNC_ACCOUNT
    config.save()
    return config


@pytest.fixture
def backend(config) -> MemoryBackend:
    return MemoryBackend([SYNC_ACCOUNT], page_size=3)


def sync(backend: MemoryBackend, **kwargs) -> SyncRun | None:
    return public_folder.run_public_folder_sync(backend=backend, now=clock.now(), **kwargs)


def folder(backend: MemoryBackend) -> dict[str, ContactRecord]:
    """The public folder's contacts by surname."""
    items = backend.items_of(SYNC_ACCOUNT, FolderKind.PUBLIC_CONTACTS)
    return {item.record.surname: item.record for item in items}  # type: ignore[union-attr]


def contacts(n: int, **fields) -> list:
    account = make_account()
    return [make_contact(account, last_name=f"Person{i:02d}", **fields) for i in range(n)]


def test_every_active_contact_of_every_account_is_exported_once(backend):
    manager = make_resource("manager")
    make_contact(make_account(account_manager=manager), last_name="Ann")
    make_contact(make_account(), last_name="Ben", title="CFO")
    make_contact(make_account(), last_name="Old", active=False)
    run = sync(backend)
    assert run is not None and run.outcome == SyncRun.Outcome.OK, run.error
    assert run.mailbox_settings is None and run.is_public_folder
    assert run.counts == {"contact": {"exchange": {"created": 2}}}
    assert sorted(folder(backend)) == ["Ann", "Ben"]
    assert folder(backend)["Ben"].job_title == "CFO"
    assert PublicFolderLink.objects.count() == 2 and not ItemLink.objects.exists()
    tags = {str(i.psa_tag) for i in backend.items_of(SYNC_ACCOUNT, FolderKind.PUBLIC_CONTACTS)}
    assert all(tag.startswith(str(ExchangeConfig.load().installation_id)) for tag in tags)
    state = PublicFolderState.load()
    assert state.last_success_at and not state.last_error and state.lease_expires_at is None


def test_a_second_run_without_changes_writes_nothing(backend):
    contacts(7)
    sync(backend)
    writes = backend.writes()
    run = sync(backend)
    assert run is not None and (run.outcome, run.counts) == (SyncRun.Outcome.OK, {})
    assert backend.writes() == writes


def test_a_psa_change_updates_the_copy_and_overwrites_outlook_edits(backend):
    [ann] = contacts(1, first_name="Ann")
    sync(backend)
    [item] = backend.items_of(SYNC_ACCOUNT, FolderKind.PUBLIC_CONTACTS)
    edited = replace(item.record, given_name="Outlook")
    backend.edit(SYNC_ACCOUNT, item.exchange_id, edited)
    quiet = sync(backend)  # nothing flows back, and the edit is not overwritten yet
    assert quiet is not None and quiet.counts == {}
    assert folder(backend)["Person00"].given_name == "Outlook"
    do_update_contact(USER, ann, business_phone="+1 555 0100")
    run = sync(backend)
    assert run is not None and run.counts == {"contact": {"exchange": {"updated": 1}}}
    record = folder(backend)["Person00"]
    assert (record.given_name, record.business_phone) == ("Ann", "+1 555 0100")


def test_inactive_and_deleted_contacts_are_removed(backend):
    ann, ben, cid = contacts(3)
    sync(backend)
    do_update_contact(USER, ann, active=False)
    do_delete_contact(USER, ben)
    run = sync(backend)
    assert run is not None and run.counts == {"contact": {"exchange": {"deleted": 2}}}
    assert sorted(folder(backend)) == [cid.last_name]
    assert list(PublicFolderLink.objects.values_list("psa_id", flat=True)) == [cid.pk]


def test_an_outlook_delete_is_re_exported_on_the_next_psa_change(backend):
    [ann] = contacts(1)
    sync(backend)
    [item] = backend.items_of(SYNC_ACCOUNT, FolderKind.PUBLIC_CONTACTS)
    backend.remove(SYNC_ACCOUNT, item.exchange_id)
    assert sync(backend).counts == {}  # type: ignore[union-attr]
    assert folder(backend) == {}
    do_update_contact(USER, ann, title="CTO")
    sync(backend)
    assert folder(backend)["Person00"].job_title == "CTO"


def test_a_crash_before_the_links_are_saved_is_adopted_without_duplicates(backend, monkeypatch):
    contacts(5)

    def crash(changes):
        raise Crash("between create and link")

    monkeypatch.setattr(public_folder, "save_public_links", crash)
    with pytest.raises(Crash):
        sync(backend)
    failed = SyncRun.objects.get(mailbox_settings=None)
    assert failed.outcome == SyncRun.Outcome.FAILED
    assert PublicFolderState.load().lease_expires_at is None  # released
    assert len(folder(backend)) == 5 and not PublicFolderLink.objects.exists()
    monkeypatch.undo()
    writes = backend.writes()
    run = sync(backend)
    assert run is not None and (run.outcome, run.counts) == (SyncRun.Outcome.OK, {})
    assert backend.writes() == writes and len(folder(backend)) == 5
    assert PublicFolderLink.objects.count() == 5


def test_a_psa_that_suddenly_looks_empty_does_not_wipe_the_folder(backend):
    contacts(30)
    sync(backend)
    Contact.objects.update(active=False)
    run = sync(backend)
    assert run is not None and run.outcome == SyncRun.Outcome.GUARD_TRIPPED
    assert "Stopped before deleting 30" in run.error
    assert len(folder(backend)) == 30 and PublicFolderLink.objects.count() == 30
    assert "Stopped before deleting 30" in PublicFolderState.load().last_error


def test_turning_the_option_off_stops_syncing_and_leaves_the_items(config, backend):
    [ann, _] = contacts(2)
    sync(backend)
    config.public_contacts_folder = False
    config.save()
    do_update_contact(USER, ann, active=False)
    assert sync(backend) is None
    assert len(folder(backend)) == 2
    assert SyncRun.objects.filter(mailbox_settings=None).count() == 1


def test_a_backend_without_public_folders_is_a_quiet_no_op(config, caplog):
    contacts(2)
    graph_like = MemoryBackend([SYNC_ACCOUNT])
    graph_like.supports_public_folders = False
    with caplog.at_level("INFO", logger="exchange_ext.engine.public_folder"):
        assert sync(graph_like) is None
    assert "has no public folders" in caplog.text
    config.use_basic_auth, config.use_graph = False, True  # Office 365 with Graph
    config.save()
    assert public_folder.run_public_folder_sync(now=clock.now()) is None
    assert not public_folder.is_enabled(config)
    assert not SyncRun.objects.exists() and graph_like.writes() == 0


def test_backend_errors_are_the_run_outcome_and_never_raise(backend):
    contacts(2)
    backend.fail_next(Unavailable("connection reset"))
    run = sync(backend)
    assert run is not None and run.outcome == SyncRun.Outcome.FAILED
    assert "could not be reached" in PublicFolderState.load().last_error
    assert sync(backend).outcome == SyncRun.Outcome.OK  # type: ignore[union-attr]
    assert PublicFolderState.load().last_error == ""


def test_a_run_in_progress_makes_a_second_one_skip(backend):
    pk = PublicFolderState.load().pk
    token = leases.claim(pk, 60, model=PublicFolderState)
    run = sync(backend)
    assert run is not None and run.outcome == SyncRun.Outcome.SKIPPED
    leases.release(pk, token or 0, model=PublicFolderState)
    assert sync(backend).outcome == SyncRun.Outcome.OK  # type: ignore[union-attr]


def test_a_stale_worker_commits_nothing(backend, monkeypatch):
    contacts(2)
    real_check = leases.check

    def taken_over(pk, token, **kwargs):
        PublicFolderState.objects.filter(pk=pk).update(lease_token=token + 1)
        real_check(pk, token, **kwargs)

    monkeypatch.setattr(leases, "check", taken_over)
    run = sync(backend)
    assert run is not None and run.outcome == SyncRun.Outcome.FAILED
    assert not PublicFolderLink.objects.exists()


def test_the_anchor_mailbox_without_an_smtp_sync_account_is_the_first_enabled_one(config):
    config.username = "svc-sync"
    config.save()
    backend = MemoryBackend([SYNC_ACCOUNT])
    run = sync(backend)
    assert run is not None and run.outcome == SyncRun.Outcome.FAILED
    assert "No mailbox to open the public folder through" in run.error
    tech = make_resource("tech", email="tech@northwind.example")
    MailboxSettings.objects.create(resource=tech, sync_enabled=True)
    backend.add_mailbox("tech@northwind.example")
    contacts(1)
    assert sync(backend).outcome == SyncRun.Outcome.OK  # type: ignore[union-attr]
    assert len(backend.items_of("tech@northwind.example", FolderKind.PUBLIC_CONTACTS)) == 1


def test_public_links_never_clash_with_a_mailbox_s_contact_links(config, backend):
    """The same contact in a manager's Contacts folder and in the public folder."""
    manager = make_resource("manager", email="manager@northwind.example")
    mailbox = MailboxSettings.objects.create(resource=manager, sync_enabled=True)
    backend.add_mailbox("manager@northwind.example")
    make_contact(make_account(account_manager=manager), last_name="Shared")
    assert (
        engine.run_sync(mailbox.pk, backend=backend, now=clock.now()).outcome == SyncRun.Outcome.OK
    )
    sync(backend)
    assert ItemLink.objects.count() == 1 and PublicFolderLink.objects.count() == 1
    assert engine.run_sync(mailbox.pk, backend=backend, now=clock.now()).counts == {}
    assert sync(backend).counts == {}  # type: ignore[union-attr]


def test_a_missing_anchor_mailbox_is_reported(config):
    backend = MemoryBackend([])  # the anchor mailbox does not exist
    run = sync(backend)
    assert run is not None and run.outcome == SyncRun.Outcome.FAILED
    assert "mailbox was not found" in run.error


# --- operations: the dispatcher queues the job, the task runs it ------------------------------


def queued_tasks() -> list[str]:
    return [task.func() for task in OrmQ.objects.all()]


def test_the_dispatcher_queues_the_job_once_per_interval(
    config, django_capture_on_commit_callbacks
):
    def dispatch(at_time):
        with django_capture_on_commit_callbacks(execute=True):
            dispatcher.queue_due(at_time)

    dispatch(clock.now())
    dispatch(clock.now() + dt.timedelta(minutes=1))
    assert queued_tasks() == [public_folder.PUBLIC_FOLDER_TASK]
    dispatch(clock.now() + dt.timedelta(minutes=config.sync_interval_minutes))
    assert queued_tasks() == [public_folder.PUBLIC_FOLDER_TASK] * 2
    config.use_basic_auth, config.use_graph = False, True  # Graph: never
    config.save()
    dispatch(clock.now() + dt.timedelta(days=1))
    config.use_basic_auth, config.public_contacts_folder = True, False  # off: never
    config.save()
    dispatch(clock.now() + dt.timedelta(days=2))
    assert len(queued_tasks()) == 2


def test_the_dispatcher_does_not_queue_the_job_while_it_runs(config):
    leases.claim(PublicFolderState.load().pk, 3600, model=PublicFolderState)
    assert not public_folder.enqueue_public_folder(clock.now())


def test_the_task_runs_the_job(config, backend, monkeypatch):
    monkeypatch.setattr(factory, "backend_for", lambda config, mailbox_settings=None: backend)
    contacts(2)
    assert tasks.sync_public_folder() == "public contacts folder: ok"
    left = SyncRun.objects.create(
        mailbox_settings=None, started_at=clock.now() - dt.timedelta(days=1)
    )
    tasks.sync_public_folder()  # a run a killed worker left "running" is closed
    assert SyncRun.objects.get(pk=left.pk).outcome == SyncRun.Outcome.FAILED
    triggers = set(SyncRun.objects.exclude(pk=left.pk).values_list("trigger", flat=True))
    assert triggers == {SyncRun.Trigger.SCHEDULED}
    assert len(folder(backend)) == 2
    config.public_contacts_folder = False
    config.save()
    assert "not synced" in tasks.sync_public_folder()


def test_the_status_page_lists_the_job_s_runs(backend, client):
    contacts(1)
    sync(backend)
    client.force_login(make_user("statusadmin", is_superuser=True, is_staff=True))
    response = client.get("/extensions/exchange/status/")
    assert response.status_code == 200
    assert "Public contacts folder" in response.content.decode()
