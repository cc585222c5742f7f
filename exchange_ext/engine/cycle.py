"""One sync cycle of one mailbox: claim → read → plan → apply → persist → release.

The imperative shell around the pure planner (``exchange_ext.sync``). Per folder it reads the
change feed from the stored state (a full read without one, or when a resync was requested),
plans, writes Exchange-side ops in batches, then — in ONE transaction per page, fenced by the
lease token — applies the PSA-side ops, persists the links and the page's new sync state.

Why this order: Exchange writes cannot join a DB transaction, so they go first and the links
follow; a crash between the two leaves tagged items that the next run adopts (never
duplicates). A sync state is stored only with the effects of the changes it covers, and never
from a page the backend could not read completely (the backend raises instead).

Every page is planned and committed on its own, a full read's too, so a budget deadline or a
crash loses at most the page in hand and the next run continues at the next page (a full read's
intermediate state resumes it: ``ChangePage.full_read``). "Absent from a full read means gone"
holds only for the complete enumeration: the Exchange ids a full read split over pages has
listed are kept (``FullReadSeen``, committed with each page), and its last page plans the
linked items it never listed as gone, through the pending deletions below. The recurring
window is expanded once per full read, with its last page. The run renews its lease between
pages, so a long run never outlives it while another claims the mailbox.

Deletions wait for the end of their pass (docs/sync-rules.md, "Mass-delete guard"): a page's
destructive ops are stored as pending with its other effects and its state; when the feed is
caught up, the pass's pending set is applied if it stays within the guard's limit of the
folder's synced items at the start of the pass, else held for an administrator
(:mod:`exchange_ext.engine.held`).

Errors: backend session errors are caught here and only here (``run_sync``) and become the
run's outcome and the mailbox's status; per-item failures become log entries.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterable
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
from exchange_ext.engine import held, leases, moves, psa_store, runs, scope
from exchange_ext.engine import status as mailbox_status
from exchange_ext.engine.links import (
    count_linked,
    folder_of,
    known_versions,
    load_baseline,
    load_links,
    save_links,
    synced_folders,
)
from exchange_ext.engine.runner import DEFAULT_BUDGET_SECONDS, MAX_PAGES_PER_FOLDER, Job, run_job
from exchange_ext.engine.runs import RunLog
from exchange_ext.engine.writes import ExchangeWriter, LinkBook
from exchange_ext.models import (
    ExchangeConfig,
    FolderSyncState,
    FullReadSeen,
    MailboxSettings,
    SyncRun,
)
from exchange_ext.sync import held as deferred
from exchange_ext.sync import ops as o
from exchange_ext.sync.planner import plan
from exchange_ext.sync.records import (
    CalendarItemType,
    CalendarRecord,
    ExchangeItem,
    ExchangeView,
    ItemKind,
    Link,
    LinkState,
    PsaKey,
    SyncOptions,
    master_of,
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
    mailbox = MailboxSettings.objects.select_related("resource__user").get(pk=mailbox_settings_id)
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
        if inactive := mailbox_status.inactive_reason(self.mailbox):
            return inactive
        if mailbox_status.stopped(self.mailbox):
            return mailbox_status.stop_reason(self.mailbox)
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
            started=started,
            lease_seconds=self.lease_seconds or self.budget_seconds + leases.GRACE.total_seconds(),
        )
        backend = self.backend or _default_backend(self.config, mailbox)
        # An administrator changed the address: the items move first (docs/sync-rules.md,
        # "Mailbox moves"); the cycle then reads the new mailbox in full.
        moves.finish_pending_move(mailbox, token, backend, cycle.options, log, cycle.window)
        cycle.run(backend)
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
    """What one plan covers: one page of the change feed. ``full_read``: a page of a full read
    (it lists items, never changes); ``first``/``last``: the page begins/ends its read."""

    items: tuple[ExchangeItem, ...]
    deleted: tuple[str, ...]
    full_read: bool
    new_state: str
    first: bool = False
    last: bool = False
    unchanged: tuple[str, ...] = ()

    @property
    def whole(self) -> bool:
        """A full read in one page: every item is in it."""
        return self.full_read and self.first and self.last

    @property
    def split(self) -> bool:
        """A page of a full read that spans pages (its ids are kept until the read ends)."""
        return self.full_read and not self.whole


@dataclass
class _Cycle:
    mailbox: MailboxSettings
    token: int
    options: SyncOptions
    log: RunLog
    now: dt.datetime
    deadline: float
    resync: bool
    started: dt.datetime | None = None
    lease_seconds: float | None = None
    guard_message: str = ""
    stop_message: str = ""
    session: MailboxSession | None = None
    window_read: set[FolderKind] = field(default_factory=set)
    # Folders whose PSA changes this cycle has read (once per folder and cycle), and what the
    # page in hand planned: the cursor to store with it, and whether it planned in full.
    psa_read: set[FolderKind] = field(default_factory=set)
    planned: dict[FolderKind, _Planned] = field(default_factory=dict)
    # Keys to plan again, per folder (their writes failed, or a decision on held deletions
    # left them to the planner): every page plans them until one does without failing.
    retry: dict[FolderKind, set[PsaKey]] = field(default_factory=dict)

    @property
    def window(self) -> SyncWindow:
        return window_for(self.options, self.now)

    def run(self, backend: ExchangeBackend) -> None:
        with backend.open_session(self.mailbox.effective_mailbox) as session:
            self.session = session
            for folder in self.folders():
                if self.out_of_time():
                    break
                self.apply_decisions(folder)
                self.sync_folder(folder)
        if not self.guard_message and held.is_held(self.mailbox):
            self.guard_message = held.message(held.held_count(self.mailbox))

    def folders(self) -> list[FolderKind]:
        return synced_folders(self.options)

    def out_of_time(self) -> bool:
        if time.monotonic() < self.deadline:
            return False
        self.stop_message = "Stopped at the time budget; the next run continues from here."
        return True

    # --- reading ----------------------------------------------------------------------------

    def sync_folder(self, folder: FolderKind) -> None:
        stored = FolderSyncState.objects.filter(mailbox_settings=self.mailbox, folder=folder)
        row = stored.first()
        resumes = row is not None and bool(row.state) and (not self.resync or self.served(row))
        state = row.state if (resumes and row is not None) else None
        try:
            self.read_folder(folder, state, row)
        except SyncStateExpired:
            # Expected now and then (the server evicted the state): re-read everything and
            # adopt what we wrote by its tag. Not a failure, no email.
            logger.info("sync state of %s/%s expired; full re-read", self.mailbox.pk, folder)
            stored.delete()
            self.read_folder(folder, None, None)

    def served(self, row: FolderSyncState) -> bool:
        """Whether the resync requested is served by the folder's latest full read: it began
        since (in progress, a budget split it across runs: it resumes; or done while another
        folder is still to read)."""
        requested = self.mailbox.resync_requested_at
        since = row.full_read_since
        return since is not None and requested is not None and since >= requested

    def read_folder(self, folder: FolderKind, state: str | None, row: FolderSyncState | None):
        """Page by page from ``state`` (``None``: a full read), each page planned and
        committed with its state, until the feed is caught up or the budget is spent."""
        session = self.require_session()
        for _ in range(MAX_PAGES_PER_FOLDER):
            # Items we hold at their version (our own writes echoed back, or unchanged items
            # of a full read) are not read again: the page lists them as unchanged.
            page = session.read_changes(folder, state, self.window, known_versions(self.mailbox))
            stuck = page.more_available and page.new_state == state
            last = not page.more_available or stuck
            chunk = _Chunk(
                (*page.created, *page.updated),
                page.deleted,
                page.full_read,
                page.new_state,
                first=state is None,
                last=last,
                unchanged=page.unchanged,
            )
            committed = self.sync_chunk(folder, chunk, row)
            if committed and last:
                self.settle(folder)  # the pass is complete: its deletions are decided
            if not committed or last:
                return
            state = page.new_state
            row = None  # reloaded on save
            if self.out_of_time():
                return
            self.renew_lease()

    def renew_lease(self) -> None:
        """Still making progress: the lease lasts another full length from now."""
        if self.lease_seconds:
            leases.renew(self.mailbox.pk, self.token, self.lease_seconds)

    def expands(self, folder: FolderKind, chunk: _Chunk, row: Any) -> bool:
        """Whether this chunk's view expands the recurring window."""
        if folder is not FolderKind.CALENDAR:
            return False
        # A full read expands the window once, with its last page (every master is read by
        # then); its earlier pages expand nothing, so no series counts as expanded there.
        if chunk.full_read:
            return chunk.last
        masters = any(
            item.calendar_item_type is CalendarItemType.RECURRING_MASTER for item in chunk.items
        )
        return masters or self.window_due(folder, row)

    def view_of(self, folder: FolderKind, chunk: _Chunk, expand: bool) -> ExchangeView:
        """The chunk as the planner sees it, with recurring series expanded when asked."""
        items = list(chunk.items)
        masters = {
            item.exchange_id
            for item in items
            if item.calendar_item_type is CalendarItemType.RECURRING_MASTER
        }
        if folder is not FolderKind.CALENDAR or not expand:
            masters = set()
        else:
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
            full_read=chunk.whole,
            expanded_series=frozenset(masters),
            unchanged=frozenset(chunk.unchanged),
        )

    def window_due(self, folder: FolderKind, row: Any) -> bool:
        # Occurrences enter and leave the window as days pass, without any feed entry: the
        # window is re-expanded once a day while linked occurrences exist.
        if folder in self.window_read:
            return False
        if row is not None and row.window_read_on == self.now.date():
            return False
        return scope.has_occurrence_links(self.mailbox)

    def require_session(self) -> MailboxSession:
        assert self.session is not None
        return self.session

    # --- planning and applying --------------------------------------------------------------

    @property
    def plan_options(self) -> SyncOptions:
        # The planner's own per-plan guard is off: this engine counts over the whole pass.
        return replace(self.options, guard_overridden=True)

    def folder_baseline(self, folder: FolderKind) -> dict[PsaKey, Link]:
        return {k: v for k, v in load_baseline(self.mailbox).items() if _in(k, folder)}

    def sync_chunk(self, folder: FolderKind, chunk: _Chunk, row: Any) -> bool:
        """Plan and apply one chunk, its deletions kept pending; return whether it committed
        completely (False: the time budget ran out in its writes).

        The chunk is planned against the keys it touches, or in full when no key set can
        stand for the whole (:mod:`exchange_ext.engine.scope`)."""
        states = FolderSyncState.objects.filter(mailbox_settings=self.mailbox, folder=folder)
        row = row or states.first()
        expand = self.expands(folder, chunk, row)
        changes = self.psa_changes(folder, row)
        if self.plans_in_full(folder, chunk, row, expand, changes):
            cursor = scope.settled_cursor()
            baseline = self.folder_baseline(folder)
            psa = psa_store.load_psa_items(self.mailbox, self.options, self.window)
            psa = {k: v for k, v in psa.items() if _in(k, folder)}
            if chunk.split:
                chunk = self.with_gaps(folder, chunk, baseline)
            view = self.view_of(folder, chunk, expand)
            linked = _linked(baseline)
            if not view.items and len(baseline.keys() | psa.keys()) > SLICE:
                return self.sync_in_slices(folder, chunk, baseline, psa, view, linked, cursor)
            self.planned[folder] = _Planned(cursor, full=True, keys=None)
        else:
            view = self.view_of(folder, chunk, expand=False)
            keys = scope.exchange_keys(self.mailbox, view, self.options)
            keys |= changes.keys if changes else set()
            keys |= self.retry.get(folder, set()) | held.keys(self.mailbox, folder.value)
            keys = {key for key in keys if _in(key, folder)}
            baseline = load_links(self.mailbox, keys) if keys else {}
            if chunk.split:  # a middle page of a full read: re-identification only
                chunk = self.with_gaps(folder, chunk, baseline)
                view = self.view_of(folder, chunk, expand=False)
            psa = psa_store.load_psa_items(self.mailbox, self.options, self.window, keys)
            linked = count_linked(self.mailbox, folder)
            cursor = changes.cursor if changes else None
            self.planned[folder] = _Planned(cursor, full=False, keys=frozenset(keys))
        return self.plan_and_commit(folder, chunk, baseline, psa, view, linked)

    def sync_in_slices(
        self,
        folder: FolderKind,
        chunk: _Chunk,
        baseline: dict[PsaKey, Link],
        psa: dict[PsaKey, Any],
        view: ExchangeView,
        linked: int,
        cursor: int,
    ) -> bool:
        """A whole plan of a view without items (an export into an empty folder, a full read
        that found everything as we hold it, a reconciliation on a quiet page), in slices of
        :data:`SLICE` keys, each written and committed on its own: the plan, the writes and
        the links of a 20,000-item mailbox never stand in memory at once. With no Exchange item
        in the view, no key's plan depends on another's. The last slice stores the page's
        state; a crash before it re-reads the page, and the slices done plan nothing again."""
        keys = sorted(baseline.keys() | psa.keys(), key=lambda k: (k.kind.value, k.psa_id))
        for start in range(0, len(keys), SLICE):
            part = frozenset(keys[start : start + SLICE])
            last = start + SLICE >= len(keys)
            self.planned[folder] = _Planned(cursor, full=True, keys=part)
            done = self.plan_and_commit(
                folder,
                chunk if last else None,
                {key: baseline[key] for key in part if key in baseline},
                {key: psa[key] for key in part if key in psa},
                view,
                linked,
            )
            if not done:
                return False
            if not last:
                self.renew_lease()
        return True

    def plan_and_commit(
        self,
        folder: FolderKind,
        chunk: _Chunk | None,
        baseline: dict[PsaKey, Link],
        psa: dict[PsaKey, Any],
        view: ExchangeView,
        linked: int,
    ) -> bool:
        """Plan ``baseline`` and ``psa`` against ``view``, write, commit (``chunk``: the
        page whose state this commit stores; None for a slice before the last)."""
        if baseline or psa or view.items or view.deleted:
            result = plan(baseline, psa, view, self.plan_options, self.now)
            result = self.with_tagged(folder, baseline, psa, view, result)
        else:
            result = o.Plan(())  # a quiet page: nothing to plan, its state to store
        destructive = tuple(op for op in result.ops if isinstance(op, o.DESTRUCTIVE))
        kept = o.Plan(tuple(op for op in result.ops if not isinstance(op, o.DESTRUCTIVE)))
        written = ExchangeWriter(self, folder).write(kept.ops)
        pending = _Pending(destructive, _titles(destructive, psa, view), linked)
        titles = _titles(tuple(op for op in kept.ops if isinstance(op, _LISTED)), psa, view)
        return self.commit(folder, chunk, kept, written, baseline, pending, titles=titles)

    def psa_changes(self, folder: FolderKind, row: Any) -> scope.PsaChanges | None:
        """The PSA's audited changes since the folder's cursor, read with the folder's first
        page of this cycle (None: already read this cycle, or no cursor yet)."""
        if folder in self.psa_read or row is None or row.psa_cursor is None:
            return None
        self.psa_read.add(folder)
        self.retry[folder] = set(scope.decoded_keys(row.retry_keys, self.mailbox))
        kinds = {kind for kind in ItemKind if folder_of(kind) is folder}
        return scope.psa_changes_since(row.psa_cursor, self.mailbox, kinds)

    def plans_in_full(
        self,
        folder: FolderKind,
        chunk: _Chunk,
        row: Any,
        expand: bool,
        changes: scope.PsaChanges | None,
    ) -> bool:
        """Whether no key set can stand for the whole: a full read (its first and its last
        page), an expanded window, a folder never planned in full or planned under other
        options, the daily reconciliation, or a PSA change that concerns every item.

        The pages between a full read's first and last are planned against the keys they
        touch, as pages of the change feed are: the first planned every PSA item, the last
        plans every link against all the read listed, and PSA changes in between reach the
        pages through the audit cursor. So a full read of ``n`` items over ``p`` pages plans
        ``O(n + p × page)`` keys, not ``O(p × n)`` (docs/performance.md, "Full reads")."""
        if chunk.full_read and (chunk.first or chunk.last):
            return True
        if expand or row is None or row.psa_cursor is None:
            return True
        if changes is not None and changes.everything:
            return True
        if row.planned_as != scope.fingerprint(self.options):
            return True
        return scope.reconciliation_due(row.reconciled_at, self.now)

    def with_gaps(self, folder: FolderKind, chunk: _Chunk, baseline: dict[PsaKey, Link]) -> _Chunk:
        """A page of a full read spanning pages, with what the read shows gone so far.

        Its last page: every linked item the read never listed (an occurrence: when the read
        never listed its master; otherwise a fresh expansion of its series decides). Any
        page: a linked imported item not listed yet whose identity (iCalendar UID) an unlinked
        item of this page carries, so the planner re-identifies it instead of importing a copy.
        """
        listed = {item.exchange_id for item in chunk.items} | set(chunk.unchanged)
        if not chunk.first:
            seen = FullReadSeen.objects.filter(mailbox_settings=self.mailbox, folder=folder.value)
            asked = {link.exchange_id for link in baseline.values() if link.exchange_id}
            asked = {*asked, *filter(None, map(master_of, asked))} - listed
            if len(asked) > SEEN_LOOKUP:  # the last page's whole baseline: read them all
                listed |= set(seen.values_list("exchange_id", flat=True))
            else:  # a middle page: only whether its few links' items were listed before
                listed |= set(
                    seen.filter(exchange_id__in=asked).values_list("exchange_id", flat=True)
                )
        claimed = {link.exchange_id for link in baseline.values()}
        identities = {
            item.identity
            for item in chunk.items
            if item.psa_tag is None and item.exchange_id not in claimed and item.identity
        }
        gone: set[str] = set()
        for link in baseline.values():
            if not link.exchange_id or link.exchange_id in listed:
                continue
            master_id = master_of(link.exchange_id)
            if master_id is not None:
                if chunk.last and master_id not in listed:
                    gone.add(master_id)
            elif chunk.last or (link.identity is not None and link.identity in identities):
                gone.add(link.exchange_id)
        return replace(chunk, deleted=(*chunk.deleted, *sorted(gone)))

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
        return plan(baseline, psa, replace(view, tagged=tagged), self.plan_options, self.now)

    def commit(
        self,
        folder: FolderKind,
        chunk: _Chunk | None,
        result: o.Plan,
        written: dict[int, WriteResult | None],
        baseline: dict[PsaKey, Link],
        pending: _Pending | None = None,
        settled: list[Any] | None = None,
        titles: dict[PsaKey, str] | None = None,
    ) -> bool:
        """Apply the PSA ops and persist links (+ the pending deletions and the state) in one
        fenced transaction; return whether every Exchange write was sent.

        ``chunk``: the page whose state to store (None: applying stored deletions, no state).
        ``settled``: stored deletions this commit carries out, dropped with it unless their
        item failed. ``titles``: the items' titles for the run's item list.
        """
        counted: list[tuple[o.Op, ItemKind]] = []
        complete = all(w is not None for w in written.values())
        try:
            with transaction.atomic():
                book = LinkBook(self, baseline, written, counted, titles=_by_id(titles))
                links = book.replay(result.ops)
                save_links(self.mailbox, links)
                again = {deferred.key_of(op) for op in pending.ops} if pending else set()
                held.forget_revived(self.mailbox, result.ops, book.failed, again)
                if settled is not None:
                    held.drop([r for r in settled if not _failed(r, book.failed)])
                self.log.flush()
                if pending is not None and complete:
                    self.replanned(folder, book.failed | _follow_ups(result.ops))
                    held.defer(self.mailbox, folder.value, pending.ops, pending.titles)
                if chunk is not None and complete:
                    assert pending is not None
                    self.keep_listed(folder, chunk, links)
                    self.save_state(folder, chunk, pass_base=pending.linked)
                leases.check(self.mailbox.pk, self.token)
        except BaseException:
            self.log.discard()
            raise
        for op, kind in counted:
            self.log.count(op, kind)
        if not complete:
            self.out_of_time()
        return complete

    def replanned(self, folder: FolderKind, failed: set[PsaKey]) -> None:
        """The page planned its keys: those that failed stay to plan again, the rest are done."""
        planned = self.planned.get(folder)
        retry = self.retry.get(folder, set())
        done = retry if planned is None or planned.keys is None else retry & planned.keys
        self.retry[folder] = (retry - done) | failed

    def keep_listed(
        self, folder: FolderKind, chunk: _Chunk, links: dict[PsaKey, Link | None]
    ) -> None:
        """Keep the ids a full read spanning pages has listed (and the items this page linked:
        created or moved meanwhile, they are alive), until its last page (:meth:`with_gaps`)."""
        if not chunk.split:
            return
        kept = FullReadSeen.objects.filter(mailbox_settings=self.mailbox, folder=folder.value)
        if chunk.first or chunk.last:
            kept.delete()  # a read that began afresh, or the read is over
        if chunk.last:
            return
        ids = {item.exchange_id for item in chunk.items} | set(chunk.unchanged)
        ids |= {link.exchange_id for link in links.values() if link and link.exchange_id}
        FullReadSeen.objects.bulk_create(
            [
                FullReadSeen(mailbox_settings=self.mailbox, folder=folder.value, exchange_id=i)
                for i in sorted(ids)
            ],
            ignore_conflicts=True,
        )

    def save_state(self, folder: FolderKind, chunk: _Chunk, *, pass_base: int) -> None:
        """Store the page's state; a pass that begins here keeps the folder's synced items as
        the guard's base until it ends (:meth:`settle`). A full read keeps when it began: a
        resync requested before then is served by it, resumed if a budget split it."""
        values: dict[str, Any] = {"state": chunk.new_state}
        if chunk.full_read and chunk.first:
            values["full_read_since"] = self.started
        values["retry_keys"] = scope.encoded_keys(self.retry.get(folder, set()))
        planned = self.planned.pop(folder, None)
        if planned is not None and planned.cursor is not None:
            values["psa_cursor"] = planned.cursor
        if planned is not None and planned.full:
            values["planned_as"] = scope.fingerprint(self.options)
            values["reconciled_at"] = self.now
        if folder in self.window_read:
            values["window_read_on"] = self.now.date()
        row, created = FolderSyncState.objects.get_or_create(
            mailbox_settings=self.mailbox,
            folder=folder.value,
            defaults={**values, "pass_base": pass_base},
        )
        if not created:
            if row.pass_base is None:
                values["pass_base"] = pass_base
            FolderSyncState.objects.filter(pk=row.pk).update(**values)

    # --- deletions: settled at the end of a pass, or as an administrator decided -------------

    def settle(self, folder: FolderKind) -> None:
        """The folder's pass of the change feed is complete: apply its pending deletions if
        they stay within the guard's limit, else hold them (docs/sync-rules.md, "Mass-delete
        guard"). The next pass starts counting afresh."""
        states = FolderSyncState.objects.filter(mailbox_settings=self.mailbox, folder=folder)
        base = states.values_list("pass_base", flat=True).first()
        pending = held.rows(self.mailbox, folder.value, held.State.PENDING)
        if pending:
            baseline = self.folder_baseline(folder)
            ops = held.to_ops(pending, baseline)
            linked = base if base is not None else _linked(baseline)
            already_held = held.is_held(self.mailbox, folder.value)
            if deferred.holds(ops, linked, self.options, already_held=already_held):
                held.hold(pending)
                self.guard_message = held.message(held.held_count(self.mailbox))
            else:
                self.apply_stored(folder, ops, baseline, pending)
        states.update(pass_base=None)

    def apply_decisions(self, folder: FolderKind) -> None:
        """Carry out what an administrator chose for held deletions: Confirm applies exactly
        the held set; Restore deletes nothing."""
        confirmed = held.rows(self.mailbox, folder.value, held.State.CONFIRMED)
        restored = held.rows(self.mailbox, folder.value, held.State.RESTORED)
        if not (confirmed or restored):
            return
        baseline = self.folder_baseline(folder)
        ops = held.to_ops(confirmed, baseline) + held.restore_ops(restored, baseline)
        self.apply_stored(folder, ops, baseline, [*confirmed, *restored])

    def apply_stored(
        self,
        folder: FolderKind,
        ops: list[o.Op],
        baseline: dict[PsaKey, Link],
        rows: list[Any],
    ) -> None:
        written = ExchangeWriter(self, folder).write(ops)
        # A held row of an item already gone from the PSA is titled by its bare key.
        untitled = [row for row in rows if not row.title or row.title.startswith(f"{row.kind}:")]
        titled = {id(row) for row in rows} - {id(row) for row in untitled}
        by_item = {(row.kind, row.psa_id): row.title for row in rows if id(row) in titled}
        by_item = runs.known_titles(self.mailbox, untitled) | by_item
        titles = {
            key: by_item.get((key.kind.value, key.psa_id), "") for key in map(held.key_of, ops)
        }
        self.commit(
            folder, None, o.Plan(tuple(ops)), written, baseline, settled=rows, titles=titles
        )
        # What these ops leave to the planner (a restored item exported again, a failed
        # delete) is planned by the folder's next page, not only by the daily full plan.
        keys = {held.key_of(op) for op in ops}
        self.retry.setdefault(folder, set()).update(keys)
        states = FolderSyncState.objects.filter(mailbox_settings=self.mailbox, folder=folder)
        for row in states:
            keys |= scope.decoded_keys(row.retry_keys, self.mailbox)
            states.update(retry_keys=scope.encoded_keys(keys))


