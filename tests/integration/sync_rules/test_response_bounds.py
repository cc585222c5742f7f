"""Hostile responses (SPEC §8, "bounded in size and depth"; exchange_ext/backends/limits.py): a
gzip bomb and a document nested too deeply fail the run with a clear error, read a bounded
amount, change nothing in the PSA, and the next run after the fault clears catches up."""

from __future__ import annotations

import re

import pytest

from exchange_ext.backends.base import ResponseTooLarge
from exchange_ext.backends.limits import MAX_DECODED_BYTES, MIB, READ_CHUNK
from exchange_ext.models import FolderSyncState, MailboxSettings, SyncRun
from psa.scheduling.models import Appointment
from tests.builders import make_appointment
from tests.clock import day
from tests.integration.sync_rules.rules import Harness

pytestmark = pytest.mark.django_db


def states(tech: MailboxSettings) -> dict[str, str]:
    return dict(
        FolderSyncState.objects.filter(mailbox_settings=tech).values_list("folder", "state")
    )


def synced_with_outlook_items(rules: Harness) -> MailboxSettings:
    """tech1 in sync with one PSA appointment, then three items created in Outlook."""
    tech = rules.enrol(1)
    make_appointment(tech.resource, day(1, "09:00"), title="Visit")
    rules.sync(tech)
    rules.quiet(tech)
    for n in range(3):
        rules.outlook_create(tech, f"Meeting {n}", day(2, f"{9 + n:02d}:00"))
    return tech


def assert_failed_clearly_and_lost_nothing(
    rules: Harness, tech: MailboxSettings, run: SyncRun, before: dict[str, str]
) -> None:
    assert run.outcome == SyncRun.Outcome.FAILED
    assert run.error.startswith(ResponseTooLarge.plain), run.error
    settings = MailboxSettings.objects.get(pk=tech.pk)
    assert (settings.status, settings.last_error_kind) == ("failing", "ResponseTooLarge")
    assert states(tech) == before  # no state built from the response
    assert list(Appointment.objects.values_list("title", flat=True)) == ["Visit"]
    assert len(rules.items(tech)) == 4  # nothing deleted on the Exchange side either


def assert_next_run_catches_up(rules: Harness, tech: MailboxSettings) -> None:
    rules.sandbox.state.faults.clear()
    run = rules.sync(tech)
    assert run.outcome == SyncRun.Outcome.OK, run.error
    assert run.counts == {"appointment": {"psa": {"created": 3}}}
    assert Appointment.objects.count() == 4
    assert MailboxSettings.objects.get(pk=tech.pk).status == "ok"
    rules.quiet(tech)


def test_a_gzip_bomb_fails_the_run_after_reading_a_bounded_amount_and_loses_nothing(
    rules: Harness,
):
    tech = synced_with_outlook_items(rules)
    before = states(tech)
    rules.fault(kind="gzip_bomb", operation=rules.read_operation, inflated_mib=256)
    run = rules.sync(tech)
    assert_failed_clearly_and_lost_nothing(rules, tech, run, before)
    # What was inflated before reading stopped: the limit and one chunk, not the 256 MiB.
    stopped = re.search(r"reading stopped after ([\d.]+) MiB decoded", run.error)
    assert stopped, run.error
    assert float(stopped[1]) <= round((MAX_DECODED_BYTES + READ_CHUNK) / MIB, 1)  # 64.1
    assert "gzip encoding" in run.error
    assert_next_run_catches_up(rules, tech)


def test_a_too_deeply_nested_answer_fails_the_run_and_loses_nothing(rules: Harness):
    tech = synced_with_outlook_items(rules)
    before = states(tech)
    rules.fault(kind="deep_document", operation=rules.read_operation)
    run = rules.sync(tech)
    assert_failed_clearly_and_lost_nothing(rules, tech, run, before)
    assert "nested" in run.error or "nests" in run.error
    assert_next_run_catches_up(rules, tech)


def test_a_hostile_answer_to_a_write_is_adopted_next_run_without_duplicates(rules: Harness):
    """The server applied the write but answered with a bomb: the run fails; the next run
    finds the tagged item and adopts it instead of creating it again."""
    tech = rules.enrol(1)
    make_appointment(tech.resource, day(1, "09:00"), title="Visit")
    write = "CreateItem" if rules.kind == "ews" else "graph:batch"
    rules.fault(kind="gzip_bomb", operation=write, inflated_mib=128, count=None)
    run = rules.sync(tech)
    assert run.outcome == SyncRun.Outcome.FAILED
    assert MailboxSettings.objects.get(pk=tech.pk).last_error_kind == "ResponseTooLarge"
    rules.sandbox.state.faults.clear()
    run = rules.sync(tech)
    assert run.outcome == SyncRun.Outcome.OK, run.error
    assert rules.subjects(tech) == ["Visit"]
    assert len(rules.tags(tech)) == 1
    rules.quiet(tech)
