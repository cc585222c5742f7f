"""What the admins' status page shows: failing resources, recent runs, the task queue.

Every figure comes from a bounded query (counts, the newest runs, the failing rows), so the
page stays fast with thousands of resources.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db.models import Count, Q
from django.utils.translation import gettext

from exchange_ext.models import MailboxSettings, ServerOutage, SyncRun

logger = logging.getLogger(__name__)

Status = MailboxSettings.Status
RECENT_RUNS = 20


@dataclass(frozen=True)
class QueueDepth:
    """Tasks waiting in django-q2's broker (``None``: the broker could not be asked)."""

    waiting: int | None
    broker: str


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


def status_page(limit: int = 200) -> StatusPage:
    """The page's data; ``limit`` caps the failing rows listed (the counts are exact)."""
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
    )


def queue_depth() -> QueueDepth:
    """Tasks waiting in the broker (ORM table or Redis list), from django-q2 itself."""
    try:
        from django_q.brokers import get_broker

        broker = get_broker()
        return QueueDepth(waiting=int(broker.queue_size() or 0), broker=broker.info())
    except Exception as error:  # Redis down: the page still renders, saying so
        logger.warning("queue depth unavailable: %s", type(error).__name__)
        return QueueDepth(waiting=None, broker=gettext("unreachable"))
