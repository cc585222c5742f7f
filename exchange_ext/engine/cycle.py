"""One sync cycle of one mailbox: claim → read → plan → apply → persist → release.

The imperative shell around the pure planner (``exchange_ext.sync``). Per folder it reads the
change feed from the stored state (a full read without one, or when a resync was requested),
plans, writes Exchange-side ops in batches, then — in ONE transaction per page, fenced by the
lease token — applies the PSA-side ops, persists the links and the page's new sync state.

Why this order: Exchange writes cannot join a DB transaction, so they go first and the links
follow; a crash between the two leaves tagged items that the next run adopts (never
duplicates). A sync state is stored only with the effects of the changes it covers, and never
from a page the backend could not read completely (the backend raises instead).

A full read is planned as a whole (every page first): "absent from the read means gone" holds
only for the complete enumeration. Incremental pages are planned and committed one by one, so
a budget deadline or a crash loses at most the page in hand.

Errors: backend session errors are caught here and only here (``run_sync``) and become the
run's outcome and the mailbox's status; per-item failures become log entries.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any

from django.db import transaction

from exchange_ext.backends.base import (
    BackendError,
    ExchangeBackend,
    FolderKind,
    MailboxSession,
    SyncStateExpired,
    WriteResult,
)
from exchange_ext.engine import leases, psa_store
from exchange_ext.engine import status as mailbox_status
from exchange_ext.engine.links import folder_of, load_baseline, save_links
from exchange_ext.engine.runner import DEFAULT_BUDGET_SECONDS, MAX_PAGES_PER_FOLDER, Job, run_job
from exchange_ext.engine.runs import RunLog
from exchange_ext.engine.writes import ExchangeWriter, LinkBook
from exchange_ext.models import ExchangeConfig, FolderSyncState, MailboxSettings, SyncRun
from exchange_ext.sync import ops as o
from exchange_ext.sync.planner import plan
from exchange_ext.sync.records import (
    CalendarItemType,
    ExchangeItem,
    ExchangeView,
    ImportMode,
    ItemKind,
    Link,
    PsaKey,
    SyncOptions,
)
from exchange_ext.sync.windows import SyncWindow, window_for

logger = logging.getLogger(__name__)


Status = MailboxSettings.Status
Outcome = SyncRun.Outcome


def run_sync(
    mailbox_settings_id: int,
    *,
    backend: ExchangeBackend | None = None,
    trigger: str = SyncRun.Trigger.MANUAL,
    now: dt.datetime | None = None,
    budget_seconds: float = DEFAULT_BUDGET_SECONDS,
    lease_seconds: float | None = None,
) -> SyncRun:
    """Run one cycle for the mailbox and return its recorded :class:`SyncRun`.

    Never raises for backend or per-item errors (they are the run's outcome); a bug or a
    simulated crash propagates after the run is marked failed and the lease released.
    ``backend``: defaults to ``backends.factory.backend_for``. ``now``: the clock the rules
    use (aware; defaults to the current time). ``lease_seconds``: how long the lease holds
    (default: the budget plus ``leases.GRACE``); a worker passes its task timeout and more, so
    no other worker can claim the mailbox while this process may still be alive.
    """
    mailbox = MailboxSettings.objects.select_related("resource").get(pk=mailbox_settings_id)
    job = _MailboxJob(mailbox, ExchangeConfig.load(), backend, now, budget_seconds, lease_seconds)
    return run_job(job, trigger=trigger)


class _MailboxJob(Job):
    """A mailbox cycle as the runner runs it: its lease, its cycle, its status."""

    mailbox: MailboxSettings
    busy_reason = "Another sync of this mailbox runs."

    def __init__(
        self,
        mailbox: MailboxSettings,
        config: ExchangeConfig,
        backend: ExchangeBackend | None,
        now: dt.datetime | None,
        budget_seconds: float,
        lease_seconds: float | None,
    ) -> None:
        self.mailbox, self.config, self.backend, self.now = mailbox, config, backend, now
        self.budget_seconds, self.lease_seconds = budget_seconds, lease_seconds
        self.backend_name = backend.name if backend else config.backend_name

    def why_not_runnable(self) -> str:
        if not self.config.enabled:
            return "The MS Exchange integration is turned off."
        if not self.mailbox.sync_enabled:
            return "Sync is not enabled for this resource."
        if mailbox_status.stopped(self.mailbox):
            return "Sync stopped after a permanent error; save the resource's settings to retry."
        return ""

    def claim(self) -> int | None:
        return leases.claim(self.mailbox.pk, self.budget_seconds, self.lease_seconds)

    def release(self, token: int) -> None:
        leases.release(self.mailbox.pk, token)

    def run(self, token: int, log: RunLog, started: dt.datetime) -> tuple[str, str]:
        mailbox = self.mailbox
        _mine(mailbox, token).update(last_attempt_at=started)
        cycle = _Cycle(
            mailbox=mailbox,
            token=token,
            options=psa_store.sync_options(self.config, mailbox),
            log=log,
            now=self.now or started,
            deadline=time.monotonic() + self.budget_seconds,
            resync=mailbox.resync_requested_at is not None,
        )
        cycle.run(self.backend or _default_backend(self.config, mailbox))
        if cycle.guard_message:
            mailbox_status.record_run(
                mailbox.pk, token, started, message=cycle.guard_message, guard_tripped=True
            )
            _served_requests(cycle, started, complete=False)
            return Outcome.GUARD_TRIPPED, cycle.guard_message
        mailbox_status.record_run(mailbox.pk, token, started)
        _served_requests(cycle, started, complete=not cycle.stop_message)
        outcome = Outcome.PARTIAL if (log.errors or cycle.stop_message) else Outcome.OK
        return outcome, cycle.stop_message

    def failed(self, token: int, error: BackendError, message: str, started: dt.datetime) -> None:
        # Permanent errors (credentials, mailbox, rights) stop the mailbox until its settings
        # are saved again; transient ones (throttling, outage) retry on the next run.
        logger.info("exchange sync of mailbox %s failed: %s", self.mailbox.pk, message)
        mailbox_status.record_run(self.mailbox.pk, token, started, error=error, message=message)
        mine = _mine(self.mailbox, token)
        mine.filter(sync_requested_at__lte=started).update(sync_requested_at=None)


def _default_backend(config: ExchangeConfig, mailbox: MailboxSettings) -> ExchangeBackend:
    from exchange_ext.backends import factory  # lazy: the factory imports every backend

    return factory.backend_for(config, mailbox_settings=mailbox)


def _mine(mailbox: MailboxSettings, token: int) -> Any:
    """The mailbox's row, fenced: a worker that lost its lease writes nothing."""
    return MailboxSettings.objects.filter(pk=mailbox.pk, lease_token=token)


def _served_requests(cycle: _Cycle, started: dt.datetime, *, complete: bool) -> None:
    """Requests made before this run are served by it; a later "Sync now" stays pending. A
    resync request is served only by a run that completed."""
    mine = _mine(cycle.mailbox, cycle.token)
    mine.filter(sync_requested_at__lte=started).update(sync_requested_at=None)
    if complete and cycle.resync:
        seen = cycle.mailbox.resync_requested_at
        mine.filter(resync_requested_at=seen).update(resync_requested_at=None)


# --- one cycle ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Chunk:
    """What one plan covers: a page of an incremental read, or a whole full read."""

    items: tuple[ExchangeItem, ...]
    deleted: tuple[str, ...]
    full_read: bool
    new_state: str


@dataclass
class _Cycle:
    mailbox: MailboxSettings
    token: int
    options: SyncOptions
    log: RunLog
    now: dt.datetime
    deadline: float
    resync: bool
    guard_message: str = ""
    stop_message: str = ""
    session: MailboxSession | None = None
    window_read: set[FolderKind] = field(default_factory=set)

    @property
    def window(self) -> SyncWindow:
        return window_for(self.options, self.now)

    def run(self, backend: ExchangeBackend) -> None:
        with backend.open_session(self.mailbox.effective_mailbox) as session:
            self.session = session
            for folder in self.folders():
                if self.out_of_time():
                    break
                self.sync_folder(folder)

    def folders(self) -> list[FolderKind]:
        kinds = self.options.export_kinds
        calendar = bool(kinds - {ItemKind.CONTACT}) or self.options.import_mode != ImportMode.NONE
        return [FolderKind.CALENDAR] * calendar + [FolderKind.CONTACTS] * (
            ItemKind.CONTACT in kinds
        )

    def out_of_time(self) -> bool:
        if time.monotonic() < self.deadline:
            return False
        self.stop_message = "Stopped at the time budget; the next run continues from here."
        return True

    # --- reading ----------------------------------------------------------------------------

    def sync_folder(self, folder: FolderKind) -> None:
        stored = FolderSyncState.objects.filter(mailbox_settings=self.mailbox, folder=folder)
        row = stored.first()
        state = None if (self.resync or row is None or not row.state) else row.state
        try:
            self.read_folder(folder, state, row)
        except SyncStateExpired:
            # Expected now and then (the server evicted the state): re-read everything and
            # adopt what we wrote by its tag. Not a failure, no email.
            logger.info("sync state of %s/%s expired; full re-read", self.mailbox.pk, folder)
            stored.delete()
            self.read_folder(folder, None, None)

    def read_folder(self, folder: FolderKind, state: str | None, row: FolderSyncState | None):
        session = self.require_session()
        if state is None:
            self.sync_chunk(folder, self.read_everything(folder), row)
            return
        for _ in range(MAX_PAGES_PER_FOLDER):
            page = session.read_changes(folder, state, self.window)
            chunk = _Chunk((*page.created, *page.updated), page.deleted, False, page.new_state)
            stuck = page.more_available and page.new_state == state
            if not self.sync_chunk(folder, chunk, row) or not page.more_available or stuck:
                return
            state = page.new_state
            row = None  # reloaded on save
            if self.out_of_time():
                return

    def read_everything(self, folder: FolderKind) -> _Chunk:
        session = self.require_session()
        items: list[ExchangeItem] = []
        state: str | None = None
        for _ in range(MAX_PAGES_PER_FOLDER):
            page = session.read_changes(folder, state, self.window)
            items += [*page.created, *page.updated]
            if not page.more_available or page.new_state == state:
                break
            state = page.new_state
        return _Chunk(tuple(items), (), True, page.new_state)

    def view_of(
        self, folder: FolderKind, chunk: _Chunk, baseline: dict[PsaKey, Link], row: Any
    ) -> ExchangeView:
        """The chunk as the planner sees it, with recurring series expanded when needed."""
        items = list(chunk.items)
        masters = {
            item.exchange_id
            for item in items
            if item.calendar_item_type is CalendarItemType.RECURRING_MASTER
        }
        if folder is FolderKind.CALENDAR and (
            masters or chunk.full_read or self.window_due(folder, baseline, row)
        ):
            occurrences = [
                item
                for item in self.require_session().read_window(folder, self.window)
                if item.master_id
            ]
            masters |= {item.master_id for item in occurrences if item.master_id}
            items += occurrences
            self.window_read.add(folder)
        return ExchangeView(
            items=tuple(items),
            deleted=frozenset(chunk.deleted),
            full_read=chunk.full_read,
            expanded_series=frozenset(masters),
        )

    def window_due(self, folder: FolderKind, baseline: dict[PsaKey, Link], row: Any) -> bool:
        # Occurrences enter and leave the window as days pass, without any feed entry: the
        # window is re-expanded once a day while linked occurrences exist.
        if folder in self.window_read:
            return False
        if not any("|" in link.exchange_id for link in baseline.values()):
            return False
        row = (
            row
            or FolderSyncState.objects.filter(mailbox_settings=self.mailbox, folder=folder).first()
        )
        return row is None or row.window_read_on != self.now.date()

    def require_session(self) -> MailboxSession:
        assert self.session is not None
        return self.session

    # --- planning and applying --------------------------------------------------------------

    def sync_chunk(self, folder: FolderKind, chunk: _Chunk, row: Any) -> bool:
        """Plan and apply one chunk; return False when the folder must stop (guard tripped)."""
        baseline = {k: v for k, v in load_baseline(self.mailbox).items() if _in(k, folder)}
        psa = psa_store.load_psa_items(self.mailbox, self.options, self.window)
        psa = {k: v for k, v in psa.items() if _in(k, folder)}
        view = self.view_of(folder, chunk, baseline, row)
        result = plan(baseline, psa, view, self.options, self.now)
        result = self.with_tagged(folder, baseline, psa, view, result)
        if result.guard_tripped:
            self.guard_message = _guard_message(result)
        written = ExchangeWriter(self, folder).write(result.ops)
        self.commit(folder, chunk, result, written, baseline)
        return not result.guard_tripped

    def with_tagged(
        self,
        folder: FolderKind,
        baseline: dict[PsaKey, Link],
        psa: dict[PsaKey, Any],
        view: ExchangeView,
        result: o.Plan,
    ) -> o.Plan:
        """Before creating, look our tags up: a restored database or a lost link must adopt
        the item already in Exchange, not create a second one (one request, only with creates)."""
        tags = [op.tag for op in result.ops if isinstance(op, o.CreateInExchange)]
        if not tags or view.full_read:
            return result
        found = self.require_session().find_by_tag(folder, tags)
        if not found:
            return result
        tagged = tuple(item for items in found.values() for item in items)
        return plan(baseline, psa, replace(view, tagged=tagged), self.options, self.now)

    def commit(
        self,
        folder: FolderKind,
        chunk: _Chunk,
        result: o.Plan,
        written: dict[int, WriteResult | None],
        baseline: dict[PsaKey, Link],
    ) -> None:
        """Apply the PSA ops and persist links (+ the state) in one fenced transaction."""
        counted: list[tuple[o.Op, ItemKind]] = []
        try:
            with transaction.atomic():
                links = LinkBook(self, baseline, written, counted).replay(result.ops)
                save_links(self.mailbox, links)
                self.log.flush()
                complete = all(w is not None for w in written.values())
                if complete and not result.guard_tripped:
                    self.save_state(folder, chunk.new_state)
                leases.check(self.mailbox.pk, self.token)
        except BaseException:
            self.log.discard()
            raise
        for op, kind in counted:
            self.log.count(op, kind)
        if not all(w is not None for w in written.values()):
            self.out_of_time()

    def save_state(self, folder: FolderKind, state: str) -> None:
        values: dict[str, Any] = {"state": state}
        if folder in self.window_read:
            values["window_read_on"] = self.now.date()
        FolderSyncState.objects.update_or_create(
            mailbox_settings=self.mailbox, folder=folder.value, defaults=values
        )


def _in(key: PsaKey, folder: FolderKind) -> bool:
    return folder_of(key.kind) is folder


def _guard_message(result: o.Plan) -> str:
    return (
        f"Stopped before deleting {len(result.withheld)} synced items: one side looks "
        "suddenly empty. Check the mailbox and the server settings."
    )
