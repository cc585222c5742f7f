"""Steady state: no meeting message is ever sent, and a quiet run writes nothing."""

from __future__ import annotations

import pytest

from exchange_ext.models import SyncRun
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


def test_no_meeting_messages_are_sent_and_quiet_runs_make_no_write_requests(rules: Harness):
    first, second = rules.enrol(1), rules.enrol(2)
    make_appointment(first.resource, day(1, "09:00"), title="Visit")
    make_todo(first.resource)
    make_service_call([first.resource, second.resource])
    make_contact(make_account(account_manager=first.resource))
    rules.outlook_create(first, "Dentist", day(2, "15:00"))
    for tech in (first, second):
        assert rules.sync(tech).outcome == SyncRun.Outcome.OK
    for _ in range(2):
        for tech in (first, second):
            rules.quiet(tech)
    assert rules.outbox() == []
