"""PSA → Exchange: each kind is exported with the tag, and a second run writes nothing."""

from __future__ import annotations

import pytest

from exchange_ext.models import ItemLink, SyncRun
from tests.builders import (
    make_account,
    make_appointment,
    make_contact,
    make_service_call,
    make_todo,
)
from tests.clock import day
from tests.integration.sync_rules.rules import Harness

pytestmark = pytest.mark.django_db


def test_each_kind_is_exported_with_its_tag_and_a_second_run_writes_nothing(rules: Harness):
    tech = rules.enrol(1)
    make_appointment(tech.resource, day(1, "09:00"), title="Site visit")
    make_todo(tech.resource, day(1, "14:00"))
    call = make_service_call([tech.resource], day(2, "08:00"))
    make_contact(make_account(account_manager=tech.resource), first_name="Ann")
    run = rules.sync(tech)
    assert run.outcome == SyncRun.Outcome.OK, run.error
    assert run.counts == {
        "appointment": {"exchange": {"created": 1}},
        "todo": {"exchange": {"created": 1}},
        "service_call": {"exchange": {"created": 1}},
        "contact": {"exchange": {"created": 1}},
    }
    subjects = rules.subjects(tech)
    assert "Site visit" in subjects and f"Service call: {call.account.name}" in subjects
    assert len(subjects) == 3
    assert rules.subjects(tech, "contacts") == ["Ann"]
    tags = rules.tags(tech) + rules.tags(tech, "contacts")
    assert len(tags) == len(set(tags)) == 4
    assert ItemLink.objects.filter(mailbox_settings=tech).count() == 4
    rules.quiet(tech)
    assert rules.outbox() == []
