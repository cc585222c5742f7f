"""Real ``qcluster`` processes syncing against the sandbox (issue 6, "Done means").

- SQLite + ORM broker (the embedded default): the ``exchange-sync-due`` schedule that
  ``migrate`` created fires in the worker and syncs the never-synced resources; then the
  dispatcher, driven with a controllable clock over two whole intervals, queues every resource
  exactly once per interval; the same task queued twice at once syncs once.
- PostgreSQL + Redis with TWO clusters, 50 resources, 200 ms sandbox latency: every resource
  synced each interval, never two overlapping runs of one mailbox (the sandbox's request log),
  no duplicate items.
- A cluster killed with SIGKILL mid-sync: its task is re-delivered after ``retry`` to a new
  cluster, which claims the expired lease and finishes — no duplicate, nothing lost.

The sandbox runs in this process (threads) on 127.0.0.1 over HTTPS; the workers get its CA and
port through EXCHANGE_CA_BUNDLE / EXCHANGE_ALLOWED_PORTS. Every wait is bounded and every
worker's process group is killed at the end.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from exchange_ext.tasks import ABANDONED_MESSAGE
from tests.integration.ops_support import (
    MANAGE,
    add_mailboxes,
    calendar_items,
    duplicate_tags,
    kill_group,
    max_overlap,
    run,
    running_workers,
    sandbox_env,
    start_ops_sandbox,
    start_worker,
    worker_environment,
)
from tests.integration.test_worker import REDIS_URL, redis_reachable, require
from tests.integration.test_worker import postgres_database as postgres_database  # fixture

# Creates the configuration and the resources in the worker's database; prints their ids.
SETUP = """
import json, sys
import django
django.setup()
from tests.integration.ops_support import configure, make_enabled_resources
configure(int(sys.argv[1]))
addresses = [f"{sys.argv[3]}{i}@northwind.example" for i in range(1, int(sys.argv[2]) + 1)]
ids = make_enabled_resources(addresses, appointments=int(sys.argv[4]))
if sys.argv[5] in ("driver", "queue"):  # the test is the dispatcher: no real schedule
    import datetime as dt
    from django.utils import timezone
    from django_q.models import Schedule
    from exchange_ext.jobs import dispatcher
    Schedule.objects.update(next_run=timezone.now() + dt.timedelta(days=1))
    if sys.argv[5] == "queue":
        dispatcher.queue_due()
print(json.dumps(ids))
"""

# Drives the dispatcher: waits for the schedule's first round (the worker's own), then
# sweeps a controllable clock over N intervals, a minute per step, waiting for the workers
# after each interval. Prints, per interval, the runs each mailbox had.
DRIVE = """
import datetime as dt, json, sys, time
import django
django.setup()
from django.db.models import Q
from django.utils import timezone
from exchange_ext.jobs import dispatcher
from exchange_ext.models import ExchangeConfig, MailboxSettings, SyncRun

cycles, deadline = int(sys.argv[1]), time.monotonic() + float(sys.argv[2])
use_schedule = sys.argv[3] == "schedule"
enabled = MailboxSettings.objects.filter(sync_enabled=True)
ids = sorted(enabled.values_list("pk", flat=True))

def wait(condition):
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    runs = list(SyncRun.objects.values_list("mailbox_settings_id", "outcome"))
    raise SystemExit(f"timed out; runs so far: {runs}")

def busy():
    return enabled.filter(Q(queued_at__isnull=False) | ~Q(lease_holder="")).exists()

def runs_since(since):
    done = SyncRun.objects.filter(started_at__gte=since)
    ok = done.filter(outcome__in=["ok", "partial"])
    counts = {str(pk): ok.filter(mailbox_settings_id=pk).count() for pk in ids}
    odd = [int(pk) for pk, n in counts.items() if n != 1]
    detail = done.filter(mailbox_settings_id__in=odd) | done.exclude(outcome__in=["ok", "partial"])
    fields = ("mailbox_settings_id", "trigger", "started_at", "finished_at", "outcome", "error")
    return counts, list(detail.values_list(*fields))

