"""Preview next sync (SPEC §3.3) against the sandbox over EWS and Graph: the preview lists the
ops the next run performs, makes no write request, and leaves the mailbox, the links, the sync
states and cursors and the runs exactly as they were."""

from __future__ import annotations

import json
from typing import Any

import pytest

from exchange_ext.engine.preview import Preview, preview_sync
from exchange_ext.models import (
    FolderSyncState,
    FullReadSeen,
    HeldDeletion,
    ItemLink,
    MailboxSettings,
    SyncRun,
)
from psa.audit.models import AuditEntry
from psa.scheduling.actions import do_delete_appointment, do_update_appointment
from tests import clock
from tests.builders import make_appointment, make_todo
from tests.clock import day
from tests.integration.sync_rules.rules import USER, Harness, iso

pytestmark = pytest.mark.django_db


def preview(rules: Harness, mailbox: MailboxSettings) -> Preview:
    return preview_sync(mailbox.pk, now=clock.now())


def snapshot(rules: Harness, mailbox: MailboxSettings) -> dict[str, Any]:
    """The database rows a preview must not touch, and the mailbox as the sandbox holds it."""
    return {
        "mailbox": list(MailboxSettings.objects.filter(pk=mailbox.pk).values()),
        "links": list(ItemLink.objects.order_by("pk").values()),
        "states": list(FolderSyncState.objects.order_by("pk").values()),
        "seen": list(FullReadSeen.objects.order_by("pk").values()),
        "held": list(HeldDeletion.objects.order_by("pk").values()),
        "runs": SyncRun.objects.count(),
        "audit": AuditEntry.objects.count(),
        "exchange": json.dumps(
            {folder: rules.items(mailbox, folder) for folder in ("calendar", "contacts")},
            sort_keys=True,
            default=str,
        ),
    }


def totals(run: SyncRun) -> dict[str, dict[str, int]]:
    summed = {
        side: dict.fromkeys(("created", "updated", "deleted"), 0) for side in ("psa", "exchange")
    }
    for sides in run.counts.values():
        for side, actions in sides.items():
            for action, count in actions.items():
                summed[side][action] += count
    return summed


def test_a_preview_shows_the_next_runs_writes_and_makes_no_write_request(rules: Harness):
    tech = rules.enrol(1)
    edited = make_appointment(tech.resource, day(1, "09:00"), title="Edited")
    gone = make_appointment(tech.resource, day(1, "11:00"), title="Gone")
    make_appointment(tech.resource, day(2, "09:00"), title="Kept")
    make_todo(tech.resource, day(1, "14:00"))
    rules.outlook_create(tech, "Dentist", day(2, "15:00"))
    assert rules.sync(tech).outcome == SyncRun.Outcome.OK
    do_update_appointment(USER, edited, location="Room 2")
    do_delete_appointment(USER, gone)
    make_appointment(tech.resource, day(3, "10:00"), title="New in the PSA")
    synced = {"Edited", "Gone", "Kept", "Dentist"}
    todo = next(i for i in rules.items(tech) if i.get("subject") not in synced)
    rules.outlook_update(tech, todo["id"], start=iso(day(1, "16:00")), end=iso(day(1, "17:00")))
    rules.outlook_create(tech, "Board meeting", day(2, "10:00"))
    before = snapshot(rules, tech)
    rules.sandbox.state.requests.clear()
    shown = preview(rules, tech)
    assert rules.writes() == {}
    assert snapshot(rules, tech) == before
    assert shown.complete, shown.error
    assert shown.counts() == {
        "psa": {"created": 1, "updated": 1, "deleted": 0},
        "exchange": {"created": 1, "updated": 1, "deleted": 1},
    }
    run = rules.sync(tech)
    assert run.outcome == SyncRun.Outcome.OK, run.error
    assert totals(run) == shown.counts()
    assert preview(rules, tech).total == 0
    rules.quiet(tech)


def test_a_first_preview_stores_no_sync_state_and_matches_the_first_run(rules: Harness):
    tech = rules.enrol(2)
    for n in range(4):
        make_appointment(tech.resource, day(1 + n, "09:00"), title=f"Visit {n}")
    rules.outlook_create(tech, "Dentist", day(2, "15:00"))
    before = snapshot(rules, tech)
    rules.sandbox.state.requests.clear()
    shown = preview(rules, tech)
    assert rules.writes() == {}
    assert snapshot(rules, tech) == before and not FolderSyncState.objects.exists()
    run = rules.sync(tech)
    assert totals(run) == shown.counts()
    assert shown.counts()["exchange"]["created"] == 4
    assert shown.counts()["psa"]["created"] == 1


def test_a_server_failure_during_a_preview_shows_the_error_and_changes_nothing(rules: Harness):
    tech = rules.enrol(1)
    make_appointment(tech.resource, day(1, "09:00"), title="Visit")
    rules.sync(tech)
    make_appointment(tech.resource, day(2, "09:00"), title="Later")
    before = snapshot(rules, tech)
    rules.fault(kind="truncate", operation=rules.read_operation, bytes=400)
    shown = preview(rules, tech)
    assert shown.error and shown.total == 0
    assert snapshot(rules, tech) == before
