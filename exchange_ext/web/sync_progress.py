"""Where a mailbox's sync stands, for the live progress block of its settings page (issue 15,
item 1): requested → queued → running → done.

The state is read from the mailbox's row (``sync_requested_at``, ``queued_at``, the lease) and
its newest :class:`~exchange_ext.models.SyncRun`; nothing here writes. The page renders the
block server-side (a reload shows the same), and while the state is active the block polls
its fragment URL, which answers HTTP 286 once the run is done so htmx stops polling.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

from django.utils import timezone

from exchange_ext.models import ExchangeConfig, MailboxSettings, SyncRun

#: htmx stops an ``every`` trigger's polling when the server answers with this status.
STOP_POLLING = 286


class Stage(StrEnum):
    """The block's states, in the order a "Sync now" goes through them."""

    IDLE = "idle"  # nothing requested and no run yet
    REQUESTED = "requested"  # a request waits for the dispatcher to queue it
    QUEUED = "queued"  # a task waits for a worker
    RUNNING = "running"  # a worker holds the mailbox's lease
    DONE = "done"  # nothing pending: the newest run tells how it ended


@dataclass(frozen=True)
class SyncProgress:
    """The block's content: the stage, since when, and the run it is about (if any)."""

    stage: Stage
    since: dt.datetime | None
    run: SyncRun | None

    @property
    def active(self) -> bool:
        """Whether the block should keep polling: something is still to happen."""
        return self.stage in (Stage.REQUESTED, Stage.QUEUED, Stage.RUNNING)

    @property
    def status_code(self) -> int:
        """The fragment's HTTP status: 200 while polling, 286 (stop) once settled."""
        return 200 if self.active else STOP_POLLING


def sync_progress(
    settings: MailboxSettings, config: ExchangeConfig, now: dt.datetime | None = None
) -> SyncProgress:
    """Where ``settings``' sync stands at ``now``.

    A request the dispatcher will never serve (the integration or the resource's sync turned
    off) is not shown as waiting: the block would poll for ever.
    """
    now = now or timezone.now()
    latest = _latest_run(settings)
    runnable = config.enabled and settings.sync_enabled
    if settings.pk is not None and _lease_held(settings, now):
        run = latest if latest is not None and latest.finished_at is None else None
        return SyncProgress(Stage.RUNNING, run.started_at if run else settings.last_attempt_at, run)
    if runnable and settings.queued_at is not None:
        return SyncProgress(Stage.QUEUED, settings.queued_at, None)
    if runnable and settings.sync_requested_at is not None:
        return SyncProgress(Stage.REQUESTED, settings.sync_requested_at, None)
    if latest is None:
        return SyncProgress(Stage.IDLE, None, None)
    return SyncProgress(Stage.DONE, latest.finished_at or latest.started_at, latest)


def _lease_held(settings: MailboxSettings, now: dt.datetime) -> bool:
    expires = settings.lease_expires_at
    return bool(settings.lease_holder) and expires is not None and expires > now


def _latest_run(settings: MailboxSettings) -> SyncRun | None:
    if settings.pk is None:
        return None
    return SyncRun.objects.filter(mailbox_settings=settings).first()
