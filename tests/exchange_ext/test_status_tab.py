"""The Status tab's health at a glance (issue 15, item 7): runs per hour by outcome as an SVG
chart, the sync lag, the workers' heartbeat and the oldest queued task, in plain words.

The chart is read back from the page's SVG (each hour a ``<g data-hour>``, each outcome a
``<rect data-series data-count>``); its hour keys are the runs' own hours in the viewer's zone,
so a view that reads the clock a second later than :func:`tests.clock.now` sees the same bars.
"""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from exchange_ext.engine.runs import KEEP_RUNS, fold_into_hours, prune_runs
from exchange_ext.models import MailboxSettings, SyncRun, SyncRunHour
from exchange_ext.web.status_page import (
    CHART_HOURS,
    format_age,
    run_chart,
    status_page,
    sync_lag,
    workers,
)
from tests import clock
from tests.builders import at, make_admin, make_resource
from tests.exchange_ext.pages import client_for, enable

pytestmark = pytest.mark.django_db

BERLIN = ZoneInfo("Europe/Berlin")
STATUS = "/extensions/exchange/status/"
Outcome = SyncRun.Outcome


def run(settings: MailboxSettings | None, started: dt.datetime, outcome: str) -> SyncRun:
    return SyncRun.objects.create(
        mailbox_settings=settings, started_at=started, outcome=outcome,
        finished_at=None if outcome == Outcome.RUNNING else started + dt.timedelta(seconds=7),
    )  # fmt: skip


def hour_of(when: dt.datetime, zone: dt.tzinfo = BERLIN) -> dt.datetime:
    """The start of ``when``'s hour on ``zone``'s clock."""
    return when.astimezone(zone).replace(minute=0, second=0, microsecond=0)


def chart_of(html: str) -> tuple[ET.Element, dict[str, dict[str, Any]]]:
    """The page's chart SVG and, per hour key, its total and each series' count and height."""
    match = re.search(r'<svg class="xe-chart-svg".*?</svg>', html, re.S)
    assert match, "no chart on the page"
    svg = ET.fromstring(match.group(0))
    hours = {}
    for group in svg.iter("g"):
        rects = {r.get("data-series"): r for r in group.iter("rect") if r.get("data-series")}
        hours[group.get("data-hour")] = {
            "total": int(group.get("data-total")),
            "count": {s: int(r.get("data-count")) for s, r in rects.items()},
            "height": {s: float(r.get("height")) for s, r in rects.items()},
            "y": {s: float(r.get("y")) for s, r in rects.items()},
        }
    return svg, hours


@pytest.fixture
def admin():
    return make_admin("statusadmin")  # Europe/Berlin, the builders' default zone


def page_of(admin) -> str:
    response = client_for(admin).get(STATUS)
    assert response.status_code == 200
    return response.content.decode()


# ---- the chart -------------------------------------------------------------------------------


def test_the_chart_stacks_each_hour_s_runs_by_outcome_and_leaves_empty_hours_at_zero(admin):
    box = enable(admin)
    busy = hour_of(clock.now() - dt.timedelta(hours=30))  # an hour well inside the window
    for minute, outcome in enumerate([Outcome.OK] * 3 + [Outcome.PARTIAL, Outcome.FAILED]):
        run(box, busy + dt.timedelta(minutes=5 + minute * 9), outcome)
    quiet = hour_of(clock.now() - dt.timedelta(hours=100))
    for minute, outcome in enumerate(
        [Outcome.GUARD_TRIPPED, Outcome.GUARD_TRIPPED, Outcome.OK, Outcome.RUNNING, Outcome.SKIPPED]
    ):
        run(None if minute == 2 else box, quiet + dt.timedelta(minutes=minute * 10), outcome)
    run(box, clock.now() - dt.timedelta(days=7, hours=2), Outcome.OK)  # older than the window
    run(box, clock.now() - dt.timedelta(days=30), Outcome.FAILED)

    svg, hours = chart_of(page_of(admin))

    assert svg.get("viewBox") == f"0 0 {CHART_HOURS} 100" and len(hours) == CHART_HOURS == 168
    scale = int(svg.get("data-scale"))
    assert scale == 5  # the busiest hour has 5 runs
    assert hours[busy.isoformat()]["count"] == {"ok": 3, "failed": 2}
    assert hours[busy.isoformat()]["height"] == {"ok": 60.0, "failed": 40.0}
    assert hours[busy.isoformat()]["y"] == {"ok": 40.0, "failed": 0.0}  # stacked, ok at the bottom
    # The public contacts folder's run counts; running and skipped runs do not.
    assert hours[quiet.isoformat()]["count"] == {"ok": 1, "held": 2}
    assert hours[quiet.isoformat()]["height"] == {"ok": 20.0, "held": 40.0}
    others = [h for key, h in hours.items() if key not in {busy.isoformat(), quiet.isoformat()}]
    assert len(others) == 166 and all(h["total"] == 0 and not h["count"] for h in others)
    assert sum(h["total"] for h in hours.values()) == 8  # nothing older than 7 days