def _follow_ups(ops: Iterable[o.Op]) -> set[PsaKey]:
    """Keys a plan may have more to do for once its ops are applied (a relink, a merge in
    steps): planned again by the next page. A create settles its key in one step."""
    creates = o.CreateInExchange | o.CreateInPsa
    return {deferred.key_of(op) for op in ops if not isinstance(op, creates)}


#: A whole plan of a view without items runs in slices of this many keys (bounded memory).
SLICE = 1000
#: A full read's page asks which of at most this many ids earlier pages listed; with more
#: (its last page, with every link) it reads all the read listed.
SEEN_LOOKUP = 500


def _in(key: PsaKey, folder: FolderKind) -> bool:
    return folder_of(key.kind) is folder


@dataclass(frozen=True)
class _Planned:
    """What a page planned: ``cursor``, the audit entry up to which the PSA's changes are
    planned with it (None: unchanged); ``full``: every key, not just those it touched."""

    cursor: int | None
    full: bool
    keys: frozenset[PsaKey] | None  # the keys it planned (None: all)


@dataclass(frozen=True)
class _Pending:
    """A page's destructive ops, kept until its pass ends; ``linked``: the folder's synced
    items before the page (the guard's base if the pass begins with it)."""

    ops: tuple[o.Op, ...]
    titles: dict[PsaKey, str]
    linked: int


