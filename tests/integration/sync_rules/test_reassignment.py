"""A PSA appointment reassigned to another resource moves between mailboxes."""

from __future__ import annotations

import pytest

from exchange_ext.models import ItemLink
from psa.scheduling.actions import do_update_appointment
from tests.builders import make_appointment
from tests.clock import day
from tests.integration.sync_rules.rules import USER, Harness

pytestmark = pytest.mark.django_db


def test_a_reassigned_appointment_moves_from_the_old_mailbox_to_the_new_one(rules: Harness):
    first, second = rules.enrol(1), rules.enrol(2)
    appointment = make_appointment(first.resource, day(1, "09:00"), title="Visit")
    rules.sync(first)
    rules.sync(second)
    assert (rules.subjects(first), rules.subjects(second)) == (["Visit"], [])
    do_update_appointment(USER, appointment, resource=second.resource)
    old = rules.sync(first)
    new = rules.sync(second)
    assert old.counts == {"appointment": {"exchange": {"deleted": 1}}}
    assert new.counts == {"appointment": {"exchange": {"created": 1}}}
    assert (rules.subjects(first), rules.subjects(second)) == ([], ["Visit"])
    assert list(ItemLink.objects.values_list("mailbox_settings", flat=True)) == [second.pk]
    rules.quiet(first)
    rules.quiet(second)
