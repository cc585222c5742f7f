"""The watchdog: a sync that stops without failing is reported like a failure
(docs/sync-rules.md, "Notifications"; docs/reliability.md, "#59").

Nothing fails when a worker is killed mid-run, the broker loses a task, the dispatcher no
longer queues a mailbox or the cluster does not run at all: runs simply stop happening. So an
enabled, not stopped mailbox that is ``ok`` or ``never`` and has completed no sync for
:func:`overdue_after` (six sync intervals, at least an hour; counted from its enabling when it
never completed one, and from the configuration's last save — turning the integration back on
after a pause is no silent stop) becomes ``failing``, kind
:class:`~exchange_ext.backends.base.SyncOverdue`, with what the watchdog found in plain words
(:func:`mark_overdue`). The alerts then treat it like any failure: one email at once, a
reminder a day, a recovery email when a run completes (which sets ``ok`` again). A mailbox the
dispatcher queued less than :func:`queued_grace` ago (a resource reactivated after weeks, say)
first gets that chance to complete a run.

It runs where it does not die with what it watches (``exchange_ext.tasks``): in the
dispatcher's every-minute tick; as its own schedule ``exchange-watchdog`` every five minutes,
which also puts back a lost or altered schedule and sends the alerts itself while the
dispatcher no longer fires; and from outside the cluster, ``manage.py exchange_watchdog`` from
cron or a systemd timer — the one way to notice a cluster that does not run at all.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from django.conf import settings

from exchange_ext.engine import status as mailbox_status
from exchange_ext.jobs.schedules import DISPATCH_SCHEDULE, ensure_schedules, schedules_in_place
from exchange_ext.models import ExchangeConfig, MailboxSettings

logger = logging.getLogger(__name__)

OVERDUE_INTERVALS = 6
OVERDUE_AT_LEAST = dt.timedelta(hours=1)
#: The dispatcher fires every minute: this far behind, nothing runs the cluster's schedules.
DISPATCHER_LATE = dt.timedelta(minutes=5)
_FIELDS = ("pk", "last_success_at", "enabled_at", "last_attempt_at", "queued_at")
_LEASE_FIELDS = ("lease_holder", "lease_expires_at")


def overdue_after(config: ExchangeConfig) -> dt.timedelta:
    """How long a mailbox may go without a completed sync: six intervals, at least an hour."""
    interval = dt.timedelta(minutes=config.sync_interval_minutes)
    return max(OVERDUE_INTERVALS * interval, OVERDUE_AT_LEAST)


def overdue_cutoff(config: ExchangeConfig, now: dt.datetime) -> dt.datetime | None:
    """A mailbox whose last completed sync (or enabling) is older than this is overdue;
    ``None`` while the configuration was saved more recently (the count starts afresh)."""
    cutoff = now - overdue_after(config)
    return cutoff if config.updated_at is None or config.updated_at < cutoff else None


def queued_grace() -> dt.timedelta:
    """How long a queued sync may take to complete before its mailbox can be overdue: the
    task timeout, past which django-q has ended it anyway."""
    return dt.timedelta(seconds=int(settings.Q_CLUSTER.get("timeout") or 600))


def is_overdue(row: MailboxSettings, now: dt.datetime, config: ExchangeConfig) -> bool:
    """Whether ``row`` completed no sync since :func:`overdue_cutoff` (since its enabling if
    it never did)."""
    cutoff = overdue_cutoff(config, now)
    since = row.last_success_at or row.enabled_at
    return cutoff is not None and since is not None and since < cutoff


def mark_overdue(now: dt.datetime) -> int:
    """Mark every overdue mailbox failing with what was found; return how many."""
    config = ExchangeConfig.load()
    cutoff = overdue_cutoff(config, now)
    if not config.enabled or cutoff is None:
        return 0
    stalled = dispatcher_stalled(now)
    overdue = mailbox_status.overdue(cutoff, queued_before=now - queued_grace())
    rows = MailboxSettings.objects.filter(overdue)
    marked = 0
    for row in rows.values(*_FIELDS, *_LEASE_FIELDS):
        message = f"{_no_sync_since(row)} {stalled or _cause(row, now, cutoff)}"
        marked += mailbox_status.mark_overdue(row["pk"], overdue, message, now)
    if marked:
        logger.warning("exchange watchdog: %s mailboxes completed no sync since %s", marked, cutoff)
    return marked


def dispatcher_stalled(now: dt.datetime) -> str:
    """What is wrong with the dispatch schedule, in plain words; ``""`` while it fires."""
    from django_q.models import Schedule

    next_run = (
        Schedule.objects.filter(name=DISPATCH_SCHEDULE).values_list("next_run", flat=True).first()
    )
    if next_run is None:
        return "The dispatch schedule (exchange-sync-due) is missing, so nothing queues syncs."
    if next_run >= now - DISPATCHER_LATE:
        return ""
    return (
        f"The background worker has not run the dispatcher since {_when(next_run)}: check "
        "that manage.py qcluster runs."
    )


def restore_schedules() -> bool:
    """Put back a schedule that was deleted or altered (in the Django admin, by a restored
    backup); True when one was. The upsert keeps a live schedule's next run."""
    if schedules_in_place():
        return False
    logger.warning("exchange schedules were missing or altered: restored")
    ensure_schedules()
    return True


def _no_sync_since(row: dict[str, Any]) -> str:
    if row["last_success_at"] is not None:
        return f"No sync has completed since {_when(row['last_success_at'])}."
    return f"No sync has completed since the resource was enabled ({_when(row['enabled_at'])})."


def _cause(row: dict[str, Any], now: dt.datetime, cutoff: dt.datetime) -> str:
    lease_until = row["lease_expires_at"]
    if row["lease_holder"] and lease_until is not None and lease_until <= now:
        return (
            f"Its last run was left unfinished: the worker {row['lease_holder']} stopped during it."
        )
    if lease_until is not None and lease_until > now:
        return "A run is going on, but none has completed since."
    if row["queued_at"] is not None:
        return (
            f"A sync was queued at {_when(row['queued_at'])} and never started: the task was "
            "lost, or no worker takes tasks."
        )
    attempt = row["last_attempt_at"]
    if attempt is None or attempt < cutoff:
        return "No run has started since: the dispatcher does not queue it."
    return "Its runs start but none completes; see its sync log."


def _when(moment: dt.datetime) -> str:
    return f"{moment.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC"
