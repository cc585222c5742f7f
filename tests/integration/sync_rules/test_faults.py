"""Faults on the wire: a truncated change page, an expired sync state and throttling."""

from __future__ import annotations

import time

import pytest

from exchange_ext.models import FolderSyncState, MailboxSettings, SyncRun
from psa.scheduling.models import Appointment
from tests.builders import make_appointment
from tests.clock import day
from tests.integration.sync_rules.rules import Harness

pytestmark = pytest.mark.django_db


def states(tech) -> dict[str, str]:
    return dict(
        FolderSyncState.objects.filter(mailbox_settings=tech).values_list("folder", "state")
    )


def test_a_truncated_change_page_fails_the_run_without_advancing_the_state_or_losing_items(
    rules: Harness,
):
    tech = rules.enrol(1)
    make_appointment(tech.resource, day(1, "09:00"), title="Visit")
    rules.sync(tech)
    rules.quiet(tech)
    before = states(tech)
    for n in range(3):
        rules.outlook_create(tech, f"Meeting {n}", day(2, f"{9 + n:02d}:00"))
    rules.fault(kind="truncate", operation=rules.read_operation, bytes=400)
    run = rules.sync(tech)
    assert run.outcome in (SyncRun.Outcome.FAILED, SyncRun.Outcome.PARTIAL)
    assert states(tech) == before
    assert Appointment.objects.count() == 1
    run = rules.sync(tech)
    assert run.counts == {"appointment": {"psa": {"created": 3}}}
    assert Appointment.objects.count() == 4
    rules.quiet(tech)


def expire_sync_states(rules: Harness) -> None:
    if rules.kind == "ews":
        # The sandbox signs its SyncFolderItems states with a per-store secret: a new secret
        # invalidates every state issued, as a server-side eviction does.
        import secrets

        rules.store._secret = secrets.token_bytes(32)
    else:
        rules.fault(kind="delta_gone", operation=rules.read_operation, count=None)


def test_an_expired_sync_state_rereads_everything_and_duplicates_nothing(rules: Harness):
    tech = rules.enrol(1)
    for n in range(3):
        make_appointment(tech.resource, day(1, f"{9 + n:02d}:00"), title=f"Visit {n}")
    rules.outlook_create(tech, "Dentist", day(2, "15:00"))
    rules.sync(tech)
    rules.quiet(tech)
    expire_sync_states(rules)
    rules.sandbox.state.requests.clear()
    run = rules.sync(tech)
    rules.sandbox.state.faults.clear()
    assert run.outcome == SyncRun.Outcome.OK, run.error
    assert run.counts == {}
    assert rules.writes() == {}
    assert len(rules.items(tech)) == 4
    tags = rules.tags(tech)
    assert len(tags) == len(set(tags)) == 3
    assert Appointment.objects.count() == 4
    rules.quiet(tech)


def throttle(rules: Harness) -> None:
    if rules.kind == "ews":
        rules.fault(kind="server_busy", operation=rules.read_operation, back_off_ms=1000)
    else:
        rules.fault(kind="http_status", status=429, retry_after=1, operation=rules.read_operation)


def test_throttling_within_the_budget_is_honoured_and_is_not_a_failure(rules: Harness):
    tech = rules.enrol(1)
    make_appointment(tech.resource, day(1, "09:00"), title="Visit")
    throttle(rules)
    started = time.monotonic()
    run = rules.sync(tech)
    assert run.outcome == SyncRun.Outcome.OK, run.error
    assert time.monotonic() - started >= 1.0
    assert run.counts == {"appointment": {"exchange": {"created": 1}}}
    settings = MailboxSettings.objects.get(pk=tech.pk)
    assert (settings.status, settings.last_error, settings.consecutive_failures) == ("ok", "", 0)
    reads = rules.log(rules.read_operation)
    assert reads[0]["fault"] and not reads[1]["fault"]
    rules.quiet(tech)
