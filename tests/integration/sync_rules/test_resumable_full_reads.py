"""A full read bigger than one run's budget (docs/sync-rules.md, "Scheduling, leases and
budgets"): over EWS and Graph with small pages, a resync spans several runs, each resuming at
the next page, and converges with no duplicate and nothing deleted."""

from __future__ import annotations

import dataclasses

import pytest
from django.utils import timezone

from exchange_ext.backends import factory
from exchange_ext.engine import cycle
from exchange_ext.models import ItemLink, MailboxSettings, SyncRun
from psa.scheduling.models import Appointment
from tests.builders import make_appointment
from tests.clock import day
from tests.integration.sync_rules.rules import Harness

pytestmark = pytest.mark.django_db

PAGE = 4


def test_a_resync_bigger_than_a_run_converges_over_several_runs(rules: Harness, monkeypatch):
    tech = rules.enrol(1)
    for n in range(9):
        make_appointment(tech.resource, day(1 + n % 3, f"{8 + n:02d}:00"), title=f"Visit {n}")
    for n in range(4):
        rules.outlook_create(tech, f"Dentist {n}", day(2 + n, "15:00"))
    assert rules.sync(tech).outcome == SyncRun.Outcome.OK
    subjects, links = sorted(rules.subjects(tech)), ItemLink.objects.count()
    assert len(subjects) == 13 and Appointment.objects.count() == 13

    # Small pages, each "taking" 100 s of the run's clock: a budget of 150 s reads two.
    now, full_reads = [0.0], []
    monkeypatch.setattr(cycle.time, "monotonic", lambda: now[0])
    field = "sync_page_size" if rules.kind == "ews" else "delta_page_size"
    build = factory.backend_for

    def small_pages(config, *, mailbox_settings=None):
        backend = build(config, mailbox_settings=mailbox_settings)
        backend.settings = dataclasses.replace(backend.settings, **{field: PAGE})
        open_session = backend.open_session

        def slow(mailbox):
            session = open_session(mailbox)
            read = session.read_changes

            def read_changes(folder, state, window, known=None):
                now[0] += 100
                page = read(folder, state, window, known)
                if page.full_read and folder.value == "calendar":
                    full_reads.append(state)
                return page

            session.read_changes = read_changes
            return session

        backend.open_session = slow
        return backend

    monkeypatch.setattr(factory, "backend_for", small_pages)
    MailboxSettings.objects.filter(pk=tech.pk).update(resync_requested_at=timezone.now())
    runs = [rules.sync(tech, budget_seconds=150)]
    while runs[-1].outcome == SyncRun.Outcome.PARTIAL and len(runs) < 10:
        runs.append(rules.sync(tech, budget_seconds=150))
    assert len(runs) >= 2 and runs[-1].outcome == SyncRun.Outcome.OK, [r.error for r in runs]
    assert full_reads[0] is None and full_reads.count(None) == 1  # begun once, then resumed
    assert len(full_reads) == len(set(full_reads)) >= 4  # no page read twice
    assert sorted(rules.subjects(tech)) == subjects  # no duplicate, nothing deleted
    assert Appointment.objects.count() == 13 and ItemLink.objects.count() == links
    tech.refresh_from_db()
    assert tech.resync_requested_at is None
    rules.quiet(tech)
