"""The one owner of a mailbox's sync status: every transition of ``MailboxSettings.status``.

The statuses (docs/sync-rules.md, "Statuses"): ``never`` (enabled, not synced yet), ``ok``,
``failing`` (the last run failed; the next one retries), ``disabled`` (stopped by a permanent
error until its settings are saved again). Nobody else writes the field, so each rule about a
transition is written once:

- a run's end sets ``ok``, ``failing`` or ``disabled`` with the operations' bookkeeping
  (:func:`record_run`), fenced by the run's lease;
- saving a mailbox's settings, or a General-tab change of the connection or credentials, lifts
  a permanent stop (:func:`lift_stop`, :func:`lift_all_stops`): the next run tries again;
- the shared sync account refused stops every mailbox that signs in with it at once
  (:func:`stop_shared_account`); only saving the General tab lifts that stop
  (:func:`lift_shared_stops`), never a resource's own tab;
- the watchdog turns a mailbox with no completed sync for too long from ``ok``/``never`` into
  ``failing`` (:func:`mark_overdue`; docs/sync-rules.md, "Notifications");
- enabling a resource again starts it afresh (:func:`reenable_values`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import Case, F, Q, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from exchange_ext.backends.base import (
    AppCredentialsRefused,
    BackendError,
    GuardTripped,
    SharedCredentialsRefused,
    SyncOverdue,
)
from exchange_ext.models import ExchangeConfig, MailboxSettings

Status = MailboxSettings.Status
#: The stored kinds of a stop caused by the shared credentials (lifted by the General tab only).
SHARED_STOP_KINDS = (SharedCredentialsRefused.kind, AppCredentialsRefused.kind)
STOPPED_REASON = _("Sync stopped after a permanent error; save the resource's settings to retry.")
SHARED_STOP_REASON = _(
    "Sync stopped: the sync account's credentials were refused; an administrator updates them "
    "on the General tab."
)


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
    holds deletions, ``failing`` when the backend failed transiently or the run met an
    unexpected error, ``disabled`` for a permanent failure — for the shared credentials
    refused, every mailbox using them with it (:func:`stop_shared_account`).

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
    if isinstance(error, SharedCredentialsRefused):
        values |= _shared_stop(error)
    if mine.update(**values) and isinstance(error, SharedCredentialsRefused):
        stop_shared_account(error, started)


def uses_shared_account(config: ExchangeConfig) -> bool:
    """Whether mailboxes sign in with the General tab's credentials: the sync account with
    "use these credentials for all users", or the app registration (Office 365)."""
    return config.use_for_all_users or not config.use_basic_auth


def stop_shared_account(error: SharedCredentialsRefused, started: dt.datetime) -> int:
    """The shared credentials were refused: every runnable mailbox that signs in with them
    stops now, with the fix in plain words, instead of each trying them once more (a lock-out
    storm against the directory). Returns how many more stopped."""
    if not uses_shared_account(ExchangeConfig.load()):
        return 0  # the public folder job's account; the mailboxes use their own logins
    since = Coalesce(F("failing_since"), Value(started))
    return MailboxSettings.objects.filter(runnable()).update(
        **_shared_stop(error), failing_since=since
    )


def _shared_stop(error: SharedCredentialsRefused) -> dict[str, Any]:
    # Stored as one of two kinds (never a backend's subclass, e.g. Graph's TokenRefused), so
    # the stop can be found again without importing any backend.
    app = isinstance(error, AppCredentialsRefused)
    kind = AppCredentialsRefused.kind if app else SharedCredentialsRefused.kind
    return {"status": Status.DISABLED, "last_error": error.stop_message(), "last_error_kind": kind}


def lift_stop(mailbox_id: int) -> None:
    """The mailbox's settings were saved: a permanent stop becomes a failure the next run
    retries (a mailbox in any other status is left as it is). A stop of the shared credentials
    stays: its fix is on the General tab, and a retry would only try them once more."""
    stopped_here = MailboxSettings.objects.filter(pk=mailbox_id, status=Status.DISABLED)
    stopped_here.exclude(last_error_kind__in=SHARED_STOP_KINDS).update(status=Status.FAILING)


def lift_shared_stops() -> int:
    """The General tab was saved (its connection test passed when the integration is on):
    the stop of the shared credentials is lifted; return how many mailboxes retry."""
    shared = MailboxSettings.objects.filter(
        status=Status.DISABLED, last_error_kind__in=SHARED_STOP_KINDS
    )
    return shared.update(status=Status.FAILING)


def shared_account_stopped() -> bool:
    """Whether the shared credentials were refused and nobody saved the General tab since."""
    return MailboxSettings.objects.filter(
        sync_enabled=True, status=Status.DISABLED, last_error_kind__in=SHARED_STOP_KINDS
    ).exists()


def lift_all_stops() -> None:
    """The shared connection or credentials changed: every permanent stop is lifted."""
    MailboxSettings.objects.filter(status=Status.DISABLED).update(status=Status.FAILING)


def reenable_values() -> Any:
    """The ``status`` expression for resources enabled again: a stopped one starts afresh."""
    return Case(When(status=Status.DISABLED, then=Value(Status.NEVER)), default=F("status"))


def reenabled(status: str) -> str:
    """What :func:`reenable_values` makes of ``status`` (to mirror the UPDATE in memory)."""
    return Status.NEVER if status == Status.DISABLED else status


def in_service() -> Q:
    """The mailboxes that sync at all: enabled on the Resources tab, of a resource that is active
    in the PSA and whose login is not disabled (docs/sync-rules.md, "Inactive resources").
    Leaving service changes nothing stored: reactivating the resource resumes its sync."""
    return Q(sync_enabled=True, resource__active=True, resource__user__is_active=True)


def runnable() -> Q:
    """The mailboxes a run may start for: in service and not stopped by a permanent error."""
    return in_service() & ~Q(status=Status.DISABLED)


def inactive_reason(mailbox: MailboxSettings) -> str:
    """Why ``mailbox``'s resource is out of service (see :func:`in_service`), in plain words;
    ``""`` when it is active and may log in."""
    resource = mailbox.resource
    if not resource.active:
        return gettext(
            "The resource is inactive in the PSA; its sync resumes when it is reactivated."
        )
    if not resource.user.is_active:
        return gettext(
            "The resource's login is disabled; its sync resumes when the login is enabled again."
        )
    return ""


def stopped(mailbox: MailboxSettings) -> bool:
    """Whether a permanent error stopped ``mailbox`` until its settings are saved again."""
    return mailbox.status == Status.DISABLED


def stop_reason(mailbox: MailboxSettings) -> str:
    """Why a stopped mailbox's runs are skipped, naming the tab whose save lifts the stop."""
    shared = mailbox.last_error_kind in SHARED_STOP_KINDS
    return str(SHARED_STOP_REASON if shared else STOPPED_REASON)


