"""A worker killed after Exchange created items but before their links were committed: the
rerun adopts the tagged items, never duplicates them."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from django.utils import timezone

from exchange_ext.models import ItemLink, MailboxSettings, SyncRun
from psa.scheduling.actions import do_delete_appointment
from tests import clock
from tests.builders import make_appointment
from tests.clock import day
from tests.integration.sync_rules.rules import USER, Harness
from tests.integration.sync_rules.worker import kill_worker_when, shared_database

pytestmark = pytest.mark.django_db(transaction=True)


def stall_deletes(rules: Harness) -> None:
    """The run's delete request hangs (then fails, applying nothing): the worker is caught
    between its creates and the commit of their links."""
    operation = "DeleteItem" if rules.kind == "ews" else "graph:events.delete"
    rules.fault(kind="latency", operation=operation, latency_ms=5000)
    if rules.kind == "ews":
        rules.fault(kind="reset_before", operation=operation)
    else:
        rules.fault(kind="http_status", status=503, operation=operation)


def created(rules: Harness) -> bool:
    return any(entry["status"] in (200, 201) for entry in rules.log(rules.create_operation))


def test_a_worker_killed_after_create_before_link_leaves_no_duplicate_on_rerun(
    rules: Harness, tmp_path: Path
):
    tech = rules.enrol(1)
    gone = make_appointment(tech.resource, day(1, "08:00"), title="Cancelled visit")
    rules.sync(tech)
    do_delete_appointment(USER, gone)
    for n in range(3):
        make_appointment(tech.resource, day(2, f"{9 + n:02d}:00"), title=f"Visit {n}")
    stall_deletes(rules)
    rules.sandbox.state.requests.clear()
    with shared_database(tmp_path) as database_url:
        kill_worker_when(database_url, tech.pk, clock.now(), lambda: created(rules))
    rules.sandbox.state.faults.clear()
    assert sorted(rules.subjects(tech)) == ["Cancelled visit", "Visit 0", "Visit 1", "Visit 2"]
    assert ItemLink.objects.count() == 1  # only the first run's link was committed
    # The dead worker's lease holds until it expires; then the next run takes over.
    assert rules.sync(tech).outcome == SyncRun.Outcome.SKIPPED
    MailboxSettings.objects.filter(pk=tech.pk).update(
        lease_expires_at=timezone.now() - dt.timedelta(seconds=1)
    )
    run = rules.sync(tech)
    assert run.outcome == SyncRun.Outcome.OK, run.error
    assert run.side_total("exchange", "created") == 0
    assert rules.subjects(tech) == ["Visit 0", "Visit 1", "Visit 2"]
    tags = rules.tags(tech)
    assert len(tags) == len(set(tags)) == 3
    assert ItemLink.objects.count() == 3
    rules.quiet(tech)
