"""django-q2 entry points. Module-level functions with stable dotted names, taking ids only.

- ``exchange_ext.tasks.dispatch`` — the ``exchange-sync-due`` schedule (every minute): queues
  the due mailboxes, marks those with no sync for too long (the watchdog), then sends the
  notifications their statuses call for.
- ``exchange_ext.tasks.watchdog`` — the ``exchange-watchdog`` schedule (every five minutes)
  and ``manage.py exchange_watchdog`` (cron, outside the cluster): the watchdog on its own
  (:mod:`exchange_ext.jobs.watchdog`).
- ``exchange_ext.tasks.sync_mailbox(mailbox_settings_id, trigger)`` — one sync run.
- ``exchange_ext.tasks.sync_public_folder(trigger)`` — one run of the public contacts folder
  job (queued by the dispatcher once per interval when the option is on).
- ``exchange_ext.tasks.remove_synced_items(mailbox_settings_id)`` — serve the mailbox's
  pending "Remove synced items" request (queued by the confirmation, and again by the
  dispatcher while a sync holds the mailbox).

Timing contract (checked at start-up, :mod:`exchange_ext.checks`): a run stops between pages
at its *budget*; one backend call may still wait up to the backend's retry budget; the task
``timeout`` comes after both, and the lease outlives the timeout, so no second worker claims a
mailbox while the first may be alive; ``retry`` (the ORM broker's re-delivery) comes after the
lease, so a task re-delivered after a killed worker finds the mailbox free and resumes it.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Callable
from typing import TypeVar

from django.conf import settings
from django.utils import timezone

from exchange_ext import engine
from exchange_ext.engine import public_folder, removal
from exchange_ext.jobs import dispatcher, notifications, removals
from exchange_ext.jobs import watchdog as sync_watchdog
from exchange_ext.models import MailboxSettings, SyncRun

logger = logging.getLogger(__name__)

BUDGET_ENV = "EXCHANGE_SYNC_BUDGET_SECONDS"
ABANDONED_MESSAGE = "The worker stopped during this run; a later run continued from its last page."
#: Seconds between the end of a run's last backend call and the task timeout (commit, release).
MARGIN_SECONDS = 10.0


def sync_mailbox(mailbox_settings_id: int, trigger: str = SyncRun.Trigger.SCHEDULED) -> str:
    """Run one sync of the mailbox; return a one-line summary for the worker log (successful
    tasks are not stored: the run is, as a SyncRun; psa/settings.py, ``save_limit``).

    A mailbox deleted or disabled since it was queued is skipped quietly; a second delivery
    of the same task (or a concurrent one) is skipped by the lease.
    """
    started = timezone.now()
    try:
        if not MailboxSettings.objects.filter(pk=mailbox_settings_id).exists():
            return f"mailbox settings {mailbox_settings_id} no longer exist"
        close_abandoned_runs(mailbox_settings_id, started)
        run = engine.run_sync(
            mailbox_settings_id,
            trigger=trigger,
            budget_seconds=sync_budget_seconds(),
            lease_seconds=lease_seconds(),
        )
    finally:
        # The claim cleared the queued mark; a task that did not run (skipped, failed before
        # the claim) clears its own — but never a mark set by a change after it started.
        dispatcher.mark_done(mailbox_settings_id, started)
    return f"mailbox {mailbox_settings_id}: {run.outcome} {run.error}".strip()


def close_abandoned_runs(mailbox_settings_id: int | None, now: dt.datetime) -> int:
    """Mark runs left "running" by a killed worker as failed; return how many.

    No run outlives its lease, so a run still "running" after a whole lease is abandoned —
    whoever holds the mailbox now started later. Keeps the sync log truthful after a SIGKILL.
    """
    cutoff = now - dt.timedelta(seconds=lease_seconds())
    return SyncRun.objects.filter(
        mailbox_settings_id=mailbox_settings_id,
        outcome=SyncRun.Outcome.RUNNING,
        started_at__lt=cutoff,
    ).update(outcome=SyncRun.Outcome.FAILED, finished_at=now, error=ABANDONED_MESSAGE)


def sync_public_folder(trigger: str = SyncRun.Trigger.SCHEDULED) -> str:
    """Run the public contacts folder job once (same timing contract as a mailbox's run);
    a no-op when the option was turned off since it was queued."""
    close_abandoned_runs(None, timezone.now())  # its runs have no mailbox
    run = public_folder.run_public_folder_sync(
        trigger=trigger, budget_seconds=sync_budget_seconds(), lease_seconds=lease_seconds()
    )
    if run is None:
        return "public contacts folder: not synced (off, or no public folders)"
    return f"public contacts folder: {run.outcome} {run.error}".strip()


def remove_synced_items(mailbox_settings_id: int) -> str:
    """Serve the mailbox's pending removal request once (same timing contract as a sync);
    a run stopped by its budget queues the rest at once. Nothing requested: a no-op."""
    started = timezone.now()
    removals.mark_started(mailbox_settings_id, started)
    if not MailboxSettings.objects.filter(pk=mailbox_settings_id).exists():
        return f"mailbox settings {mailbox_settings_id} no longer exist"
    close_abandoned_runs(mailbox_settings_id, started)
    run = removal.run_removal(
        mailbox_settings_id, budget_seconds=sync_budget_seconds(), lease_seconds=lease_seconds()
    )
    if run is None:
        return f"mailbox {mailbox_settings_id}: no removal requested"
    still_pending = MailboxSettings.objects.filter(
        pk=mailbox_settings_id, removal_requested_at__isnull=False
    ).exists()
    if still_pending and run.outcome != SyncRun.Outcome.SKIPPED:
        removals.enqueue_removal(mailbox_settings_id)  # the budget ran out: continue now
    return f"mailbox {mailbox_settings_id} removal: {run.outcome} {run.error}".strip()


def dispatch() -> str:
    """The every-minute schedule: queue due syncs and pending removals, then evaluate
    notifications.

    A failing email never stops the queuing (it ran first) nor fails the schedule; a failing
    queuing never stops the watchdog and the alerts about what it leaves undone (each step is
    guarded on its own).
    """
    queued = _guarded("queuing", dispatcher.queue_due, [])
    _guarded("removals", removals.queue_pending_removals, [])
    _guarded("watchdog", lambda: sync_watchdog.mark_overdue(timezone.now()), 0)
    sent = _guarded("notifications", notifications.evaluate, [])
    return f"queued {len(queued)} syncs; {len(sent)} notification emails"


def maintain_push() -> str:
    """The ``exchange-push`` schedule: Graph change-notification subscriptions kept in step
    with the enabled mailboxes (:mod:`exchange_ext.jobs.push`). Never raises."""
    from exchange_ext.jobs import push

    summary = _guarded("push", push.maintain_graph_subscriptions, None)
    return f"push subscriptions: {summary}" if summary else "push subscriptions: failed"


def watchdog(now: dt.datetime | None = None) -> str:
    """The ``exchange-watchdog`` schedule and ``manage.py exchange_watchdog``: put back lost
    schedules, mark overdue mailboxes and, while the dispatcher does not fire (a cluster that
    does not run, a schedule that was lost), send the alerts the dispatcher would have sent.

    ``now``: the clock (tests time-travel it). Never raises: each step is guarded on its own.
    """
    now = now or timezone.now()
    restored = _guarded("schedules", sync_watchdog.restore_schedules, False)
    overdue = _guarded("watchdog", lambda: sync_watchdog.mark_overdue(now), 0)
    stalled = _guarded("watchdog", lambda: sync_watchdog.dispatcher_stalled(now), "")
    sent = _guarded("notifications", lambda: notifications.evaluate(now), []) if stalled else []
    notes = ["schedules restored"] * restored + [stalled] * bool(stalled)
    return "; ".join([f"{overdue} mailboxes overdue", f"{len(sent)} notification emails", *notes])


_T = TypeVar("_T")


def _guarded(step: str, call: Callable[[], _T], fallback: _T) -> _T:
    try:
        return call()
    except Exception:  # logged with its traceback; the other steps still run
        logger.exception("exchange %s step failed", step)
        return fallback


# --- the timing contract --------------------------------------------------------------------


def sync_budget_seconds() -> float:
    """The sync budget: ``EXCHANGE_SYNC_BUDGET_SECONDS`` or the engine's default."""
    raw = os.environ.get(BUDGET_ENV, "").strip()
    try:
        return float(raw) if raw else engine.DEFAULT_BUDGET_SECONDS
    except ValueError:
        return engine.DEFAULT_BUDGET_SECONDS


def backend_retry_budget_seconds() -> float:
    """How long one backend call may wait for throttling (the EWS backend's setting)."""
    from exchange_ext.backends import factory

    return factory._retry_budget()


def task_timeout_seconds() -> float:
    return float(settings.Q_CLUSTER.get("timeout") or 0)


def task_retry_seconds() -> float:
    return float(settings.Q_CLUSTER.get("retry") or 0)


def lease_seconds() -> float:
    """The lease a worker takes: past the task timeout, when django-q has killed the task."""
    return task_timeout_seconds() + MARGIN_SECONDS
