"""The one runner of every sync job: claim the lease → run → record the outcome → release.

A mailbox cycle (:mod:`exchange_ext.engine.cycle`) and the public contacts folder job
(:mod:`exchange_ext.engine.public_folder`) differ in what they read and write and where they
keep their state; everything around that is here, once:

- the lease with its fencing token (:mod:`exchange_ext.engine.leases`): one run per target at a
  time, and a worker that lost its lease writes nothing;
- the run's record (:mod:`exchange_ext.engine.runs`): started, then finished with an outcome,
  or skipped with the reason;
- **the one error boundary** (docs/sync-rules.md, "Errors"): a :class:`BackendError` becomes
  the run's outcome in plain words and the job records it on its state; a lost lease fails the
  run; anything else (a bug, a database error, django-q's timeout, which is a ``SystemExit``)
  is recorded the same way as an :class:`UnexpectedError` — the run failed, the mailbox
  failing with the exception's type only, a failure for the back-off and the alerts — its
  traceback goes to the server log, and it propagates after the lease is released (django-q
  marks the task failed).
"""

from __future__ import annotations

import abc
import datetime as dt
import logging

from django.conf import settings
from django.utils import timezone, translation

from exchange_ext.backends.base import BackendError, UnexpectedError
from exchange_ext.engine import leases
from exchange_ext.engine.runs import RunLog, finish_run, skipped_run, start_run
from exchange_ext.models import MailboxSettings, SyncRun

logger = logging.getLogger(__name__)

#: A run's time budget; shorter than the worker's task timeout, itself shorter than its retry.
DEFAULT_BUDGET_SECONDS = 240.0
#: A feed that keeps returning "more" without moving is a server bug (docs/reliability.md, "#14").
MAX_PAGES_PER_FOLDER = 1000
Outcome = SyncRun.Outcome


class Job(abc.ABC):
    """What one kind of run does between claim and release; the runner does the rest."""

    #: The mailbox the run belongs to (``None``: the installation-wide public folder).
    mailbox: MailboxSettings | None
    #: Recorded on the run: "ews", "graph" or "memory".
    backend_name: str
    #: The run's reason when the lease is held elsewhere.
    busy_reason: str

    def why_not_runnable(self) -> str:
        """Why the job must not run now, in plain words (a skipped run); ``""`` when it may."""
        return ""

    @abc.abstractmethod
    def claim(self) -> int | None:
        """Take the lease; its fencing token, or ``None`` when another run holds it."""

    @abc.abstractmethod
    def release(self, token: int) -> None:
        """Give the lease back (only if ``token`` still holds it)."""

    @abc.abstractmethod
    def run(self, token: int, log: RunLog, started: dt.datetime) -> tuple[str, str]:
        """Do the work; return the run's ``(outcome, message)``. Raises :class:`BackendError`
        when the backend stops the whole run, :class:`leases.StaleLease` when fenced out."""

    def describe_failure(self, error: BackendError) -> str:
        """The run's error text when ``error`` stopped it (its plain words by default)."""
        return error.in_plain_words()

    @abc.abstractmethod
    def failed(self, token: int, error: BackendError, message: str, started: dt.datetime) -> None:
        """Record a run the backend stopped (``message``: its plain words) on the job's state."""


def run_job(job: Job, *, trigger: str) -> SyncRun:
    """Run ``job`` once under its lease and return its recorded :class:`SyncRun`.

    Never raises for backend or per-item errors (they are the run's outcome); a bug or a kill
    propagates after the run and the job's state are marked failed and the lease released.
    What a run stores in words (its error, a stop reason) is in the installation's language
    (``PSA_LANGUAGE``, docs/i18n.md), whichever language the calling thread had active (a web
    request's, when "Sync now" runs in the foreground).
    """
    with translation.override(settings.LANGUAGE_CODE):
        return _run_job(job, trigger=trigger)


def _run_job(job: Job, *, trigger: str) -> SyncRun:
    reason = job.why_not_runnable()
    if reason:
        target = f"mailbox {job.mailbox.pk}" if job.mailbox else "the public contacts folder"
        logger.info("exchange sync of %s skipped: %s", target, reason)
        return skipped_run(job.mailbox, trigger=trigger, reason=reason)
    token = job.claim()
    if token is None:
        return skipped_run(job.mailbox, trigger=trigger, reason=job.busy_reason)
    try:
        return _run_claimed(job, token, trigger)
    finally:
        job.release(token)


def _run_claimed(job: Job, token: int, trigger: str) -> SyncRun:
    started = timezone.now()
    log = RunLog(start_run(job.mailbox, trigger=trigger, backend=job.backend_name))
    try:
        outcome, message = job.run(token, log, started)
    except BackendError as error:
        message = job.describe_failure(error)
        job.failed(token, error, message, started)
        return finish_run(log, Outcome.FAILED, message)
    except leases.StaleLease as error:
        return finish_run(log, Outcome.FAILED, str(error))
    except BaseException as error:
        _record_unexpected(job, token, error, log, started)
        raise
    return finish_run(log, outcome, message)


def _record_unexpected(
    job: Job, token: int, error: BaseException, log: RunLog, started: dt.datetime
) -> None:
    """A run stopped by something no backend reported: log its traceback here (its message
    may hold anything), record only its type, and never hide it behind a second failure."""
    target = job.mailbox.pk if job.mailbox is not None else "public folder"
    logger.error("exchange sync of %s stopped on an unexpected error", target, exc_info=error)
    unexpected = UnexpectedError.for_exception(error)
    message = unexpected.in_plain_words()
    try:
        job.failed(token, unexpected, message, started)
    except Exception:  # e.g. the database went away: the original error still propagates
        logger.exception("the failure of the exchange sync of %s could not be recorded", target)
    try:
        finish_run(log, Outcome.FAILED, message)
    except Exception:
        logger.exception("the run of the exchange sync of %s could not be closed", target)
