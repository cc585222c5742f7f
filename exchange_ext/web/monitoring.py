"""The extension's part of ``/metrics`` and ``/healthz`` (README, "Monitoring").

Everything is computed from the database when Prometheus scrapes, because syncs run in the
worker processes, not in the web process that answers. Every figure is one aggregate query.

Windowed gauges, not counters: runs are pruned to the newest ``KEEP_RUNS`` (50) per mailbox
(:mod:`exchange_ext.engine.runs`), so a total over the stored rows stops growing once a mailbox
has 50 runs, which Prometheus would read as "no runs". What the rows do hold completely is the
last hour (50 runs at the shortest interval, 10 minutes, cover more than eight hours), so the
run counts, the items written and the durations cover the runs *started in the last hour*:
read them as they are (``sum(psa_exchange_sync_runs{outcome="failed"})``), never with
``rate()``. The duration histogram is windowed the same way: use ``histogram_quantile()`` on
the buckets directly.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from django.db.models import (
    Count,
    DurationField,
    ExpressionWrapper,
    F,
    IntegerField,
    Max,
    Q,
    QuerySet,
    Sum,
)
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Coalesce
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric

from exchange_ext.engine import status as mailbox_status
from exchange_ext.jobs.dispatcher import MAX_BACKOFF_SLOTS
from exchange_ext.models import ExchangeConfig, HeldDeletion, MailboxSettings, SyncRun
from exchange_ext.sync.records import ItemKind
from psa.monitoring.registry import WorkerState

WINDOW = dt.timedelta(hours=1)
#: Upper bounds (seconds) of the run-duration buckets: a quiet run takes seconds, a first full
#: read of a big mailbox minutes, and the sync budget stops a run before Q_TIMEOUT (600 s).
DURATION_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0)
SIDES = ("psa", "exchange")
ACTIONS = ("created", "updated", "deleted")


class ExchangeCollector:
    """The extension's metrics; registered by :mod:`exchange_ext.apps`."""

    def collect(self) -> Iterator[Metric]:
        now = timezone.now()
        yield sync_run_metric(now)
        yield duration_metric(now)
        yield items_metric(now)
        yield last_run_metric()
        yield mailbox_metric()
        yield held_deletion_metric()


def _recent(now: dt.datetime) -> QuerySet[SyncRun]:
    return SyncRun.objects.filter(started_at__gt=now - WINDOW).order_by()


def sync_run_metric(now: dt.datetime) -> GaugeMetricFamily:
    """Runs started in the last hour by outcome and trigger; every pair is present (zero when
    none), so an alert on a missing series is never needed."""
    metric = GaugeMetricFamily(
        "psa_exchange_sync_runs",
        "Sync runs started in the last hour, by outcome and trigger (runs are pruned to 50 per"
        " mailbox, so this is a window, not a counter).",
        labels=["outcome", "trigger"],
    )
    found = {
        (row["outcome"], row["trigger"]): row["n"]
        for row in _recent(now).values("outcome", "trigger").annotate(n=Count("pk"))
    }
    pairs = {(o, t) for o in SyncRun.Outcome.values for t in SyncRun.Trigger.values} | set(found)
    for outcome, trigger in sorted(pairs):
        metric.add_metric([outcome, trigger], found.get((outcome, trigger), 0))
    return metric


def duration_metric(now: dt.datetime) -> HistogramMetricFamily:
    """Durations of the runs started in the last hour that have finished (one query: a count
    per bucket, the total and the sum)."""
    elapsed = ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
    finished = _recent(now).filter(finished_at__isnull=False).annotate(elapsed=elapsed)
    buckets = {
        f"le_{i}": Count("pk", filter=Q(elapsed__lte=dt.timedelta(seconds=bound)))
        for i, bound in enumerate(DURATION_BUCKETS)
    }
    row = finished.aggregate(total=Count("pk"), seconds=Sum("elapsed"), **buckets)
    cumulative = [(str(bound), row[f"le_{i}"]) for i, bound in enumerate(DURATION_BUCKETS)]
    spent = row["seconds"] or dt.timedelta(0)
    return HistogramMetricFamily(
        "psa_exchange_sync_run_duration_seconds",
        "Duration of the sync runs started in the last hour that have finished (a window:"
        " use histogram_quantile() on the buckets without rate()).",
        buckets=[*cumulative, ("+Inf", row["total"])],
        sum_value=spent.total_seconds(),
    )


