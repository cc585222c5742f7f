"""Requesting and queuing "Remove synced items" (docs/sync-rules.md, "Removing synced items").

:func:`request_removal` is what the administrator's confirmation does, in one transaction:
switch the chosen kinds off — the whole resource when every kind is chosen — so no run
re-creates them, store the request on the mailbox, and queue the removal task after commit.
The request is durable: a task that found a sync holding the mailbox (the lease) leaves it
pending, and the dispatcher's every-minute tick queues it again once the mailbox is idle
(:func:`queue_pending_removals`).

At most one removal task is queued per mailbox, as for syncs (:mod:`.dispatcher`): a
compare-and-set on ``removal_queued_at``, cleared when the task starts; a mark older than the
broker's retry + timeout is presumed lost.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from exchange_ext.engine.removal import KIND_SWITCHES, format_kinds, parse_kinds
from exchange_ext.jobs.dispatcher import SYNC_GROUP, queued_stale_after
from exchange_ext.models import MailboxSettings
from exchange_ext.sync.records import ItemKind

REMOVAL_TASK = "exchange_ext.tasks.remove_synced_items"


def request_removal(
    mailbox: MailboxSettings, kinds: Iterable[ItemKind], now: dt.datetime | None = None
) -> frozenset[ItemKind]:
    """Turn the sync of ``kinds`` off and ask for their removal; return every kind now pending
    (a request still pending is widened, never narrowed)."""
    chosen = frozenset(kinds)
    now = now or timezone.now()
    with transaction.atomic():
        current = MailboxSettings.objects.filter(pk=mailbox.pk).values_list(
            "removal_kinds", "removal_requested_at"
        )
        stored_kinds, requested_at = current.get()
        pending = chosen | (parse_kinds(stored_kinds) if requested_at else frozenset())
        MailboxSettings.objects.filter(pk=mailbox.pk).update(
            **switches_off(chosen), removal_kinds=format_kinds(pending), removal_requested_at=now
        )
        enqueue_removal(mailbox.pk, now)
    return pending


def switches_off(kinds: frozenset[ItemKind]) -> dict[str, bool]:
    """The settings that stop syncing ``kinds``: the resource's sync when all are chosen (its
    imports too), else each kind's export switch."""
    if kinds == frozenset(ItemKind):
        return {"sync_enabled": False}
    return {KIND_SWITCHES[kind]: False for kind in kinds}


def enqueue_removal(mailbox_id: int, now: dt.datetime | None = None) -> bool:
    """Queue the removal task unless one is queued; True when this call queued it (sent after
    the surrounding transaction commits)."""
    now = now or timezone.now()
    claimed = MailboxSettings.objects.filter(_not_queued(now), pk=mailbox_id).update(
        removal_queued_at=now
    )
    if claimed:
        transaction.on_commit(lambda: _send(mailbox_id))
    return bool(claimed)


def queue_pending_removals(now: dt.datetime | None = None) -> list[int]:
    """Queue a removal of every mailbox with a pending request that no run holds; return the
    ids queued. (A mailbox whose sync is off still gets its removal.)"""
    now = now or timezone.now()
    idle = Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lte=now)
    pending = MailboxSettings.objects.filter(
        idle, _not_queued(now), removal_requested_at__isnull=False
    )
    ids = list(pending.order_by("pk").values_list("pk", flat=True))
    return [pk for pk in ids if enqueue_removal(pk, now)]


def mark_started(mailbox_id: int, task_started: dt.datetime) -> None:
    """The task runs: a later change may queue the next one."""
    MailboxSettings.objects.filter(pk=mailbox_id, removal_queued_at__lte=task_started).update(
        removal_queued_at=None
    )


def _not_queued(now: dt.datetime) -> Q:
    return Q(removal_queued_at__isnull=True) | Q(removal_queued_at__lt=now - queued_stale_after())


def _send(mailbox_id: int) -> None:
    from django_q.tasks import async_task

    async_task(
        REMOVAL_TASK, mailbox_id, group=SYNC_GROUP, task_name=f"exchange-remove-{mailbox_id}"
    )
