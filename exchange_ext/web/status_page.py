"""What the admins' status page shows: failing resources, recent runs, the task queue, runs
per hour, the sync lag, the workers' heartbeat and whether push notifications run.

Every figure comes from a bounded query (counts, the newest runs, the failing rows, one
aggregate of runs per hour, the ten worst lags), so the page stays fast with thousands of
resources.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field, replace

from django.db.models import Count, F, Max, Min, Q, Sum
from django.db.models.functions import TruncHour
from django.utils import formats, timezone
from django.utils.translation import gettext, npgettext

from exchange_ext.models import (
    ExchangeConfig,
    GraphSubscription,
    ListenerHeartbeat,
    MailboxSettings,
    ServerOutage,
    SyncRun,
    SyncRunHour,
    format_duration,
)
from exchange_ext.web.monitoring import last_task_taken_at, worker_heartbeat

logger = logging.getLogger(__name__)

Status = MailboxSettings.Status
RECENT_RUNS = 20
CHART_HOURS = 7 * 24
LAG_ROWS = 10
#: Queued work and no task taken for this long: the workers look stopped ("several minutes";
#: a busy worker starts a run every few seconds, and running syncs count as alive).
STALL_AFTER = dt.timedelta(minutes=5)
Outcome = SyncRun.Outcome
#: The chart's series, bottom to top, and the stored outcomes each one counts. A run with some
#: failed items counts as failed; "held" is a run the mass-deletion guard stopped. Running and
#: skipped runs are not counted (not yet an outcome; not a run).
SERIES: dict[str, tuple[str, ...]] = {
    "ok": (Outcome.OK,),
    "failed": (Outcome.FAILED, Outcome.PARTIAL),
    "held": (Outcome.GUARD_TRIPPED,),
}


@dataclass(frozen=True)
class QueueDepth:
    """Tasks waiting in django-q2's broker (``None``: the broker could not be asked)."""

    waiting: int | None
    broker: str
    #: Where the queue is kept (:func:`_store`); "" when the broker could not be asked.
    store: str = ""


@dataclass(frozen=True)
class StatusPage:
    enabled: int
    ok: int
    failing: int
    disabled: int
    never: int
    queued: int
    running: int
    failing_rows: list[MailboxSettings]
    recent_runs: list[SyncRun]
    outage: ServerOutage | None
    queue: QueueDepth
    chart: RunChart | None = None
    lag: list[LagRow] = field(default_factory=list)
    workers: Workers | None = None
    push: PushStatus | None = None


def status_page(
    limit: int = 200, now: dt.datetime | None = None, zone: dt.tzinfo | None = None
) -> StatusPage:
    """The page's data; ``limit`` caps the failing rows listed (the counts are exact). Hours and
    days of the chart are the viewer's (``zone``; default: the active time zone)."""
    now = now or timezone.now()
    zone = zone or timezone.get_current_timezone()
    enabled = MailboxSettings.objects.filter(sync_enabled=True)
    counts = enabled.aggregate(
        total=Count("pk"),
        ok=Count("pk", filter=Q(status=Status.OK)),
        failing=Count("pk", filter=Q(status=Status.FAILING)),
        disabled=Count("pk", filter=Q(status=Status.DISABLED)),
        never=Count("pk", filter=Q(status=Status.NEVER)),
        queued=Count("pk", filter=Q(queued_at__isnull=False)),
        running=Count("pk", filter=Q(lease_holder__gt="")),
    )
    failing = enabled.filter(status__in=[Status.FAILING, Status.DISABLED]).select_related(
        "resource"
    )
    runs = SyncRun.objects.select_related("mailbox_settings__resource").exclude(
        outcome=SyncRun.Outcome.SKIPPED
    )
    return StatusPage(
        enabled=counts["total"],
        ok=counts["ok"],
        failing=counts["failing"],
        disabled=counts["disabled"],
        never=counts["never"],
        queued=counts["queued"],
        running=counts["running"],
        failing_rows=list(failing.order_by("-failing_since", "pk")[:limit]),
        recent_runs=list(runs[:RECENT_RUNS]),
        outage=ServerOutage.objects.filter(ended_at__isnull=True).first(),
        queue=queue_depth(),
        chart=run_chart(now, zone),
        lag=sync_lag(now),
        workers=workers(now),
        push=push_status(now),
    )


def queue_depth() -> QueueDepth:
    """Tasks waiting in the broker (ORM table or Redis list), from django-q2 itself."""
    try:
        from django_q.brokers import get_broker

        broker = get_broker()
        return QueueDepth(
            waiting=int(broker.queue_size() or 0), broker=broker.info(), store=_store(broker)
        )
    except Exception as error:  # Redis down: the page still renders, saying so
        logger.warning("queue depth unavailable: %s", type(error).__name__)
        return QueueDepth(waiting=None, broker=gettext("unreachable"))