def test_the_chart_is_accessible_and_labels_days_in_the_viewer_s_language(admin):
    admin.language = "de"
    admin.save()
    run(enable(admin), clock.now() - dt.timedelta(hours=3), Outcome.OK)
    html = page_of(admin)
    svg, _ = chart_of(html)
    ids = svg.get("aria-labelledby").split()
    assert svg.get("role") == "img" and [e.get("id") for e in svg[:2]] == ids
    assert svg.find("title").text and "1" in svg.find("desc").text
    yesterday = clock.now().astimezone(BERLIN).date() - dt.timedelta(days=1)  # a whole day
    weekday = ["Mo", "Di", "Mi", "Do", "Fr", "Sa", "So"][yesterday.weekday()]
    month = ["Jan", "Feb", "Mär", "Apr", "Mai", "Jun", "Jul", "Aug", "Sep", "Okt", "Nov", "Dez"]
    assert f"<span>{weekday}</span> <span>{yesterday.day}. {month[yesterday.month - 1]}" in html
    assert html.count('class="xe-chart-daylabel"><span>') >= 6  # whole days, at least
    hidden = re.search(r'<table class="visually-hidden">.*?</table>', html, re.S).group(0)
    assert hidden.count("<tr>") == 1 + len(run_chart(clock.now(), BERLIN).days)


def test_an_empty_week_draws_168_empty_hours_and_says_so(admin):
    svg, hours = chart_of(html := page_of(admin))
    assert len(hours) == 168 and not any(h["total"] for h in hours.values())
    assert svg.get("data-scale") == "1"
    assert "No sync run ended in the last 7 days." in html


def test_hours_are_the_viewer_s_even_half_an_hour_off_utc():
    # 10:40 in Kolkata (UTC+5:30) is 05:10 UTC: the run belongs to Kolkata's 10:00 hour, which
    # a truncation in UTC (05:00 UTC = 10:30 local) would get wrong.
    kolkata = ZoneInfo("Asia/Kolkata")
    started = hour_of(clock.now() - dt.timedelta(hours=20), kolkata) + dt.timedelta(minutes=40)
    run(None, started, Outcome.OK)
    chart = run_chart(clock.now(), kolkata)
    [bar] = [bar for bar in chart.bars if bar.total]
    assert bar.start == hour_of(started, kolkata) and bar.start.minute == 0
    assert bar.start.utcoffset() == dt.timedelta(hours=5, minutes=30)


def test_the_autumn_s_repeated_hour_loses_no_run():
    # 25 Oct 2026, Berlin: 02:00–03:00 happens twice (CEST, then CET).
    now = at("2026-10-25 11:00")  # 12:00 CET
    run(None, at("2026-10-25 00:30"), Outcome.OK)  # 02:30 CEST
    run(None, at("2026-10-25 01:30"), Outcome.FAILED)  # 02:30 CET
    chart = run_chart(now, BERLIN)
    assert chart.total == 2
    day = next(day for day in chart.days if day.date == dt.date(2026, 10, 25))
    assert day.hours == 14 and day.ok == 1 and day.failed == 1  # 00:00 to 12:00, 02:00 twice
    first, second = (bar for bar in chart.bars if bar.start.day == 25 and bar.start.hour == 2)
    assert (first.ok, first.failed, second.total) == (1, 1, 0)  # both in the first 02:00 bar


def test_the_chart_is_one_aggregate_query_however_many_runs():
    box = enable(make_resource("busy"))
    SyncRun.objects.bulk_create(
        SyncRun(mailbox_settings=box, started_at=clock.now() - dt.timedelta(minutes=37 * n),
                outcome=Outcome.OK)
        for n in range(300)
    )  # fmt: skip
    with CaptureQueriesContext(connection) as queries:
        chart = run_chart(clock.now(), BERLIN)
    assert len(queries) == 2  # the stored runs' hours, and the pruned runs' hours
    assert chart.total == SyncRun.objects.filter(started_at__gte=chart.bars[0].start).count()


