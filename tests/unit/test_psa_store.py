"""Reading a resource's PSA state for the planner: scope, toggles, constant queries."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from exchange_ext.engine import psa_store
from exchange_ext.models import ExchangeConfig, MailboxSettings
from exchange_ext.sync.records import ImportMode, ItemKind
from exchange_ext.sync.windows import window_for
from tests import clock
from tests.builders import (
    make_account,
    make_appointment,
    make_contact,
    make_resource,
    make_service_call,
    make_ticket,
    make_todo,
)
from tests.clock import day

pytestmark = pytest.mark.django_db


def load(mailbox: MailboxSettings):
    options = psa_store.sync_options(ExchangeConfig.load(), mailbox)
    return psa_store.load_psa_items(mailbox, options, window_for(options, clock.now()))


def populate(resource, n: int) -> None:
    account = make_account(account_manager=resource)
    for i in range(n):
        make_appointment(resource, day(1, f"0{i % 9}:00"), title=f"A{i}")
        make_todo(resource, account=account)
        call = make_service_call([resource], account=account)
        call.tickets.add(make_ticket())
        make_contact(account)


def queries_to_load(mailbox) -> int:
    with CaptureQueriesContext(connection) as captured:
        load(mailbox)
    return len(captured)


def test_loading_takes_the_same_number_of_queries_for_2_and_20_items():
    small = MailboxSettings.objects.create(resource=make_resource(), sync_enabled=True)
    large = MailboxSettings.objects.create(resource=make_resource(), sync_enabled=True)
    populate(small.resource, 2)
    populate(large.resource, 20)
    assert len(load(large)) == 80
    assert queries_to_load(small) == queries_to_load(large)


def test_items_that_ended_before_the_window_are_not_loaded_unless_linked():
    mailbox = MailboxSettings.objects.create(resource=make_resource(), sync_enabled=True)
    make_appointment(mailbox.resource, day(-52, "09:00"))
    make_appointment(mailbox.resource, day(-1, "09:00"))
    assert [key.kind for key in load(mailbox)] == [ItemKind.APPOINTMENT]


def test_toggles_of_the_config_and_the_profile_decide_the_kinds():
    config = ExchangeConfig.load()
    config.sync_todos = False
    config.save()
    mailbox = MailboxSettings.objects.create(
        resource=make_resource(), sync_enabled=True, export_service_calls=False,
        import_appointments=False,
    )  # fmt: skip
    options = psa_store.sync_options(config, mailbox)
    assert options.export_kinds == {ItemKind.APPOINTMENT, ItemKind.CONTACT}
    assert options.import_mode is ImportMode.NONE
    populate(mailbox.resource, 1)
    assert {key.kind for key in load(mailbox)} == {ItemKind.APPOINTMENT, ItemKind.CONTACT}


def test_service_call_keys_name_the_resource_whose_copy_they_are():
    mailbox = MailboxSettings.objects.create(resource=make_resource(), sync_enabled=True)
    call = make_service_call([mailbox.resource, make_resource()])
    (key,) = [k for k in load(mailbox) if k.kind is ItemKind.SERVICE_CALL]
    assert (key.psa_id, key.resource_id) == (call.pk, mailbox.resource_id)
