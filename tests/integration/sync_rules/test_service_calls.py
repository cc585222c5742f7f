"""Service calls: a copy per assigned resource; a removed resource loses its copy; completed
calls are shown as Free; Exchange edits never flow back."""

from __future__ import annotations

import pytest

from exchange_ext.models import SyncRun
from psa.scheduling.actions import do_update_service_call
from psa.scheduling.models import ServiceCall
from tests.builders import make_service_call
from tests.clock import day, zulu
from tests.integration.sync_rules.rules import USER, Harness, iso

pytestmark = pytest.mark.django_db


def test_a_service_call_with_three_resources_and_one_removed_deletes_that_copy(rules: Harness):
    techs = [rules.enrol(n) for n in (1, 2, 3)]
    call = make_service_call([t.resource for t in techs], day(2, "08:00"))
    for tech in techs:
        assert rules.sync(tech).counts == {"service_call": {"exchange": {"created": 1}}}
        assert rules.subjects(tech) == [f"Service call: {call.account.name}"]
    do_update_service_call(USER, call, resources=[techs[0].resource, techs[1].resource])
    runs = [rules.sync(tech) for tech in techs]
    assert [len(rules.items(t)) for t in techs] == [1, 1, 0]
    assert runs[2].counts == {"service_call": {"exchange": {"deleted": 1}}}
    assert runs[0].counts == {} and runs[1].counts == {}
    do_update_service_call(USER, ServiceCall.objects.get(), status="complete")
    for tech in techs[:2]:
        assert rules.sync(tech).counts == {"service_call": {"exchange": {"updated": 1}}}
        assert rules.items(tech)[0]["legacy_free_busy_status"] == "Free"
    for tech in techs:
        rules.quiet(tech)
    assert rules.outbox() == []


def test_outlook_edits_of_a_service_call_do_not_flow_back(rules: Harness):
    tech = rules.enrol(1)
    call = make_service_call([tech.resource], day(2, "08:00"))
    rules.sync(tech)
    [item] = rules.items(tech)
    rules.outlook_update(tech, item["id"], start=iso(day(2, "12:00")), end=iso(day(2, "13:00")))
    run = rules.sync(tech)
    assert run.outcome == SyncRun.Outcome.OK and run.counts == {}
    call.refresh_from_db()
    assert call.start == day(2, "08:00")
    do_update_service_call(USER, call, description="Replace the firewall and the switch")
    rules.sync(tech)
    [item] = rules.items(tech)
    assert item["start"] == zulu(day(2, "08:00"))