def _store(broker: object) -> str:
    """Where django-q2 keeps the queue: ``"database"`` (the ORM broker), ``"redis"``, or
    another broker's class name (the page words the first two)."""
    name = type(broker).__name__
    return {"orm": "database", "redis": "redis"}.get(name.lower(), name)


# ---- runs per hour ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    """One outcome's part of an hour's stacked bar, in the chart's units (0–100 high, one unit
    per hour wide); coordinates are strings so no locale formats them with a decimal comma."""

    series: str
    count: int
    y: str
    height: str


@dataclass(frozen=True)
class HourBar:
    """The runs started in one hour of the viewer's clock, by chart series."""

    index: int
    start: dt.datetime  # aware, in the viewer's zone
    ok: int = 0
    failed: int = 0
    held: int = 0
    parts: tuple[Segment, ...] = ()  # the stacked bar, set once the chart's scale is known

    @property
    def total(self) -> int:
        return self.ok + self.failed + self.held

    @property
    def hour(self) -> str:
        """The hour's start, ISO 8601 with its offset (a machine key for tests and tools)."""
        return self.start.isoformat()


@dataclass(frozen=True)
class ChartDay:
    """One calendar day of the chart (the first and last are partial): its label and totals."""

    date: dt.date
    hours: int
    ok: int
    failed: int
    held: int
    weekday: str
    label: str


@dataclass(frozen=True)
class RunChart:
    """Runs per hour over the last :data:`CHART_HOURS` hours, ending with the current hour.

    ``scale`` is the top of the y axis (a round number ≥ the busiest hour). Every run counts
    once: a stored run, or — once pruned (each mailbox keeps its newest ``KEEP_RUNS``) — its
    hour's count (:class:`SyncRunHour`)."""

    bars: list[HourBar]
    days: list[ChartDay]
    scale: int

    @property
    def ok(self) -> int:
        return sum(bar.ok for bar in self.bars)

    @property
    def failed(self) -> int:
        return sum(bar.failed for bar in self.bars)

    @property
    def held(self) -> int:
        return sum(bar.held for bar in self.bars)

    @property
    def total(self) -> int:
        return self.ok + self.failed + self.held

    @property
    def width(self) -> int:
        return len(self.bars)

    @property
    def day_columns(self) -> str:
        """CSS grid columns of the day labels: one per day, as wide as its hours."""
        return " ".join(f"minmax(0, {day.hours}fr)" for day in self.days)

    @property
    def day_lines(self) -> list[int]:
        """Where each day after the first starts, in hours from the chart's left edge."""
        lines, at = [], 0
        for day in self.days[:-1]:
            at += day.hours
            lines.append(at)
        return lines


