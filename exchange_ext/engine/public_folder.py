"""The public contacts folder job: every active PSA contact in one public folder (EWS only).

The Synchronization tab's ``public_contacts_folder`` (docs/sync-rules.md, "Public contacts
folder"): one-way PSA → Exchange, nothing flows back. One installation-wide job, not a
per-mailbox one: :func:`run_public_folder_sync` reads every active contact of every account,
plans with the same pure planner as the mailboxes (kind ``contact``, so the contact rule
applies: creates, updates, deletes; Outlook edits are acknowledged and overwritten on the next
PSA change; an Outlook delete is re-exported on the next PSA change), writes through the
backend and records a :class:`~exchange_ext.models.SyncRun` whose ``mailbox_settings`` is null.

Design decisions:

- **Where the folder lives.** ``FolderKind.PUBLIC_CONTACTS`` of a session opened through the
  sync account (``backends.factory.backend_for(config)`` without mailbox settings: the
  General tab's account). EWS needs a mailbox to anchor the session: :func:`sync_account_mailbox`
  (``EXCHANGE_PUBLIC_FOLDER_MAILBOX``, else the sync account's username when it is an SMTP
  address, else the first enabled resource's mailbox, which the sync account impersonates;
  public folders are the organisation's, so any anchor reaches the same folder). The EWS
  backend finds the folder under ``publicfoldersroot`` or creates it.
- **Every run reads the whole folder.** EWS public folders have no SyncFolderItems, so there
  is no sync state to keep: a full read is planned as a whole ("absent means gone" holds),
  which also adopts tagged items after a crash between create and link. A quiet run writes
  nothing on either side.
- **Its own baseline** in :class:`~exchange_ext.models.PublicFolderLink` (unique per PSA item
  and per Exchange id: duplicates are impossible in the database), so its links never meet a
  mailbox's contact links. Items carry the same tag as a mailbox's contacts; tags are looked
  up per folder, so they cannot be confused.
- **Its own lease** on :class:`~exchange_ext.models.PublicFolderState` with a fencing token
  (:mod:`exchange_ext.engine.leases`): one worker at a time; the one commit is fenced.
- **Errors.** One boundary here, as in :func:`exchange_ext.engine.run_sync`: backend errors
  become the run's outcome and ``PublicFolderState.last_error``; per-item failures become log
  entries; the mass-delete guard stops a run that would empty the folder (a PSA that suddenly
  looks empty never wipes it).
- **Off means off.** With the option off, the integration off, or a backend without public
  folders (Microsoft Graph), the job is a no-op that logs why and returns ``None`` (no run,
  no error email). Items already in the folder stay (docs/sync-rules.md, "Deletes").

The Exchange writes and the link bookkeeping reuse the engine's pieces (``ExchangeWriter``,
``LinkBook``), which need of a cycle only ``require_session``, ``deadline``, ``log`` and
``mailbox`` (the latter for PSA writes, which a one-way contact plan never contains).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings as django_settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from exchange_ext.backends.base import (
    BackendError,
    ExchangeBackend,
    FolderKind,
    MailboxSession,
    SharedCredentialsRefused,
    WriteResult,
)
from exchange_ext.engine import leases, psa_store
from exchange_ext.engine import status as mailbox_status
from exchange_ext.engine.links import load_public_baseline, save_public_links
from exchange_ext.engine.runner import DEFAULT_BUDGET_SECONDS, MAX_PAGES_PER_FOLDER, Job, run_job
from exchange_ext.engine.runs import RunLog
from exchange_ext.engine.writes import ExchangeWriter, LinkBook
from exchange_ext.models import ExchangeConfig, MailboxSettings, PublicFolderState, SyncRun
from exchange_ext.sync import ops as o
from exchange_ext.sync.planner import plan
from exchange_ext.sync.records import (
    ExchangeItem,
    ExchangeView,
    ImportMode,
    ItemKind,
    Link,
    PsaKey,
    SyncOptions,
)
from exchange_ext.sync.windows import window_for

logger = logging.getLogger(__name__)

FOLDER = FolderKind.PUBLIC_CONTACTS
#: Backends (``ExchangeConfig.backend_name``) that have public folders.
BACKENDS_WITH_PUBLIC_FOLDERS = frozenset({"ews"})
#: The mailbox the EWS session is anchored on, when the default choice does not suit.
MAILBOX_ENV = "EXCHANGE_PUBLIC_FOLDER_MAILBOX"
PUBLIC_FOLDER_TASK = "exchange_ext.tasks.sync_public_folder"
Outcome = SyncRun.Outcome


class NoAnchorMailbox(BackendError):
    """No mailbox to open the public folder through (no SMTP sync account, no enabled resource)."""


def is_enabled(config: ExchangeConfig) -> bool:
    """Whether the job should run for ``config`` (on, and a backend with public folders)."""
    return bool(
        config.enabled
        and config.public_contacts_folder
        and config.backend_name in BACKENDS_WITH_PUBLIC_FOLDERS
    )


def run_public_folder_sync(
    *,
    backend: ExchangeBackend | None = None,
    trigger: str = SyncRun.Trigger.MANUAL,
    now: dt.datetime | None = None,
    budget_seconds: float = DEFAULT_BUDGET_SECONDS,
    lease_seconds: float | None = None,
) -> SyncRun | None:
    """Sync the public contacts folder once; return the run, or ``None`` when it must not run.

    ``None`` (logged, never an error): the option or the integration is off, or the backend
    has no public folders. A run already in progress gives a skipped run. Otherwise as
    :func:`exchange_ext.engine.run_sync`: never raises for backend or per-item errors; a bug
    or a kill propagates after the run is marked failed and the lease released.
    """
    config = ExchangeConfig.load()
    reason = why_not_runnable(config, backend)
    if reason:
        logger.info("public contacts folder not synced: %s", reason)
        return None
    job = _PublicFolderJob(config, backend, now, budget_seconds, lease_seconds)
    return run_job(job, trigger=trigger)


def why_not_runnable(config: ExchangeConfig, backend: ExchangeBackend | None) -> str:
    """Why the job must not run now, in plain words; ``""`` when it may."""
    if not config.enabled:
        return "the MS Exchange integration is turned off"
    if not config.public_contacts_folder:
        return "the public contacts folder option is off"
    supported = (
        backend.supports_public_folders
        if backend is not None
        else config.backend_name in BACKENDS_WITH_PUBLIC_FOLDERS
    )
    if not supported:
        name = backend.name if backend is not None else config.backend_name
        return f"the {name} backend has no public folders (EWS only)"
    return ""


def sync_account_mailbox(config: ExchangeConfig) -> str:
    """The mailbox the public folder session is opened as (see the module docstring); ``""``
    when there is none."""
    override = os.environ.get(MAILBOX_ENV, "").strip()
    if override:
        return override.lower()
    username = config.username.strip()
    if "@" in username and "\\" not in username:
        return username.lower()
    first = (
        MailboxSettings.objects.filter(mailbox_status.runnable())
        .select_related("resource")
        .order_by("pk")
        .first()
    )
    return first.effective_mailbox if first else ""


def enqueue_public_folder(now: dt.datetime, config: ExchangeConfig | None = None) -> bool:
    """Queue one ``sync_public_folder`` task if the job is on and an interval has passed since
    it was last queued (and it is not running); True when this call queued it.

    The claim is one compare-and-set UPDATE of ``last_dispatched_at``, so any number of
    dispatchers queue it at most once per interval; the task is sent after the commit.
    """
    config = config or ExchangeConfig.load()
    if not is_enabled(config):
        return False
    period = dt.timedelta(minutes=config.sync_interval_minutes)
    pk = PublicFolderState.load().pk
    due = Q(last_dispatched_at__isnull=True) | Q(last_dispatched_at__lte=now - period)
    idle = Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lte=now)
    claimed = PublicFolderState.objects.filter(due, idle, pk=pk).update(last_dispatched_at=now)
    if claimed:
        transaction.on_commit(_send_task)
    return bool(claimed)


def _send_task() -> None:
    from django_q.tasks import async_task

    async_task(
        PUBLIC_FOLDER_TASK,
        SyncRun.Trigger.SCHEDULED,
        group="exchange-sync",
        task_name="exchange-sync-public-folder",
    )


# --- one run --------------------------------------------------------------------------------


class _PublicFolderJob(Job):
    """The public folder run as the runner runs it: its own lease and state row, no mailbox."""

    mailbox = None
    busy_reason = "Another sync of the public contacts folder runs."

    def __init__(
        self,
        config: ExchangeConfig,
        backend: ExchangeBackend | None,
        now: dt.datetime | None,
        budget_seconds: float,
        lease_seconds: float | None,
    ) -> None:
        self.config, self.backend, self.now = config, backend, now
        self.budget_seconds, self.lease_seconds = budget_seconds, lease_seconds
        self.backend_name = backend.name if backend else config.backend_name
        self.state_pk = PublicFolderState.load().pk

    def why_not_runnable(self) -> str:
        # It signs in with the shared sync account: refused for the mailboxes, refused here.
        return mailbox_status.SHARED_STOP_REASON if mailbox_status.shared_account_stopped() else ""

    def claim(self) -> int | None:
        return leases.claim(
            self.state_pk, self.budget_seconds, self.lease_seconds, model=PublicFolderState
        )

    def release(self, token: int) -> None:
        leases.release(self.state_pk, token, model=PublicFolderState)

    def run(self, token: int, log: RunLog, started: dt.datetime) -> tuple[str, str]:
        _mine(token).update(last_attempt_at=started)
        job = _Job(
            state_pk=self.state_pk,
            token=token,
            options=public_options(self.config),
            log=log,
            now=self.now or started,
            deadline=time.monotonic() + self.budget_seconds,
        )
        job.run(self.backend or _default_backend(self.config), sync_account_mailbox(self.config))
        if job.guard_message:
            _mine(token).update(last_error=job.guard_message)
            return Outcome.GUARD_TRIPPED, job.guard_message
        _mine(token).update(last_error="", last_success_at=timezone.now())
        outcome = Outcome.PARTIAL if (log.errors or job.stop_message) else Outcome.OK
        return outcome, job.stop_message

    def failed(self, token: int, error: BackendError, message: str, started: dt.datetime) -> None:
        logger.info("public contacts folder sync failed: %s", message)
        _mine(token).update(last_error=message)
        if isinstance(error, SharedCredentialsRefused):
            mailbox_status.stop_shared_account(error, started)


def public_options(config: ExchangeConfig) -> SyncOptions:
    """The rules' settings for the folder: contacts out, nothing in."""
    return SyncOptions(
        installation_id=str(config.installation_id),
        export_kinds=frozenset({ItemKind.CONTACT}),
        import_mode=ImportMode.NONE,
        base_url=django_settings.PSA_BASE_URL,
    )