def items_metric(now: dt.datetime) -> GaugeMetricFamily:
    """Items the runs started in the last hour wrote, by kind, side and action, summed from
    ``SyncRun.counts`` (``{kind: {side: {action: n}}}``) in the database."""
    sums = {
        f"{kind}__{side}__{action}": Coalesce(
            Sum(Cast(KT(f"counts__{kind}__{side}__{action}"), IntegerField())), 0
        )
        for kind in ItemKind
        for side in SIDES
        for action in ACTIONS
    }
    row = _recent(now).aggregate(**sums)
    metric = GaugeMetricFamily(
        "psa_exchange_sync_items_written",
        "Items the sync runs started in the last hour wrote, by kind, side (psa or exchange)"
        " and action (created, updated, deleted).",
        labels=["kind", "side", "action"],
    )
    for key, value in sorted(row.items()):
        metric.add_metric(key.split("__"), value)
    return metric


def last_run_metric() -> GaugeMetricFamily:
    newest = SyncRun.objects.order_by().aggregate(newest=Max("started_at"))["newest"]
    metric = GaugeMetricFamily(
        "psa_exchange_sync_last_run_start_timestamp_seconds",
        "When the newest stored sync run started (Unix time); absent before the first run.",
    )
    if newest is not None:
        metric.add_metric([], newest.timestamp())
    return metric


def mailbox_metric() -> GaugeMetricFamily:
    """Resources with the sync enabled, by sync status (every status present)."""
    found = dict(
        MailboxSettings.objects.filter(sync_enabled=True)
        .order_by()
        .values_list("status")
        .annotate(n=Count("pk"))
    )
    metric = GaugeMetricFamily(
        "psa_exchange_mailboxes",
        "Resources with the Exchange sync enabled, by sync status.",
        labels=["status"],
    )
    for status in sorted(set(MailboxSettings.Status.values) | set(found)):
        metric.add_metric([status], found.get(status, 0))
    return metric


def held_deletion_metric() -> GaugeMetricFamily:
    """Deletions the sync planned and keeps back, by state (``held``: waiting for an
    administrator after the mass-delete guard tripped)."""
    found = dict(HeldDeletion.objects.order_by().values_list("state").annotate(n=Count("pk")))
    metric = GaugeMetricFamily(
        "psa_exchange_held_deletions",
        "Deletions the sync keeps back, by state (held: the mass-delete guard waits for an"
        " administrator).",
        labels=["state"],
    )
    for state in sorted(set(HeldDeletion.State.values) | set(found)):
        metric.add_metric([state], found.get(state, 0))
    return metric


# ---- the workers' heartbeat for /healthz ------------------------------------------------------


def heartbeat_limit(interval_minutes: int) -> dt.timedelta:
    """How long without a run start means the workers stopped: a run per mailbox per interval,
    up to ``MAX_BACKOFF_SLOTS`` intervals apart when every mailbox fails (an Exchange outage is
    not the web server's fault), plus one interval of slack."""
    return dt.timedelta(minutes=interval_minutes * (MAX_BACKOFF_SLOTS + 1))


def worker_heartbeat(now: dt.datetime | None = None) -> WorkerState:
    """``"ok"`` when a worker started a sync recently, ``"fail"`` when one was due and none
    started, ``"idle"`` when no sync was due: the integration is off, or no mailbox is enabled
    and runnable since longer than the limit (a fresh install, or a quiet one, is healthy)."""
    now = now or timezone.now()
    config = ExchangeConfig.objects.filter(pk=1).values("enabled", "sync_interval_minutes")
    settings = config.first() or {"enabled": True, "sync_interval_minutes": 15}
    if not settings["enabled"]:
        return "idle"
    since = now - heartbeat_limit(settings["sync_interval_minutes"])
    expected = MailboxSettings.objects.filter(
        mailbox_status.runnable(), Q(enabled_at__isnull=True) | Q(enabled_at__lte=since)
    )
    if not expected.exists():
        return "idle"
    last = last_task_taken_at()
    return "ok" if last is not None and last > since else "fail"


def last_task_taken_at() -> dt.datetime | None:
    """When a worker last started a mailbox sync (the newest ``last_attempt_at``, written as
    the run starts, once it holds the mailbox's lease); ``None`` before the first. Successful
    tasks are not stored by django-q2 (``save_limit`` -1), so the runs are the workers' trace."""
    newest = MailboxSettings.objects.order_by().aggregate(newest=Max("last_attempt_at"))
    return newest["newest"]
