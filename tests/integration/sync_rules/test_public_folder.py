"""The public contacts folder (EWS only): every active PSA contact in one public folder."""

from __future__ import annotations

from typing import Any

import pytest

from exchange_ext.engine.public_folder import run_public_folder_sync
from exchange_ext.models import PublicFolderLink, SyncRun
from exchange_ext.sandbox import items_xml
from psa.crm.actions import do_update_account, do_update_contact
from tests import clock
from tests.builders import make_account, make_contact
from tests.integration.sync_rules.rules import USER, Harness

pytestmark = pytest.mark.django_db


def public_contacts(rules: Harness) -> list[str]:
    store = rules.store
    folders = [
        f for f in store.child_folders(store._public_root.id) if f.display_name == "PSA contacts"
    ]
    assert len(folders) <= 1, "one public contacts folder, never a second"
    items: list[Any] = [item for f in folders for item in store.items_in(f.id)]
    return sorted(items_xml.item_to_fields(item)["given_name"] for item in items) if items else []


def sync_public(rules: Harness) -> SyncRun:
    run = run_public_folder_sync(now=clock.now())
    assert run is not None and run.outcome == SyncRun.Outcome.OK, run and run.error
    return run


@pytest.fixture
def ews(rules: Harness) -> Harness:
    if rules.kind == "graph":
        pytest.skip("no public folders in Graph (the Graph case is tested below)")
    rules.set(public_contacts_folder=True)
    # The sync account "NORTHWIND\svc-sync" has no SMTP login: it impersonates the first
    # enabled resource's mailbox to reach the organisation's public folders.
    rules.enrol(1)
    return rules


def test_all_active_contacts_are_in_one_public_contacts_folder(ews: Harness):
    make_contact(make_account(), first_name="Ann")
    make_contact(make_account(), first_name="Ben")
    make_contact(make_account(), first_name="Old", active=False)
    run = sync_public(ews)
    assert run.mailbox_settings is None and run.backend == "ews"
    assert public_contacts(ews) == ["Ann", "Ben"]


def test_a_second_run_writes_nothing(ews: Harness):
    make_contact(make_account(), first_name="Ann")
    sync_public(ews)
    ews.sandbox.state.requests.clear()
    run = sync_public(ews)
    assert run.counts == {}
    assert ews.writes() == {}
    assert public_contacts(ews) == ["Ann"]


def test_an_account_manager_change_does_not_matter_for_the_public_folder(ews: Harness):
    manager, successor = ews.enrol(2).resource, ews.enrol(3).resource
    account = make_account(account_manager=manager)
    make_contact(account, first_name="Ann")
    sync_public(ews)
    do_update_account(USER, account, account_manager=successor)
    ews.sandbox.state.requests.clear()
    run = sync_public(ews)
    assert run.counts == {} and ews.writes() == {}
    assert public_contacts(ews) == ["Ann"]


def test_an_inactive_contact_is_removed_and_a_changed_one_updated(ews: Harness):
    ann = make_contact(make_account(), first_name="Ann")
    ben = make_contact(make_account(), first_name="Ben")
    sync_public(ews)
    do_update_contact(USER, ann, active=False)
    do_update_contact(USER, ben, first_name="Benjamin")
    run = sync_public(ews)
    assert run.counts == {"contact": {"exchange": {"deleted": 1, "updated": 1}}}
    assert public_contacts(ews) == ["Benjamin"]
    assert list(PublicFolderLink.objects.values_list("psa_id", flat=True)) == [ben.pk]


def test_with_graph_the_job_is_a_no_op(rules: Harness):
    if rules.kind != "graph":
        pytest.skip("the Graph case")
    rules.set(public_contacts_folder=True)
    rules.enrol(1)
    make_contact(make_account(), first_name="Ann")
    rules.sandbox.state.requests.clear()
    assert run_public_folder_sync(now=clock.now()) is None
    assert rules.log() == [] and not SyncRun.objects.exists()