report = {"cycles": [], "timings": []}
began = timezone.now()
clock = time.monotonic()
from django_q.models import Schedule
if use_schedule:  # the worker's own schedule queues the first round (it fires within ~30 s)
    wait(lambda: not enabled.filter(last_dispatched_at__isnull=True).exists())
else:
    dispatcher.queue_due(began)
# From here on this script is the dispatcher, with its own clock: the real schedule pauses.
Schedule.objects.update(next_run=timezone.now() + dt.timedelta(days=1))
wait(lambda: enabled.filter(last_success_at__isnull=True).count() == 0 and not busy())
# The schedule may have fired before this script started: the first round is every run so far.
report["cycles"].append((*runs_since(began - dt.timedelta(hours=1)), {str(pk): 1 for pk in ids}))
report["timings"].append(round(time.monotonic() - clock, 2))
# Intervals start once the first round is over: each slot after it is then a new one.
t0 = max(max(enabled.values_list("last_dispatched_at", flat=True)),
         max(enabled.values_list("last_attempt_at", flat=True)))
period = ExchangeConfig.load().sync_interval_minutes * 60
def slots_between(pk, after, until):
    # How many of the mailbox's slots fall in (after, until]: the runs it is owed.
    last = dispatcher.latest_slot(pk, period, until)
    return 0 if last <= after else int((last - after).total_seconds() // period) + 1

for k in range(cycles):
    since, clock = timezone.now(), time.monotonic()
    end = t0 + dt.timedelta(seconds=(k + 1) * period)
    owed = {str(pk): slots_between(pk, max(a for a in (att, disp) if a), end)
            for pk, att, disp in enabled.values_list("pk", "last_attempt_at", "last_dispatched_at")}
    for minute in range(1, period // 60 + 1):
        v = t0 + dt.timedelta(seconds=k * period + minute * 60)
        for pk in dispatcher.queue_due(v):
            report.setdefault("queued", []).append((k, pk, str(v), str(timezone.now())))
        time.sleep(0.05)
    wait(lambda: not busy())
    runs, odd = runs_since(since)
    report["cycles"].append((runs, odd, owed))
    report["timings"].append(round(time.monotonic() - clock, 2))
overlaps = 0
for pk in ids:
    spans = list(SyncRun.objects.filter(mailbox_settings_id=pk).exclude(outcome="skipped")
                 .order_by("started_at").values_list("started_at", "finished_at"))
    overlaps += sum(1 for a, b in zip(spans, spans[1:]) if a[1] is None or a[1] > b[0])
report["db_overlaps"] = overlaps
report["t0"] = str(t0)
report["schedule"] = list(Schedule.objects.values_list("name", "func"))
print(json.dumps(report, default=str))
"""

# Queues the same sync task twice at once (no dedupe: straight to the broker), waits for both.
DOUBLE = """
import json, sys, time
import django
django.setup()
from django_q.tasks import async_task, fetch
from exchange_ext.models import SyncRun
pk = int(sys.argv[1])
before = set(SyncRun.objects.filter(mailbox_settings_id=pk).values_list("pk", flat=True))
tasks = [async_task("exchange_ext.tasks.sync_mailbox", pk, "sync_now", save=True) for _ in range(2)]
deadline = time.monotonic() + float(sys.argv[2])
while time.monotonic() < deadline and not all(fetch(t) for t in tasks):
    time.sleep(0.2)
runs = SyncRun.objects.filter(mailbox_settings_id=pk).exclude(pk__in=before)
print(json.dumps(sorted(runs.values_list("outcome", "error"))))
"""


def _migrate_and_setup(
    env: dict[str, str], handle: Any, count: int, prefix: str, appts: int, first: str
) -> list[int]:
    """Migrate, configure, create resources. ``first``: who queues the first round —
    ``schedule`` (the worker's own, as in ``make run``), ``driver`` (the test, later) or
    ``queue`` (queued right here)."""
    run(env, MANAGE, "migrate", "--noinput", timeout=180)
    args = [str(handle.port), str(count), prefix, str(appts), first]
    out = run(env, "-c", SETUP, *args, timeout=120)
    return json.loads(out.strip().splitlines()[-1])


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Any]:
    handle = start_ops_sandbox(tmp_path / "certs")
    try:
        yield handle
    finally:
        handle.stop()


def _assert_each_synced_once_per_interval(report: dict[str, Any], ids: list[int]) -> None:
    """Every resource ran once per slot of its own that passed (the sweep's interval may also
    hold a slot that fell between its first run and the sweep's start: that one is owed too)."""
    for index, (runs, odd, owed) in enumerate(report["cycles"]):
        assert set(owed.values()) <= {1, 2} and set(runs) == {str(pk) for pk in ids}
        queued = [q for q in report.get("queued", []) if runs[str(q[1])] != owed[str(q[1])]]
        assert runs == owed, (index, odd, queued, report["t0"])
    assert report["db_overlaps"] == 0


def test_orm_broker_worker_syncs_every_resource_each_interval(tmp_path, sandbox):
    env = worker_environment(
        tmp_path, DATABASE_URL=f"sqlite:///{tmp_path / 'ops.sqlite3'}", **sandbox_env(sandbox)
    )
    addresses = add_mailboxes(sandbox, 6, "orm")
    ids = _migrate_and_setup(env, sandbox, 6, "orm", 2, "schedule")
    with running_workers(env, [tmp_path / "worker.log"]) as (worker,):
        # No manual step: the schedule created by migrate fires in the worker.
        out = run(env, "-c", DRIVE, "2", "100", "schedule", timeout=120)
        report = json.loads(out.strip().splitlines()[-1])
        # The same task twice at once (a re-delivery racing the original): one sync, one skip.
        sandbox.state.faults.add({"kind": "latency", "latency_ms": 300, "count": None})
        double = json.loads(run(env, "-c", DOUBLE, str(ids[0]), "40", timeout=60).strip())
        assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
    assert ["exchange-sync-due", "exchange_ext.tasks.dispatch"] in report["schedule"]
    _assert_each_synced_once_per_interval(report, ids)
    assert sorted(outcome for outcome, _ in double) == ["ok", "skipped"], double
    assert "Another sync of this mailbox runs." in dict(double)["skipped"]
    assert max_overlap(sandbox)[0] == 1
    assert duplicate_tags(sandbox, addresses) == {}
    assert [len(calendar_items(sandbox, a)) for a in addresses] == [2] * 6


def test_two_clusters_on_postgresql_and_redis_share_50_resources(tmp_path, sandbox, request):
    require(redis_reachable(), f"Redis at {REDIS_URL}")
    database = request.getfixturevalue("postgres_database")
    env = worker_environment(
        tmp_path, DATABASE_URL=database, REDIS_URL=REDIS_URL, **sandbox_env(sandbox)
    )
    addresses = add_mailboxes(sandbox, 50, "scale")
    ids = _migrate_and_setup(env, sandbox, 50, "scale", 2, "driver")
    sandbox.state.faults.add({"kind": "latency", "latency_ms": 200, "count": None})
    started = time.monotonic()
    logs = [tmp_path / "worker-a.log", tmp_path / "worker-b.log"]
    with running_workers(env, logs) as workers:
        out = run(env, "-c", DRIVE, "1", "80", "driver", timeout=100)
        alive = [w.poll() is None for w in workers]
    wall = time.monotonic() - started
    report = json.loads(out.strip().splitlines()[-1])
    assert alive == [True, True], [log.read_text()[-2000:] for log in logs]
    _assert_each_synced_once_per_interval(report, ids)
    worst, _ = max_overlap(sandbox)
    assert worst == 1
    assert duplicate_tags(sandbox, addresses) == {}
    assert [len(calendar_items(sandbox, a)) for a in addresses] == [2] * 50
    requests = len(sandbox.state.requests.query()["requests"])
    print(
        f"\nscale: 50 resources, 2 clusters x 2 workers, 200 ms latency: first interval "
        f"{report['timings'][0]} s, steady interval {report['timings'][1]} s, wall {wall:.1f} s, "
        f"max overlap {worst}, {requests} EWS requests"
    )


# Waits until the mailbox has a successful run; prints its runs.
WAIT_OK = """
import json, sys, time
import django
django.setup()
from exchange_ext.models import SyncRun
pk, deadline = int(sys.argv[1]), time.monotonic() + float(sys.argv[2])
runs = SyncRun.objects.filter(mailbox_settings_id=int(sys.argv[1]))
while time.monotonic() < deadline and not runs.filter(outcome="ok").exists():
    time.sleep(0.3)
print(json.dumps(sorted(runs.values_list("outcome", "error"))))
"""


def test_a_worker_killed_mid_sync_is_resumed_after_retry_without_duplicates(tmp_path, sandbox):
    # Short timing chain for the test: budget 2 s + one call 1 s + 10 s < timeout 14 s;
    # lease 24 s < retry 25 s (the system check enforces it in the worker too).
    env = worker_environment(
        tmp_path,
        DATABASE_URL=f"sqlite:///{tmp_path / 'kill.sqlite3'}",
        Q_TIMEOUT="14",
        Q_RETRY="25",
        Q_WORKERS="1",
        EXCHANGE_SYNC_BUDGET_SECONDS="2",
        EXCHANGE_RETRY_BUDGET_SECONDS="1",
        **sandbox_env(sandbox),
    )
    (address,) = add_mailboxes(sandbox, 1, "kill")
    (pk,) = _migrate_and_setup(env, sandbox, 1, "kill", 30, "queue")
    # The creates take 2 s to answer (the sandbox applies them after the delay, as a server
    # that got the request does): the worker dies while Exchange is writing.
    sandbox.state.faults.add(
        {"kind": "latency", "latency_ms": 2000, "operation": "CreateItem", "count": None}
    )
    first = start_worker(env, tmp_path / "first.log")
    try:
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and not _requests(sandbox, address, "SyncFolderItems"):
            time.sleep(0.1)
        assert _requests(sandbox, address, "SyncFolderItems"), (tmp_path / "first.log").read_text()
        time.sleep(0.8)  # inside the slow CreateItem
        kill_group(first)  # SIGKILL, the whole cluster
        killed_at = time.monotonic()
    finally:
        kill_group(first)
    time.sleep(2.5)  # the sandbox finishes the CreateItem the dead worker sent
    assert len(calendar_items(sandbox, address)) == 30  # written in Exchange, never linked
    with running_workers(env, [tmp_path / "second.log"]):
        runs = json.loads(run(env, "-c", WAIT_OK, str(pk), "60", timeout=80).strip())
    resumed_after = time.monotonic() - killed_at
    assert ("ok", "") in [tuple(r) for r in runs], (runs, (tmp_path / "second.log").read_text())
    # Exactly one run completed; the killed one is marked as such in the sync log.
    assert sum(1 for outcome, _ in runs if outcome == "ok") == 1
    assert ["failed", ABANDONED_MESSAGE] in runs, runs
    assert duplicate_tags(sandbox, [address]) == {}
    assert len(calendar_items(sandbox, address)) == 30
    assert resumed_after >= 20  # not before the lease expired and the broker re-delivered
    print(f"\nkilled mid-CreateItem; resumed {resumed_after:.1f} s later: 30 items, no duplicate")
    assert max_overlap(sandbox)[0] == 1


def _requests(handle: Any, address: str, operation: str) -> list[dict[str, Any]]:
    return handle.state.requests.query(operation=operation, mailbox=address)["requests"]