def _mine(token: int) -> Any:
    """The state row, fenced: a worker that lost its lease writes nothing."""
    return PublicFolderState.objects.filter(lease_token=token)


def _default_backend(config: ExchangeConfig) -> ExchangeBackend:
    from exchange_ext.backends import factory

    # No mailbox settings: the General tab's sync account, whatever use_for_all_users says.
    return factory.backend_for(config)


@dataclass
class _Job:
    """One run's working state; the cycle the engine's writer and link book expect."""

    state_pk: int
    token: int
    options: SyncOptions
    log: RunLog
    now: dt.datetime
    deadline: float
    session: MailboxSession | None = None
    guard_message: str = ""
    stop_message: str = ""
    mailbox: MailboxSettings | None = None  # no PSA writes in a one-way plan

    def run(self, backend: ExchangeBackend, address: str) -> None:
        if not address:
            raise NoAnchorMailbox(
                "No mailbox to open the public folder through: enable a resource, or set "
                f"{MAILBOX_ENV}."
            )
        with backend.open_session(address) as session:
            self.session = session
            view = ExchangeView(items=self.read_folder(), full_read=True)
            baseline = load_public_baseline()
            result = plan(baseline, psa_store.load_public_contacts(), view, self.options, self.now)
            if result.guard_tripped:
                self.guard_message = (
                    f"Stopped before deleting {len(result.withheld)} contacts from the public "
                    "folder: one side looks suddenly empty. Check the PSA contacts and the folder."
                )
            written = ExchangeWriter(self, FOLDER).write(result.ops)
            self.commit(result, written, baseline)

    def read_folder(self) -> tuple[ExchangeItem, ...]:
        """Every item of the folder (all pages of a read without state)."""
        session = self.require_session()
        items: list[ExchangeItem] = []
        state: str | None = None
        for _ in range(MAX_PAGES_PER_FOLDER):
            page = session.read_changes(FOLDER, state, window_for(self.options, self.now))
            items += [*page.created, *page.updated]
            if not page.more_available or page.new_state == state:
                break
            state = page.new_state
        return tuple(items)

    def require_session(self) -> MailboxSession:
        assert self.session is not None
        return self.session

    def commit(
        self, result: o.Plan, written: dict[int, WriteResult | None], baseline: dict[PsaKey, Link]
    ) -> None:
        """Persist the links and the log entries in one transaction fenced by the lease."""
        counted: list[tuple[o.Op, ItemKind]] = []
        try:
            with transaction.atomic():
                book = LinkBook(self, baseline, written, counted)
                save_public_links(book.replay(result.ops))
                self.log.flush()
                leases.check(self.state_pk, self.token, model=PublicFolderState)
        except BaseException:
            self.log.discard()
            raise
        for op, kind in counted:
            self.log.count(op, kind)
        if not all(w is not None for w in written.values()):
            self.stop_message = "Stopped at the time budget; the next run continues from here."