def _linked(baseline: dict[PsaKey, Link]) -> int:
    return sum(1 for link in baseline.values() if link.state is LinkState.LINKED)


def _failed(row: Any, failed: set[PsaKey]) -> bool:
    return any(key.kind.value == row.kind and key.psa_id == row.psa_id for key in failed)


def _titles(ops: tuple[o.Op, ...], psa: dict[PsaKey, Any], view: ExchangeView) -> dict[PsaKey, str]:
    """A title per destructive op, for the administrator: the PSA item's, else its Exchange
    copy's (when this read saw it), else the key."""
    by_id = {item.exchange_id: item for item in view.items}
    titles: dict[PsaKey, str] = {}
    for op in ops:
        key = held.key_of(op)
        exchange_id = getattr(op, "exchange_id", "") or getattr(
            getattr(op, "link", None), "exchange_id", ""
        )
        record = psa[key].record if key in psa else getattr(by_id.get(exchange_id), "record", None)
        titles[key] = _title(record) or str(key)
    return titles


#: Ops whose items the run's page lists (and which carry no record to title them by).
_LISTED = (
    o.UpdateInExchange, o.DeleteInExchange, o.UpdatePsa, o.DeletePsa, o.LinkItems,
    o.MarkExchangeDeleted, o.Unlink, o.RecordConflict,
)  # fmt: skip


def _by_id(titles: dict[PsaKey, str] | None) -> dict[tuple[str, int], str]:
    """Titles by (kind, PSA id); a bare key stands for no title (the page names the kind)."""
    return {
        (key.kind.value, key.psa_id): title
        for key, title in (titles or {}).items()
        if title and title != str(key)
    }


def _title(record: Any) -> str:
    if isinstance(record, CalendarRecord):
        return record.subject
    names = [getattr(record, name, "") for name in ("given_name", "surname")]
    return " ".join(n for n in names if n)