def test_pruned_runs_still_count_in_their_hour(admin):
    # A mailbox keeps its newest KEEP_RUNS runs; the older ones are folded into their hour's
    # count as they are deleted, so the week's chart still shows every run once.
    box = enable(admin)
    extra = 12
    for n in range(KEEP_RUNS + extra):
        outcome = Outcome.FAILED if n % 5 == 0 else Outcome.OK
        run(box, clock.now() - dt.timedelta(hours=n + 1, minutes=5), outcome)
    before = run_chart(clock.now(), BERLIN)
    prune_runs(box.pk)
    assert SyncRun.objects.filter(mailbox_settings=box).count() == KEEP_RUNS
    assert sum(SyncRunHour.objects.values_list("runs", flat=True)) == extra
    after = run_chart(clock.now(), BERLIN)
    assert [(b.start, b.ok, b.failed) for b in after.bars] == [
        (b.start, b.ok, b.failed) for b in before.bars
    ]
    assert after.total == KEEP_RUNS + extra
    _svg, hours = chart_of(page_of(admin))
    assert sum(h["total"] for h in hours.values()) == KEEP_RUNS + extra


def test_folding_adds_to_an_hour_already_counted_and_skips_running_runs():
    hour = clock.now().replace(minute=0, second=0) - dt.timedelta(hours=3)
    for minutes in (1, 20):
        run(None, hour + dt.timedelta(minutes=minutes), Outcome.OK)
        fold_into_hours(SyncRun.objects.filter(mailbox_settings=None))
        SyncRun.objects.filter(mailbox_settings=None).delete()
    run(None, hour + dt.timedelta(minutes=30), Outcome.RUNNING)
    fold_into_hours(SyncRun.objects.filter(mailbox_settings=None))
    assert list(SyncRunHour.objects.values_list("hour", "outcome", "runs")) == [
        (hour, Outcome.OK, 2)
    ]


def test_hours_older_than_the_chart_are_dropped_when_a_new_hour_is_counted():
    old = clock.now().replace(minute=0, second=0) - dt.timedelta(days=9)
    SyncRunHour.objects.create(hour=old, outcome=Outcome.OK, runs=4)
    run(None, clock.now() - dt.timedelta(minutes=10), Outcome.OK)
    fold_into_hours(SyncRun.objects.all())
    assert not SyncRunHour.objects.filter(hour=old).exists()
    assert SyncRunHour.objects.get().runs == 1


def test_pruned_runs_of_the_autumn_s_repeated_hour_keep_their_own_bars():
    # Counted per UTC hour, the two 02:00 hours of 25 Oct 2026 in Berlin stay apart.
    now = at("2026-10-25 11:00")  # 12:00 CET
    run(None, at("2026-10-25 00:30"), Outcome.OK)  # 02:30 CEST
    run(None, at("2026-10-25 01:30"), Outcome.FAILED)  # 02:30 CET
    fold_into_hours(SyncRun.objects.all())
    SyncRun.objects.all().delete()
    chart = run_chart(now, BERLIN)
    first, second = (bar for bar in chart.bars if bar.start.day == 25 and bar.start.hour == 2)
    assert (first.ok, first.failed, second.ok, second.failed) == (1, 0, 0, 1)


# ---- the sync lag ----------------------------------------------------------------------------


def test_the_lag_list_puts_the_worst_first_and_never_synced_at_the_top():
    now = clock.now()
    ago = {"fresh": dt.timedelta(minutes=10), "slow": dt.timedelta(hours=3, minutes=5),
           "stale": dt.timedelta(days=2, hours=4, minutes=10)}  # fmt: skip
    for name, delta in ago.items():
        enable(make_resource(name), last_success_at=now - delta)
    enable(make_resource("newcomer"))  # never synced
    MailboxSettings.objects.filter(pk=enable(make_resource("off"), last_success_at=now - ago[
        "stale"] * 9).pk).update(sync_enabled=False)  # fmt: skip
    rows = sync_lag(now)
    assert [row.settings.resource.user.username for row in rows] == [
        "newcomer",
        "stale",
        "slow",
        "fresh",
    ]
    assert [row.age for row in rows] == ["never", "2 days 4 h ago", "3 h 5 min ago", "10 min ago"]


def test_the_lag_list_shows_ten_rows_and_links_each_resource(admin):
    for n in range(12):
        enable(make_resource(f"tech{n}"), last_success_at=clock.now() - dt.timedelta(hours=n))
    html = page_of(admin)
    table = re.search(r'<table class="table xe-table xe-lag">.*?</table>', html, re.S).group(0)
    assert table.count("<tr>") == 11  # the header and ten resources
    assert "3 h ago" in table and ">11 h ago<" in table and ">1 h ago<" not in table
    assert "/extensions/exchange/resources/" in table


