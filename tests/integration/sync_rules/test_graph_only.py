"""Microsoft Graph only (issue 7): Retry-After honoured, 410 on a delta token, the delta range
rolling over, a create whose response was lost, and a mailbox switched from EWS to Graph."""

from __future__ import annotations

import datetime as dt

import pytest
import requests
from django.core import mail

from exchange_ext.models import ItemLink, SyncRun
from psa.scheduling.models import Appointment
from tests import clock
from tests.builders import make_account, make_appointment, make_contact, make_todo
from tests.clock import day
from tests.integration.sync_rules.rules import Harness

pytestmark = pytest.mark.django_db


@pytest.fixture
def backend_kind() -> str:
    return "graph"


def control(rules: Harness, method: str, path: str) -> None:
    session = requests.Session()
    session.trust_env = False
    url = f"{rules.sandbox.control_url}/{path}"
    reply = session.request(method, url, headers=rules.sandbox.control_headers,
                            verify=str(rules.sandbox.ca_file), timeout=10)  # fmt: skip
    assert reply.status_code < 300, reply.text


def started_at(entry: dict) -> dt.datetime:
    ended = dt.datetime.fromisoformat(entry["time"])
    return ended - dt.timedelta(milliseconds=entry["duration_ms"])


def test_a_429_retry_after_is_waited_out_before_the_next_request_and_sends_no_email(
    rules: Harness,
):
    tech = rules.enrol(1)
    make_appointment(tech.resource, day(1, "09:00"), title="Visit")
    rules.fault(kind="http_status", status=429, retry_after=2, operation=rules.read_operation)
    run = rules.sync(tech)
    assert run.outcome == SyncRun.Outcome.OK, run.error
    entries = [e for e in rules.log() if not e.get("in_batch")]
    throttled = next(i for i, e in enumerate(entries) if e["status"] == 429)
    retry = entries[throttled + 1]
    waited = started_at(retry) - dt.datetime.fromisoformat(entries[throttled]["time"])
    assert waited >= dt.timedelta(seconds=1.9)
    assert mail.outbox == []


@pytest.mark.parametrize("how", ["expired tokens", "resyncRequired"])
def test_a_410_on_the_delta_token_resyncs_without_duplicates(rules: Harness, how: str):
    tech = rules.enrol(1)
    make_appointment(tech.resource, day(1, "09:00"), title="Visit")
    rules.outlook_create(tech, "Dentist", day(2, "15:00"))
    rules.sync(tech)
    rules.quiet(tech)
    if how == "expired tokens":
        control(rules, "DELETE", "graph/delta-tokens")
    else:
        rules.fault(kind="delta_gone", code="resyncRequired", operation=rules.read_operation)
    rules.sandbox.state.requests.clear()
    run = rules.sync(tech)
    assert run.outcome == SyncRun.Outcome.OK, run.error
    assert any(e["status"] == 410 for e in rules.log(rules.read_operation))
    assert run.counts == {} and rules.writes() == {}
    assert rules.subjects(tech) == ["Dentist", "Visit"]
    assert Appointment.objects.count() == 2
    rules.quiet(tech)


def test_the_delta_range_rolling_over_forgets_what_left_the_window_and_deletes_nothing(
    rules: Harness,
):
    tech = rules.enrol(1)
    make_appointment(tech.resource, day(1, "09:00"), title="Old visit")
    make_appointment(tech.resource, day(13, "09:00"), title="Later visit")
    rules.outlook_create(tech, "Old dentist", day(1, "15:00"))
    rules.outlook_create(tech, "Later dentist", day(13, "15:00"))
    rules.sync(tech)
    later = clock.now() + dt.timedelta(days=10)  # another week: the delta range is re-anchored
    rules.sandbox.state.requests.clear()
    run = rules.sync(tech, now=later)
    assert run.outcome == SyncRun.Outcome.OK, run.error
    assert run.counts == {} and rules.writes() == {}
    assert len(rules.items(tech)) == 4
    assert Appointment.objects.count() == 4
    linked = set(ItemLink.objects.values_list("psa_id", flat=True))
    assert linked == set(
        Appointment.objects.filter(title__startswith="Later").values_list("pk", flat=True)
    )
    rules.quiet(tech, now=later)


def test_a_create_whose_response_was_lost_is_retried_with_its_transaction_id_into_one_event(
    rules: Harness,
):
    tech = rules.enrol(1)
    make_appointment(tech.resource, day(1, "09:00"), title="Visit")
    rules.fault(kind="reset_after", operation="graph:batch")
    run = rules.sync(tech)
    assert run.outcome == SyncRun.Outcome.OK, run.error
    assert [e["status"] for e in rules.log("graph:batch")][:2] == [0, 200]
    assert len(rules.log(rules.create_operation)) == 2  # the same create, sent twice
    assert rules.subjects(tech) == ["Visit"]
    assert len(rules.tags(tech)) == 1
    rules.quiet(tech)


def test_a_mailbox_switched_from_ews_to_graph_makes_no_creates(rules: Harness):
    rules.configure("ews")
    tech = rules.enrol(1)
    for n in range(3):
        make_appointment(tech.resource, day(1, f"{9 + n:02d}:00"), title=f"Visit {n}")
    make_todo(tech.resource)
    make_contact(make_account(account_manager=tech.resource), first_name="Ann")
    rules.outlook_create(tech, "Dentist", day(2, "15:00"))
    assert rules.sync(tech).backend == "ews"
    links = ItemLink.objects.count()
    rules.configure("graph")
    rules.sandbox.state.requests.clear()
    run = rules.sync(tech)
    assert (run.outcome, run.backend) == (SyncRun.Outcome.OK, "graph"), run.error
    assert run.counts == {}
    assert rules.writes() == {}
    assert ItemLink.objects.count() == links
    assert len(rules.items(tech)) == 5 and rules.subjects(tech, "contacts") == ["Ann"]
    assert Appointment.objects.count() == 4
    rules.quiet(tech)
