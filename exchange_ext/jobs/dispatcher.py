"""Which mailboxes are due for a sync, and queuing them (docs/sync-rules.md, "Scheduling,
leases and budgets").

Every enabled resource has fixed slots, one per interval (General tab, ≥ 10 minutes), at a
stable offset of its own: ``epoch + offset + k × interval``. The offsets come from the golden
ratio sequence over the mailbox ids, a low-discrepancy sequence, so N resources are spread
evenly over the interval (no thundering herd at :00) and each keeps its place across restarts.

A mailbox is due when a slot passed since it was last queued or attempted (or it never ran, or
someone pressed "Sync now"). "Last queued" is the dispatcher's own clock, so a worker host's
clock that runs behind does not make a slot look unserved (docs/reliability.md, "#37"). After
consecutive failures it skips slots: 1, 2, 4 … up to :data:`MAX_BACKOFF_SLOTS` intervals
between attempts, so a server in trouble is not hammered and a fixed one is retried within the
hour. Disabled mailboxes (a permanent error) wait for their settings to be saved again.

At most one task is queued per mailbox: ``queued_at`` is claimed with a compare-and-set UPDATE
before the task is sent and cleared by the run's lease claim (in the same UPDATE, so the mailbox
is always visibly queued or running until its run ends); a claim older than
:func:`queued_stale_after` is assumed lost (a Redis task dies with its worker) and may be
claimed again. Queuing is therefore safe from any process, any number of times.

Every queued task carries the true cause of its run, recorded as the run's trigger (the
resource's sync log shows it): the dispatcher's slot is "Scheduled"; a requested sync
(``sync_requested_at``) carries the trigger stored with the request
(``sync_requested_trigger``: "Sync now", or "Settings saved" after a General or
Synchronization tab save); the callers of :func:`enqueue_sync` pass theirs ("Resource
enabled", "Settings saved", "PSA change", "Sync now"). Causes that coalesce — a second cause
while the mailbox is already queued adds no task — keep the **first queued cause**: the task
already in the broker names it, and the one run it makes serves every later cause too (it
reads the PSA and Exchange as they are when it starts). A cause that comes once the run has
claimed the mailbox is not coalesced: it queues a task of its own, recorded under its own
trigger.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from exchange_ext.engine import status as mailbox_status
from exchange_ext.engine.public_folder import enqueue_public_folder
from exchange_ext.models import ExchangeConfig, MailboxSettings, SyncRun

SYNC_TASK = "exchange_ext.tasks.sync_mailbox"
DISPATCH_TASK = "exchange_ext.tasks.dispatch"
SYNC_GROUP = "exchange-sync"
MAX_BACKOFF_SLOTS = 4
EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
_GOLDEN = (math.sqrt(5) - 1) / 2


@dataclass(frozen=True)
class Candidate:
    """What the dispatcher needs of one enabled mailbox (one row of one query)."""

    pk: int
    last_attempt_at: dt.datetime | None
    last_dispatched_at: dt.datetime | None
    consecutive_failures: int
    sync_requested_at: dt.datetime | None


def offset_seconds(mailbox_id: int, period: float) -> float:
    """The mailbox's stable place in the interval, in [0, period)."""
    return (mailbox_id * _GOLDEN) % 1.0 * period


def latest_slot(mailbox_id: int, period: float, now: dt.datetime) -> dt.datetime:
    """The most recent slot of the mailbox at or before ``now``."""
    since = (now - EPOCH).total_seconds() - offset_seconds(mailbox_id, period)
    return now - dt.timedelta(seconds=since % period)


def is_due(candidate: Candidate, period: float, now: dt.datetime) -> bool:
    """True when the mailbox should be queued now (see the module docstring)."""
    if candidate.sync_requested_at is not None:
        return True
    seen = [t for t in (candidate.last_attempt_at, candidate.last_dispatched_at) if t]
    if not seen:
        return True
    skipped = min(2 ** max(candidate.consecutive_failures - 1, 0), MAX_BACKOFF_SLOTS) - 1
    earliest = max(seen) + dt.timedelta(seconds=skipped * period)
    return latest_slot(candidate.pk, period, now) > earliest


def runnable() -> Q:
    """Mailboxes the dispatcher may queue: enabled and not stopped by a permanent error."""
    return mailbox_status.runnable()


def due_mailboxes(now: dt.datetime, config: ExchangeConfig | None = None) -> list[int]:
    """Ids of mailboxes due at ``now`` that nothing queued or runs yet, in id order."""
    config = config or ExchangeConfig.load()
    if not config.enabled:
        return []
    period = config.sync_interval_minutes * 60.0
    idle = Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lte=now)
    rows = (
        MailboxSettings.objects.filter(runnable(), idle, _not_queued(now))
        .order_by("pk")
        .values_list(
            "pk",
            "last_attempt_at",
            "last_dispatched_at",
            "consecutive_failures",
            "sync_requested_at",
        )
    )
    return [row[0] for row in rows if is_due(Candidate(*row), period, now)]


