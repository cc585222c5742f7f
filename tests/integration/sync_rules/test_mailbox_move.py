"""Mailbox moves (docs/sync-rules.md, "Mailbox moves"), end to end over EWS and Graph: an
administrator gives tech1 another mailbox on the resource's page (after its real connection
test); the next run writes the PSA's items to the new mailbox, removes our copies from the old
one, finds imported items again by their UID, deletes nothing in the PSA and duplicates
nothing — also when a run dies halfway through the move."""

from __future__ import annotations

from typing import Any

import pytest

from exchange_ext.engine import moves
from exchange_ext.models import ItemLink, MailboxSettings, SyncRun
from exchange_ext.sandbox.server import SandboxHandle
from psa.scheduling.models import Appointment
from tests.builders import make_appointment
from tests.clock import day
from tests.exchange_ext.pages import client_for, make_exchange_admin
from tests.integration.sync_rules.rules import DOMAIN, Harness, daily_recurrence

pytestmark = pytest.mark.django_db
OLD, NEW = f"tech1@{DOMAIN}", f"tech3@{DOMAIN}"


def appointments() -> dict[int, tuple[str, object]]:
    return {a.pk: (a.title, a.start) for a in Appointment.objects.all()}


def calendar_of_tech1(rules: Harness) -> MailboxSettings:
    """tech1 with a PSA visit, an Outlook appointment and a three-day Outlook series, synced."""
    tech = rules.enrol(1)
    make_appointment(tech.resource, day(1, "09:00"), title="Visit")
    rules.outlook_create(tech, "Dentist", day(2, "15:00"))
    rules.outlook_create(
        tech, "Stand-up", day(1, "08:00"), hours=0.5,
        recurrence=daily_recurrence(day(1, "08:00"), 3),
    )  # fmt: skip
    assert rules.sync(tech).outcome == SyncRun.Outcome.OK
    assert Appointment.objects.count() == 5
    return tech


def migrate(rules: Harness, subject: str) -> None:
    """A copy of tech1's Outlook item in the new mailbox, with its UID (a mailbox migration)."""
    [item] = [i for i in calendar(rules.sandbox, OLD) if i.get("subject") == subject]
    fields = {key: item[key] for key in ("subject", "start", "end", "uid")}
    rules.store.backdoor_create(NEW, "calendar", fields)


def calendar(sandbox: SandboxHandle, address: str) -> list[dict[str, Any]]:
    return list(sandbox.state.store.backdoor_list(address, "calendar"))


def ours(rules: Harness, address: str) -> list[str]:
    return [i["subject"] for i in calendar(rules.sandbox, address) if i["extended_properties"]]


def administrator_moves(tech: MailboxSettings, address: str) -> MailboxSettings:
    """The resource's page, saved by an administrator with another address (the page tests the
    connection to it first)."""
    data = {"mailbox": address, "username": "", "password": "",
            "export_appointments": "on", "import_appointments": "on",
            "export_service_calls": "on", "export_todos": "on", "export_contacts": "on",
            "past_days": "", "recurring_days": ""}  # fmt: skip
    page = f"/extensions/exchange/resources/{tech.resource.pk}/"
    response = client_for(make_exchange_admin()).post(page, data)
    assert response.status_code == 302, response.content.decode()[:2000]
    return MailboxSettings.objects.get(pk=tech.pk)


def test_an_administrator_moving_the_mailbox_takes_the_items_along(rules: Harness):
    tech = calendar_of_tech1(rules)
    before = appointments()
    migrate(rules, "Dentist")  # the series was not migrated
    moved = administrator_moves(tech, NEW)
    assert (moved.mailbox, moved.previous_mailbox) == (NEW, OLD)
    run = rules.sync(moved)
    assert run.outcome == SyncRun.Outcome.OK, run.error
    assert run.counts == {"appointment": {"exchange": {"created": 1, "deleted": 1}}}
    assert ours(rules, OLD) == [] and ours(rules, NEW) == ["Visit"]
    assert sorted(i["subject"] for i in calendar(rules.sandbox, OLD)) == ["Dentist", "Stand-up"]
    assert appointments() == before  # nothing deleted in the PSA, nothing imported twice
    imported = ItemLink.objects.filter(origin="exchange")
    assert [link.psa_id for link in imported] == [  # found again in the new mailbox by its UID
        pk for pk, (title, _) in before.items() if title == "Dentist"
    ]
    assert MailboxSettings.objects.get(pk=tech.pk).previous_mailbox == ""
    rules.quiet(moved)


def test_a_run_killed_halfway_through_a_move_is_finished_by_the_next(
    rules: Harness, monkeypatch: pytest.MonkeyPatch
):
    tech = calendar_of_tech1(rules)
    before = appointments()
    moved = administrator_moves(tech, NEW)
    real = moves.links_after_move

    def killed(*args: Any) -> Any:
        raise SystemExit("the worker's task timeout")  # django-q's, at any line

    monkeypatch.setattr(moves, "links_after_move", killed)
    with pytest.raises(SystemExit):
        rules.sync(moved)
    assert ours(rules, OLD) == []  # our copies already left the old mailbox ...
    assert MailboxSettings.objects.get(pk=tech.pk).previous_mailbox == OLD  # ... the move not
    monkeypatch.setattr(moves, "links_after_move", real)
    run = rules.sync(MailboxSettings.objects.get(pk=tech.pk))
    assert run.outcome == SyncRun.Outcome.OK, run.error
    assert ours(rules, OLD) == [] and ours(rules, NEW) == ["Visit"]
    assert appointments() == before  # the imports not in the new mailbox stay, unlinked
    assert not ItemLink.objects.filter(origin="exchange").exists()
    rules.quiet(MailboxSettings.objects.get(pk=tech.pk))