# --- the watchdog (docs/sync-rules.md, "Notifications") ------------------------------------


def overdue(cutoff: dt.datetime, *, queued_before: dt.datetime) -> Q:
    """Runnable ``ok``/``never`` mailboxes with no sync completed since ``cutoff`` (counted from
    their enabling when they never completed one), not queued since ``queued_before``."""
    stale = Q(last_success_at__lt=cutoff) | Q(last_success_at__isnull=True, enabled_at__lt=cutoff)
    waited = Q(last_dispatched_at__isnull=True) | Q(last_dispatched_at__lt=queued_before)
    return runnable() & Q(status__in=[Status.OK, Status.NEVER]) & stale & waited


def mark_overdue(mailbox_id: int, found_overdue: Q, message: str, now: dt.datetime) -> bool:
    """The watchdog's finding: the mailbox, if still ``found_overdue`` (:func:`overdue`), counts
    as failing with ``message`` (what it found). A run that completes sets ``ok`` again. The
    run counters are left alone: no run failed, so the dispatcher does not back off."""
    found = MailboxSettings.objects.filter(found_overdue, pk=mailbox_id)
    since = Coalesce(F("failing_since"), Value(now))
    values = {"status": Status.FAILING, "last_error": message, "failing_since": since}
    return bool(found.update(**values, last_error_kind=SyncOverdue.kind))