@pytest.mark.parametrize(
    ("seconds", "words"),
    [(-30, "just now"), (0, "just now"), (59, "just now"), (61, "1 min 1 s ago"),
     (3 * 3600 + 5 * 60 + 9, "3 h 5 min ago"), (47 * 3600, "47 h ago"),
     (2 * 86400 + 4 * 3600 + 600, "2 days 4 h ago"), (9 * 86400 + 1800, "9 days ago")],
)  # fmt: skip
def test_ages_read_in_plain_words(seconds, words):
    now = clock.now()
    assert format_age(now - dt.timedelta(seconds=seconds), now) == words


# ---- the workers -----------------------------------------------------------------------------


def _queued(minutes: float, **fields: Any) -> MailboxSettings:
    now = clock.now()
    resource = make_resource()
    return enable(resource, queued_at=now - dt.timedelta(minutes=minutes),
                  enabled_at=now, **fields)  # fmt: skip


def test_queued_work_and_no_task_taken_for_minutes_warns_until_a_worker_takes_one(admin):
    now = clock.now()
    box = _queued(10, last_attempt_at=now - dt.timedelta(minutes=20))
    assert workers(now).stalled
    html = page_of(admin)
    assert "No worker is taking tasks" in html and "The last task was taken 20 min" in html
    MailboxSettings.objects.filter(pk=box.pk).update(last_attempt_at=now - dt.timedelta(minutes=1))
    assert not workers(now).stalled
    html = page_of(admin)
    assert "No worker is taking tasks" not in html
    assert re.search(r'class="xe-heartbeat">1 min( \d+ s)? ago<', html)


def test_no_warning_while_the_queue_is_young_or_a_worker_is_busy():
    now = clock.now()
    _queued(2)  # queued two minutes ago: a worker may not have come round yet
    assert not workers(now).stalled
    MailboxSettings.objects.update(queued_at=now - dt.timedelta(minutes=30))
    busy = _queued(1, lease_holder="worker-1", lease_expires_at=now + dt.timedelta(minutes=5))
    assert not workers(now).stalled  # a long sync holds the only worker: alive
    MailboxSettings.objects.filter(pk=busy.pk).update(
        lease_expires_at=now - dt.timedelta(seconds=1)
    )
    assert workers(now).stalled  # its lease ran out: the worker died with it


def test_queued_work_no_worker_ever_says_so(admin):
    _queued(8)
    html = page_of(admin)
    assert "none has ever taken one" in html and "No worker has taken a task yet." in html


def test_a_due_sync_that_never_started_warns_as_healthz_does(admin):
    # Nothing queued (the dispatcher itself is down), but a sync was due long ago.
    now = clock.now()
    enable(make_resource(), status="ok", enabled_at=now - dt.timedelta(days=1),
           last_attempt_at=now - dt.timedelta(hours=3))  # fmt: skip
    assert workers(now).stalled and "No worker is taking tasks" in page_of(admin)


def test_the_oldest_queued_task_counts_removals_too():
    now = clock.now()
    _queued(4)
    _queued(12)
    enable(make_resource(), removal_queued_at=now - dt.timedelta(minutes=20, seconds=5))
    state = workers(now)
    assert state.oldest_queued == "20 min 5 s ago" and state.queued == 3
    assert workers(now).oldest_queued_at == now - dt.timedelta(minutes=20, seconds=5)
    MailboxSettings.objects.update(queued_at=None, removal_queued_at=None)
    assert workers(now).oldest_queued == "" and workers(now).queued == 0


def test_the_queue_reads_in_plain_words(admin, monkeypatch):
    _queued(3, last_attempt_at=clock.now())
    html = page_of(admin)
    assert "No task is waiting for a worker." in html  # the ORM broker's table is empty
    assert "The queue is kept in the database." in html and "ORM default" not in html
    assert re.search(r'class="xe-oldest-queued">queued 3 min( \d+ s)? ago<', html)

    import django_q.brokers

    def unreachable() -> Any:
        raise ConnectionError("redis down")

    monkeypatch.setattr(django_q.brokers, "get_broker", unreachable)
    html = page_of(admin)
    assert "The task queue cannot be reached, so how many tasks wait is not known." in html


def test_the_status_page_data_is_bounded():
    for n in range(30):
        enable(make_resource(f"r{n}"), last_success_at=clock.now() - dt.timedelta(minutes=n))
    page = status_page(now=clock.now(), zone=BERLIN)
    assert len(page.lag) == 10 and page.chart is not None and page.workers is not None
