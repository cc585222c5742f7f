"""The one owner of a mailbox's sync status: every transition of ``MailboxSettings.status``.

The statuses (docs/sync-rules.md, "Statuses"): ``never`` (enabled, not synced yet), ``ok``,
``failing`` (the last run failed; the next one retries), ``disabled`` (stopped by a permanent
error until its settings are saved again). Nobody else writes the field, so each rule about a
transition is written once:

- a run's end sets ``ok``, ``failing`` or ``disabled`` with the operations' bookkeeping
  (:func:`record_run`), fenced by the run's lease;
- saving a mailbox's settings, or a General-tab change of the connection or credentials, lifts
  a permanent stop (:func:`lift_stop`, :func:`lift_all_stops`): the next run tries again;
- enabling a resource again starts it afresh (:func:`reenable_values`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import Case, F, Q, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from exchange_ext.backends.base import BackendError, GuardTripped
from exchange_ext.models import MailboxSettings

Status = MailboxSettings.Status


def record_run(
    mailbox_id: int,
    token: int,
    started: dt.datetime,
    *,
    error: BackendError | None = None,
    message: str = "",
    guard_tripped: bool = False,
) -> None:
    """A run's end: ``ok`` when it completed (``message`` empty), ``held`` while the guard
    holds deletions, ``failing`` when the backend failed transiently, ``disabled`` for a
    permanent failure.

    Fenced: a worker that lost its lease (``token``) writes nothing. Also keeps the operations'
    bookkeeping: the error kind, the count of consecutive failed runs (the dispatcher's
    back-off) and since when the mailbox fails (the notifications).
    """
    mine = MailboxSettings.objects.filter(pk=mailbox_id, lease_token=token)
    values: dict[str, Any]
    if error is None and not guard_tripped:
        values = {"status": Status.OK, "last_error": "", "last_error_kind": ""}
        values |= {"last_success_at": timezone.now(), "consecutive_failures": 0}
        values["failing_since"] = None
    elif error is None:
        # Held deletions wait for an administrator; everything else syncs on, so this is no
        # failure for the back-off (docs/sync-rules.md, "Mass-delete guard").
        values = {"status": Status.HELD, "last_error": message}
        values |= {"last_error_kind": GuardTripped.kind, "consecutive_failures": 0}
        values |= {"last_success_at": timezone.now(), "failing_since": None}
    else:
        permanent = error.permanent
        status = Status.DISABLED if permanent else Status.FAILING
        values = {"status": status, "last_error": message, "last_error_kind": error.kind}
        values["consecutive_failures"] = F("consecutive_failures") + 1
        values["failing_since"] = Coalesce(F("failing_since"), Value(started))
    mine.update(**values)


def lift_stop(mailbox_id: int) -> None:
    """The mailbox's settings were saved: a permanent stop becomes a failure the next run
    retries (a mailbox in any other status is left as it is)."""
    MailboxSettings.objects.filter(pk=mailbox_id, status=Status.DISABLED).update(
        status=Status.FAILING
    )


def lift_all_stops() -> None:
    """The shared connection or credentials changed: every permanent stop is lifted."""
    MailboxSettings.objects.filter(status=Status.DISABLED).update(status=Status.FAILING)


def reenable_values() -> Any:
    """The ``status`` expression for resources enabled again: a stopped one starts afresh."""
    return Case(When(status=Status.DISABLED, then=Value(Status.NEVER)), default=F("status"))


def reenabled(status: str) -> str:
    """What :func:`reenable_values` makes of ``status`` (to mirror the UPDATE in memory)."""
    return Status.NEVER if status == Status.DISABLED else status


def runnable() -> Q:
    """The mailboxes a run may start for: enabled and not stopped by a permanent error."""
    return Q(sync_enabled=True) & ~Q(status=Status.DISABLED)


def stopped(mailbox: MailboxSettings) -> bool:
    """Whether a permanent error stopped ``mailbox`` until its settings are saved again."""
    return mailbox.status == Status.DISABLED