def queue_due(now: dt.datetime | None = None) -> list[int]:
    """Queue a sync of every due mailbox; return the ids queued by this call.

    Also queues the public contacts folder job, once per interval, when it is on.
    """
    now = now or timezone.now()
    config = ExchangeConfig.load()
    due = due_mailboxes(now, config)
    requested = requested_triggers()
    queued = [
        pk for pk in due if enqueue_sync(pk, requested.get(pk, SyncRun.Trigger.SCHEDULED), now)
    ]
    enqueue_public_folder(now, config)
    return queued


def requested_triggers() -> dict[int, str]:
    """Mailbox id → the trigger of its pending sync request, for every mailbox with one.

    A request stored without a trigger (made before triggers were stored) was "Sync now".
    """
    rows = MailboxSettings.objects.filter(sync_requested_at__isnull=False).values_list(
        "pk", "sync_requested_trigger"
    )
    return {pk: trigger or SyncRun.Trigger.SYNC_NOW for pk, trigger in rows}


def request_sync(mailbox_ids: Iterable[int], trigger: str, now: dt.datetime) -> int:
    """Stamp a sync request (``sync_requested_at`` and its trigger) on the mailboxes; return
    how many. The dispatcher's next tick queues each one that is not queued already."""
    return MailboxSettings.objects.filter(pk__in=list(mailbox_ids)).update(
        sync_requested_at=now, sync_requested_trigger=trigger
    )


def enqueue_sync(mailbox_id: int, trigger: str, now: dt.datetime | None = None) -> bool:
    """Queue one sync task unless one is already queued; True when this call queued it.

    ``trigger`` (a :class:`SyncRun.Trigger` value) is the cause the run records. When the
    mailbox is already queued this call adds nothing and the queued task keeps its own
    trigger: the first queued cause wins (module docstring).

    The task is sent after the surrounding transaction commits (a rolled-back claim sends
    nothing); the claim is a single UPDATE, so concurrent callers queue at most one task.
    """
    now = now or timezone.now()
    claimed = MailboxSettings.objects.filter(_not_queued(now), pk=mailbox_id).update(
        queued_at=now, last_dispatched_at=now
    )
    if claimed:
        transaction.on_commit(lambda: _send(mailbox_id, trigger))
    return bool(claimed)


def enqueue_syncs(mailbox_ids: Iterable[int], trigger: str) -> list[int]:
    """:func:`enqueue_sync` for several runnable mailboxes; return those queued."""
    if not ExchangeConfig.load().enabled:
        return []
    ids = MailboxSettings.objects.filter(runnable(), pk__in=list(mailbox_ids))
    return [pk for pk in ids.values_list("pk", flat=True) if enqueue_sync(pk, trigger)]


def after_config_saved(changed: Iterable[str]) -> int:
    """A General or Synchronization tab save: every enabled mailbox syncs soon; return count.

    Stamps ``sync_requested_at`` on them in one UPDATE (their runs are "Settings saved") and
    queues one dispatcher run (not a task per mailbox from the web request); the dispatcher
    then spreads nothing — these are requests — but queues at most one task each. A changed
    connection or credential counts as "the settings were saved again" for mailboxes stopped
    by a permanent error.
    """
    from exchange_ext.web.config_changes import CREDENTIAL_FIELDS, RESYNC_FIELDS

    now = timezone.now()
    if set(changed) & {*CREDENTIAL_FIELDS, *RESYNC_FIELDS}:
        mailbox_status.lift_all_stops()
    if not ExchangeConfig.load().enabled:
        return 0
    count = MailboxSettings.objects.filter(runnable()).update(
        sync_requested_at=now, sync_requested_trigger=SyncRun.Trigger.SETTINGS_SAVED
    )
    if count:
        transaction.on_commit(_send_dispatch)
    return count


def queued_stale_after() -> dt.timedelta:
    """After this long a queued task that never started is presumed lost.

    The ORM broker re-delivers an unacknowledged task after ``retry``; past ``retry`` plus
    ``timeout`` it has either started or is gone (Redis loses the tasks of a killed worker).
    """
    conf = settings.Q_CLUSTER
    return dt.timedelta(seconds=int(conf.get("retry", 900)) + int(conf.get("timeout", 600)))


def mark_done(mailbox_id: int, task_started: dt.datetime) -> None:
    """The task ended: forget a queued mark made before it started (the lease claim clears
    the mark of a task that runs; this covers the tasks that did not get to run)."""
    MailboxSettings.objects.filter(pk=mailbox_id, queued_at__lte=task_started).update(
        queued_at=None
    )


def _not_queued(now: dt.datetime) -> Q:
    return Q(queued_at__isnull=True) | Q(queued_at__lt=now - queued_stale_after())


def _send_dispatch() -> None:
    from django_q.tasks import async_task

    async_task(DISPATCH_TASK, group=SYNC_GROUP, task_name="exchange-dispatch-now")


def _send(mailbox_id: int, trigger: str) -> None:
    from django_q.tasks import async_task

    async_task(
        SYNC_TASK,
        mailbox_id,
        trigger,
        group=SYNC_GROUP,
        task_name=f"exchange-sync-{mailbox_id}",
    )
