"""The dispatcher, the schedule, the timing check and the prompt-sync signal, in-process.

Runs are simulated by stamping what the engine stamps (``last_attempt_at`` at the claim), so a
test sweeps hours of dispatcher clock in milliseconds.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

import pytest
from django.core.checks import run_checks
from django_q.models import OrmQ, Schedule

from exchange_ext import tasks
from exchange_ext.jobs import dispatcher, watchdog
from exchange_ext.jobs.schedules import (
    DISPATCH_SCHEDULE,
    WATCHDOG_SCHEDULE,
    ensure_schedules,
    schedules_in_place,
)
from exchange_ext.models import ExchangeConfig, MailboxSettings, SyncRun
from exchange_ext.web.enrollment import set_enabled_resources
from psa.audit.origin import Origin
from psa.scheduling.actions import do_update_appointment
from tests.builders import make_appointment, make_resource
from tests.clock import now

pytestmark = pytest.mark.django_db


def _enabled(count: int) -> list[int]:
    ExchangeConfig.load()  # the row the tests update
    resources = [make_resource(f"disp{n}") for n in range(count)]
    return sorted(s.pk for s in set_enabled_resources([r.pk for r in resources], []))


def _run(ids: list[int], at: dt.datetime) -> None:
    """What a worker does to the rows: starts the task, claims, finishes OK."""
    for pk in ids:
        MailboxSettings.objects.filter(pk=pk).update(
            queued_at=None, last_attempt_at=at, status="ok", sync_requested_at=None
        )


def _sweep(start: dt.datetime, minutes: int, *, lag: dt.timedelta) -> Counter[int]:
    """Tick once a minute; each queued sync "runs" ``lag`` of real time later (may be < 0)."""
    queued: Counter[int] = Counter()
    for minute in range(1, minutes + 1):
        now = start + dt.timedelta(minutes=minute)
        ids = dispatcher.queue_due(now)
        queued.update(ids)
        _run(ids, now + lag)
    return queued


def test_every_resource_is_queued_once_per_interval_spread_evenly(
    django_capture_on_commit_callbacks,
):
    ids = _enabled(40)
    ExchangeConfig.objects.filter(pk=1).update(sync_interval_minutes=10)
    with django_capture_on_commit_callbacks(execute=True):
        first = dispatcher.queue_due(now())
    assert first == ids  # never synced: all at once (they were just enabled)
    assert OrmQ.objects.count() == 40  # one task each, sent after commit
    _run(ids, now())
    per_minute = [len(dispatcher.queue_due(now() + dt.timedelta(minutes=m))) for m in range(1, 11)]
    # Spread: 40 resources over a 10-minute interval is 4 a minute, never a herd.
    assert sum(per_minute) == 40 and max(per_minute) <= 6, per_minute


@pytest.mark.parametrize(
    "lag", [dt.timedelta(seconds=-20), dt.timedelta(0), dt.timedelta(seconds=50)]
)
def test_a_slot_is_served_once_whatever_the_worker_clock(lag):
    # A worker whose clock runs behind (or a late run) must not make its slot look unserved.
    ids = _enabled(25)
    ExchangeConfig.objects.filter(pk=1).update(sync_interval_minutes=10)
    _run(dispatcher.queue_due(now()), now())
    queued = _sweep(now(), 30, lag=lag)
    assert queued == Counter({pk: 3 for pk in ids})


def test_queued_means_queued_once_until_the_task_starts():
    (pk,) = _enabled(1)
    assert dispatcher.enqueue_sync(pk, "sync_now", now())
    assert not dispatcher.enqueue_sync(pk, "sync_now", now() + dt.timedelta(seconds=5))
    assert dispatcher.queue_due(now() + dt.timedelta(minutes=20)) == []  # due, but queued
    dispatcher.mark_done(pk, now() - dt.timedelta(seconds=1))  # an older task: not its mark
    assert not dispatcher.enqueue_sync(pk, "sync_now", now() + dt.timedelta(seconds=6))
    dispatcher.mark_done(pk, now() + dt.timedelta(seconds=5))  # the task ended without running
    assert dispatcher.enqueue_sync(pk, "sync_now", now() + dt.timedelta(seconds=6))
    # A task lost with its worker (Redis) is presumed gone after retry + timeout.
    later = now() + dispatcher.queued_stale_after() + dt.timedelta(seconds=7)
    assert dispatcher.enqueue_sync(pk, "sync_now", later)


def test_failures_back_off_and_disabled_or_leased_mailboxes_are_left_alone():
    a, b, c = _enabled(3)
    ExchangeConfig.objects.filter(pk=1).update(sync_interval_minutes=10)
    _run([a, b, c], now())
    MailboxSettings.objects.filter(pk=a).update(status="failing", consecutive_failures=3)
    MailboxSettings.objects.filter(pk=b).update(status="disabled", consecutive_failures=1)
    MailboxSettings.objects.filter(pk=c).update(lease_expires_at=now() + dt.timedelta(days=1))
    queued = _sweep(now(), 60, lag=dt.timedelta(0))
    # 3 failures: every 4th slot (40 min apart) in an hour → at most 2; none for b and c.
    assert 1 <= queued[a] <= 2 and queued[b] == 0 and queued[c] == 0


def test_sync_now_requests_are_due_at_once():
    a, b = _enabled(2)
    # Halfway between two of a's slots, so no slot of a falls in the next 30 s whatever the
    # pinned clock says (slots depend on the time of day).
    period = ExchangeConfig.load().sync_interval_minutes * 60
    at = dispatcher.latest_slot(a, period, now()) + dt.timedelta(seconds=period / 2)
    _run([a, b], at)
    MailboxSettings.objects.filter(pk=b).update(sync_requested_at=at)
    assert dispatcher.queue_due(at + dt.timedelta(seconds=30)) == [b]


def test_nothing_is_due_when_the_integration_is_off():
    _enabled(2)
    ExchangeConfig.objects.filter(pk=1).update(enabled=False)
    assert dispatcher.queue_due(now()) == []


def test_sync_now_view_queues_a_task(client, django_capture_on_commit_callbacks):
    resource = make_resource("nowtech")
    set_enabled_resources([resource.pk], [])
    client.force_login(resource.user)
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/profile/exchange/sync/")
    row = MailboxSettings.objects.get(resource=resource)
    assert row.sync_requested_at is not None and row.queued_at is not None
    assert [t.func() for t in OrmQ.objects.all()] == [dispatcher.SYNC_TASK]


def test_a_psa_edit_queues_one_sync_and_a_sync_write_none(django_capture_on_commit_callbacks):
    resource = make_resource("sigtech")
    (pk,) = sorted(s.pk for s in set_enabled_resources([resource.pk], []))
    with django_capture_on_commit_callbacks(execute=True):
        appointment = make_appointment(resource, title="First")
        make_appointment(resource, title="Second")  # debounced: still one queued
    assert MailboxSettings.objects.get(pk=pk).queued_at is not None
    assert OrmQ.objects.count() == 1
    MailboxSettings.objects.filter(pk=pk).update(queued_at=None)  # its run claimed it
    with django_capture_on_commit_callbacks(execute=True):
        do_update_appointment(Origin.by_sync("exchange"), appointment, title="From Outlook")
    assert MailboxSettings.objects.get(pk=pk).queued_at is None  # no echo


def test_ensure_schedules_upserts_one_row_by_name():
    ensure_schedules()  # post_migrate already ran it for the test database
    ensure_schedules()
    rows = Schedule.objects.filter(name=DISPATCH_SCHEDULE)
    assert rows.count() == 1
    row = rows.get()
    assert (row.func, row.schedule_type, row.minutes, row.repeats) == (
        "exchange_ext.tasks.dispatch", Schedule.MINUTES, 1, -1,
    )  # fmt: skip
    watchdog = Schedule.objects.get(name=WATCHDOG_SCHEDULE)  # on its own, every five minutes
    assert (watchdog.func, watchdog.minutes, watchdog.repeats) == (
        "exchange_ext.tasks.watchdog", 5, -1,
    )  # fmt: skip
    assert schedules_in_place()
    Schedule.objects.filter(name=DISPATCH_SCHEDULE).update(repeats=0)  # altered in the admin
    assert not schedules_in_place()


def _errors(settings: Any, **q: Any) -> list[str]:
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, **q}
    return [m.id for m in run_checks() if m.id.startswith("exchange_ext.")]


def test_timing_check_requires_budget_below_timeout_below_lease_below_retry(settings, monkeypatch):
    assert _errors(settings) == []
    assert _errors(settings, timeout=200) == ["exchange_ext.E001"]  # 240 s budget + 120 s call
    assert _errors(settings, timeout=600, retry=600) == ["exchange_ext.E002"]
    assert _errors(settings, timeout=600, retry=605) == ["exchange_ext.E002"]  # lease 610 s
    monkeypatch.setenv("EXCHANGE_SYNC_BUDGET_SECONDS", "30")
    assert _errors(settings, timeout=170, retry=200) == []
    assert _errors(settings, timeout=170, retry=200, max_attempts=0) == ["exchange_ext.W001"]


def test_sync_task_skips_a_deleted_mailbox_quietly():
    assert tasks.sync_mailbox(987654) == "mailbox settings 987654 no longer exist"
    assert not SyncRun.objects.exists()


def test_status_page_lists_failing_resources_and_the_queue(client):
    from tests.builders import make_user

    a, _ = _enabled(2)
    MailboxSettings.objects.filter(pk=a).update(
        status="failing", last_error="The Exchange server could not be reached."
    )
    admin = make_user("statusadmin", is_superuser=True, is_staff=True)
    client.force_login(admin)
    response = client.get("/extensions/exchange/status/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "The Exchange server could not be reached." in body
    assert "waiting for a worker." in body and 'aria-current="page">Status' in body


def test_saving_the_connection_lifts_a_permanent_stop_and_requests_a_sync():
    a, b = _enabled(2)
    MailboxSettings.objects.filter(pk=a).update(status="disabled")
    dispatcher.after_config_saved(["sync_interval_minutes"])
    assert MailboxSettings.objects.get(pk=a).status == "disabled"  # not a connection change
    dispatcher.after_config_saved(["password"])
    rows = MailboxSettings.objects.filter(pk__in=[a, b])
    assert set(rows.values_list("status", flat=True)) == {"failing", "never"}
    assert all(r.sync_requested_at for r in rows)
    assert set(dispatcher.due_mailboxes(now())) == {a, b}


def test_the_dispatch_tick_marks_overdue_mailboxes_and_alerts_even_when_queuing_fails(
    monkeypatch, mailoutbox
):
    # docs/sync-rules.md, "Notifications": six intervals (at least an hour) without a sync.
    starved, fresh = _enabled(2)
    long_ago = now() - dt.timedelta(hours=3)
    ExchangeConfig.objects.filter(pk=1).update(
        notification_emails="it-ops@northwind.example", updated_at=long_ago
    )
    MailboxSettings.objects.filter(pk=starved).update(status="ok", last_success_at=long_ago)
    MailboxSettings.objects.filter(pk=fresh).update(status="ok", last_success_at=now())

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("dispatcher bug")

    monkeypatch.setattr(dispatcher, "queue_due", broken)
    assert tasks.dispatch() == "queued 0 syncs; 1 notification emails"  # never raises
    rows = dict(MailboxSettings.objects.values_list("pk", "status"))
    assert rows == {starved: "failing", fresh: "ok"}
    assert MailboxSettings.objects.get(pk=starved).last_error_kind == "SyncOverdue"
    assert len(mailoutbox) == 1 and "No sync has completed since" in mailoutbox[0].body


def test_the_watchdog_gives_a_just_queued_or_just_turned_on_mailbox_its_chance():
    [pk] = _enabled(1)
    long_ago = now() - dt.timedelta(hours=5)
    row = MailboxSettings.objects.filter(pk=pk)
    row.update(status="ok", last_success_at=long_ago)
    # The integration was turned back on just now (after a pause): the count starts afresh.
    assert watchdog.mark_overdue(now()) == 0
    ExchangeConfig.objects.filter(pk=1).update(updated_at=long_ago)
    # Reactivated after weeks: the dispatcher just queued it; its run gets the chance first.
    row.update(last_dispatched_at=now() - dt.timedelta(minutes=2))
    assert watchdog.mark_overdue(now()) == 0
    assert watchdog.mark_overdue(now() + dt.timedelta(minutes=15)) == 1
    assert row.get().status == "failing"