def run_chart(now: dt.datetime, zone: dt.tzinfo, hours: int = CHART_HOURS) -> RunChart:
    """Runs started in each of the last ``hours`` hours of ``zone``'s clock (the current hour
    last): stored runs in one aggregate query grouped by ``TruncHour`` in ``zone``, pruned ones
    from their hours' counts in a second.

    In the autumn's repeated hour the database truncates both to the same local time, so the
    runs of the second land in the first one's bar (the second shows none): none is lost."""
    end = now.astimezone(zone).replace(minute=0, second=0, microsecond=0) + dt.timedelta(hours=1)
    first = end.astimezone(dt.UTC) - dt.timedelta(hours=hours)
    starts = [(first + dt.timedelta(hours=i)).astimezone(zone) for i in range(hours)]
    counted = [o for outcomes in SERIES.values() for o in outcomes]
    rows = (
        SyncRun.objects.filter(started_at__gte=first, started_at__lt=end, outcome__in=counted)
        .order_by()
        .annotate(hour=TruncHour("started_at", tzinfo=zone))
        .values("hour")
        .annotate(**{s: Count("pk", filter=Q(outcome__in=o)) for s, o in SERIES.items()})
    )
    found: dict[int, dict[str, int]] = {}
    for row in rows:
        index = int((row["hour"] - first).total_seconds() // 3600)
        slot = found.setdefault(min(max(index, 0), hours - 1), dict.fromkeys(SERIES, 0))
        for series in SERIES:
            slot[series] += row[series]
    # Pruned runs, counted per UTC hour: in the bar of the viewer's hour that hour starts in.
    series_of = {outcome: series for series, outcomes in SERIES.items() for outcome in outcomes}
    folded = SyncRunHour.objects.filter(
        hour__gte=first - dt.timedelta(hours=1), hour__lt=end, outcome__in=counted
    ).values_list("hour", "outcome", "runs")
    for hour, outcome, n in folded:
        index = int((hour - first).total_seconds() // 3600)
        if 0 <= index < hours:
            found.setdefault(index, dict.fromkeys(SERIES, 0))[series_of[outcome]] += n
    empty = dict.fromkeys(SERIES, 0)
    bars = [
        HourBar(i, start, ok=n["ok"], failed=n["failed"], held=n["held"])
        for i, start in enumerate(starts)
        if (n := found.get(i, empty))
    ]
    scale = _round_up(max((bar.total for bar in bars), default=0))
    bars = [replace(bar, parts=_stack(bar, scale)) for bar in bars]
    return RunChart(bars, _days(bars), scale)


def _stack(bar: HourBar, scale: int) -> tuple[Segment, ...]:
    """The bar's non-empty parts, stacked from the bottom (y 100) in :data:`SERIES` order."""
    parts, bottom = [], 100.0
    for series in SERIES:
        if count := getattr(bar, series):
            height = count * 100.0 / scale
            bottom -= height
            parts.append(Segment(series, count, f"{bottom:.3f}", f"{height:.3f}"))
    return tuple(parts)


def _round_up(value: int) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50 … that is at least ``value``."""
    magnitude = 1
    while True:
        for step in (1, 2, 5):
            if step * magnitude >= value:
                return step * magnitude
        magnitude *= 10


def _days(bars: list[HourBar]) -> list[ChartDay]:
    days: list[ChartDay] = []
    for bar in bars:
        if days and days[-1].date == bar.start.date():
            last = days[-1]
            days[-1] = ChartDay(
                last.date, last.hours + 1, last.ok + bar.ok, last.failed + bar.failed,
                last.held + bar.held, last.weekday, last.label,
            )  # fmt: skip
        else:
            weekday, label = day_label(bar.start.date())
            days.append(ChartDay(bar.start.date(), 1, bar.ok, bar.failed, bar.held, weekday, label))
    return days


def day_label(date: dt.date) -> tuple[str, str]:
    """(short weekday, day and short month) in the active language: ``("Sun", "6 Dec")``,
    ``("So", "6. Dez")``, ``("日", "12月6日")``; the order is the language's
    ``MONTH_DAY_FORMAT`` with the month abbreviated to fit a day's width on a phone."""
    pattern = str(formats.get_format("MONTH_DAY_FORMAT")).replace("F", "M")
    return formats.date_format(date, "D"), formats.date_format(date, pattern)


# ---- sync lag and the workers -----------------------------------------------------------------


def format_age(then: dt.datetime, now: dt.datetime) -> str:
    """How long ago ``then`` was, in plain words: ``"just now"``, ``"4 min 10 s ago"``,
    ``"3 h 5 min ago"``, ``"2 days 4 h ago"``. A time after ``now`` (a clock that runs ahead)
    is "just now"."""
    seconds = (now - then).total_seconds()
    if seconds < 60:
        return gettext("just now")
    if seconds < 2 * 86400:
        return gettext("%(duration)s ago") % {"duration": format_duration(seconds)}
    days, rest = divmod(int(seconds), 86400)
    # The context: German says "vor 2 Tagen" (dative), not the "2 Tage" of a length of time.
    text = npgettext("time ago", "%(count)d day", "%(count)d days", days) % {"count": days}
    if rest >= 3600:
        text = f"{text} {format_duration(rest - rest % 3600)}"
    return gettext("%(duration)s ago") % {"duration": text}


@dataclass(frozen=True)
class LagRow:
    """An enabled resource and how long since its last successful sync."""

    settings: MailboxSettings
    age: str  # "3 h 5 min ago", or "never"


def sync_lag(now: dt.datetime, rows: int = LAG_ROWS) -> list[LagRow]:
    """The ``rows`` enabled resources whose last success is oldest, never-synced ones first."""
    worst = (
        MailboxSettings.objects.filter(sync_enabled=True)
        .select_related("resource")
        .order_by(F("last_success_at").asc(nulls_first=True), "pk")[:rows]
    )
    return [
        LagRow(
            row, format_age(row.last_success_at, now) if row.last_success_at else gettext("never")
        )
        for row in worst
    ]


@dataclass(frozen=True)
class Workers:
    """What the workers did lately: the last task taken, the oldest waiting one, and whether
    they look stopped (``stalled``)."""

    last_taken_at: dt.datetime | None
    last_taken: str  # "2 min ago", or "" before the first
    oldest_queued_at: dt.datetime | None
    oldest_queued: str  # "4 min ago", or "" with nothing queued
    queued: int
    stalled: bool


def workers(now: dt.datetime) -> Workers:
    """The heartbeat of the Status tab. The workers look stopped when /healthz says so (a sync
    was due and none started for several intervals) or when a sync has waited in the queue for
    :data:`STALL_AFTER` while no worker took a task for as long and none is running one."""
    last = last_task_taken_at()
    queue = MailboxSettings.objects.order_by().aggregate(
        oldest=Min("queued_at"),
        oldest_removal=Min("removal_queued_at"),
        queued=Count("pk", filter=Q(queued_at__isnull=False) | Q(removal_queued_at__isnull=False)),
        running=Count("pk", filter=Q(lease_expires_at__gt=now)),
    )
    oldest = min((t for t in (queue["oldest"], queue["oldest_removal"]) if t), default=None)
    idle_workers = last is None or now - last >= STALL_AFTER
    waiting = oldest is not None and now - oldest >= STALL_AFTER
    stalled = waiting and idle_workers and not queue["running"]
    return Workers(
        last_taken_at=last,
        last_taken=format_age(last, now) if last else "",
        oldest_queued_at=oldest,
        oldest_queued=format_age(oldest, now) if oldest else "",
        queued=queue["queued"],
        stalled=stalled or worker_heartbeat(now) == "fail",
    )


# ---- push notifications ------------------------------------------------------------------------


@dataclass(frozen=True)
class PushStatus:
    """Whether Exchange pushes changes (docs/sync-rules.md, "Push").

    ``backend``: "graph" or "ews" (the configured one); ``available``: push can run at all
    (Graph: an https ``PSA_BASE_URL``); ``active``/``wanted``: subscriptions Graph confirmed,
    of those held (the push job keeps a row per mailbox and folder that needs one, refused
    ones included); ``refused``: mailboxes whose subscription Graph
    refused, ``refusal`` the first reason; ``last_notification``: how long ago the newest
    notification arrived ("" before the first).
    """

    backend: str
    available: bool
    active: int = 0
    wanted: int = 0
    refused: int = 0
    refusal: str = ""
    last_notification: str = ""
    streams: int = 0  # EWS: open streaming connections
    listener_seen: str = ""  # EWS: how long ago a listener last reported ("" never)


def push_status(now: dt.datetime) -> PushStatus | None:
    """The Status tab's push facts; None while the integration is off."""
    from exchange_ext.jobs import push

    config = ExchangeConfig.load()
    if not config.enabled:
        return None
    if config.backend_name != "graph":
        return ews_push_status(now)
    if not push.push_possible(config):
        return PushStatus(backend="graph", available=False)
    rows = GraphSubscription.objects.all()
    counts = rows.aggregate(
        total=Count("pk"),
        active=Count("pk", filter=Q(subscription_id__isnull=False, expires_at__gt=now)),
        refused=Count("pk", filter=Q(subscription_id__isnull=True)),
        last=Max("last_notification_at"),
    )
    refusal = rows.filter(subscription_id__isnull=True).order_by("pk").first()
    return PushStatus(
        backend="graph",
        available=True,
        active=counts["active"],
        wanted=counts["total"],
        refused=counts["refused"],
        refusal=refusal.error if refusal else "",
        last_notification=format_age(counts["last"], now) if counts["last"] else "",
    )


#: A listener reports at least every 30 s (``exchange_listen``: its round, or 15 s when nothing
#: changed); silent for this long, it is not running.
LISTENER_SILENT_AFTER = dt.timedelta(minutes=3)


def ews_push_status(now: dt.datetime) -> PushStatus:
    """EWS push from the listeners' heartbeats (one row per ``exchange_listen`` shard)."""
    beats = ListenerHeartbeat.objects.filter(name__startswith="ews")
    counts = beats.filter(beat_at__gte=now - LISTENER_SILENT_AFTER).aggregate(
        wanted=Sum("wanted"), subscribed=Sum("subscribed"), streams=Sum("streams"),
        last=Max("last_event_at"),
    )  # fmt: skip
    latest = beats.aggregate(seen=Max("beat_at"))["seen"]
    running = counts["wanted"] is not None
    failing = beats.exclude(error="").order_by("-beat_at").first()
    return PushStatus(
        backend="ews",
        available=running,
        active=counts["subscribed"] or 0,
        wanted=counts["wanted"] or 0,
        streams=counts["streams"] or 0,
        refusal=failing.error if failing and running else "",
        last_notification=format_age(counts["last"], now) if counts["last"] else "",
        listener_seen=format_age(latest, now) if latest else "",
    )
