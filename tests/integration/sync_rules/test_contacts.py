"""Contacts follow the account manager: a new manager's mailbox gets them, the old one's loses
them; nothing flows back."""

from __future__ import annotations

import pytest

from psa.crm.actions import do_update_account
from tests.builders import make_account, make_contact, make_opportunity
from tests.integration.sync_rules.rules import USER, Harness

pytestmark = pytest.mark.django_db


def test_an_account_manager_change_moves_the_contacts_to_the_new_managers_mailbox(
    rules: Harness,
):
    old, new = rules.enrol(1), rules.enrol(2)
    account = make_account(account_manager=old.resource)
    make_contact(account, first_name="Ann")
    make_contact(account, first_name="Ben")
    make_contact(make_account(), first_name="Zed")  # nobody's
    assert rules.sync(old).counts == {"contact": {"exchange": {"created": 2}}}
    assert rules.sync(new).counts == {}
    assert rules.subjects(old, "contacts") == ["Ann", "Ben"]
    do_update_account(USER, account, account_manager=new.resource)
    assert rules.sync(old).counts == {"contact": {"exchange": {"deleted": 2}}}
    assert rules.sync(new).counts == {"contact": {"exchange": {"created": 2}}}
    assert (rules.subjects(old, "contacts"), rules.subjects(new, "contacts")) == (
        [], ["Ann", "Ben"],
    )  # fmt: skip
    rules.quiet(old)
    rules.quiet(new)


def test_opportunity_contacts_are_shared_and_outlook_edits_do_not_flow_back(rules: Harness):
    tech = rules.enrol(1)
    elsewhere = make_account()
    bob = make_contact(elsewhere, first_name="Bob", title="CTO")
    make_opportunity(elsewhere, tech.resource, contact=bob)
    rules.sync(tech)
    [item] = rules.items(tech, "contacts")
    rules.store.backdoor_update(tech.effective_mailbox, item["id"], {"given_name": "Robert"})
    assert rules.sync(tech).counts == {}
    bob.refresh_from_db()
    assert bob.first_name == "Bob"
