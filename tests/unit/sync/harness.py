"""A tiny engine for tests: a dict-based PSA, a MemoryBackend mailbox, plan() and an applier.

It does what the real engine does, minus the ORM: read the change feed page by page (a full
read without a state too: its first and last page planned whole, the pages between against the
keys they touch, what it never listed gone with its last page), expand series through
``read_window``, plan each page, apply its ops one by one (persisting each op's baseline after
it succeeded), and store the page's new sync state only after every op was applied.
``crash_at`` simulates a kill after the k-th op's write and before its baseline was saved —
the worst moment.

Deletions wait for the end of their pass, as in ``exchange_ext/engine/cycle.py``
(docs/sync-rules.md, "Mass-delete guard"): a page's destructive ops are kept as *pending*
(:attr:`SyncHarness.deferred`, in memory, across runs when a fault splits the pass); when the
feed is caught up they are applied, or *held* when ``sync.held.holds`` says so against the
folder's linked items at the start of the pass. :meth:`SyncHarness.confirm` and
:meth:`SyncHarness.restore` record an administrator's decision on the held set, carried out at
the start of the folder's next run (``sync.held.confirm_ops`` / ``restore_ops``).

A mailbox move (:meth:`SyncHarness.move_to`) is finished at the start of the next run, as
``exchange_ext/engine/moves.py`` does: our items leave the old mailbox (each delete counts as
an op for ``crash_at``), the new one is read in full, then the links move and the states are
dropped in one step (deletions pending or held for the old mailbox are dropped too).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TypeVar

from exchange_ext.backends.base import (
    FolderKind,
    ItemChange,
    ItemDeletion,
    MailboxNotFound,
    MailboxSession,
    NewItem,
    WriteResult,
)
from exchange_ext.backends.memory import MemoryBackend
from exchange_ext.sync import ops as o
from exchange_ext.sync.held import (
    Deferred,
    confirm_ops,
    deferred_of,
    holds,
    key_of,
    restore_ops,
    revived,
)
from exchange_ext.sync.moves import links_after_move, old_mailbox_deletions
from exchange_ext.sync.planner import plan
from exchange_ext.sync.records import (
    CalendarItemType,
    ContactRecord,
    ExchangeItem,
    ExchangeView,
    ItemKind,
    Link,
    LinkState,
    PsaItem,
    PsaKey,
    Record,
    Side,
    SyncOptions,
    master_of,
    merge_groups,
)
from exchange_ext.sync.scope import touched_keys
from exchange_ext.sync.windows import SyncWindow, window_for

T = TypeVar("T")


PENDING, HELD, CONFIRMED, RESTORED = "pending", "held", "confirmed", "restored"


class Crash(Exception):
    """The worker died (simulated)."""


@dataclass
class Stored:
    """A deferred deletion as the engine's ``HeldDeletion`` row keeps it."""

    folder: FolderKind
    record: Deferred
    state: str = PENDING


@dataclass
class FakePsa:
    """The PSA as the planner sees it: one record per key (built by the adapter in real life)."""

    items: dict[PsaKey, PsaItem] = field(default_factory=dict)
    next_id: int = 1000
    read_only: set[PsaKey] = field(default_factory=set)

    def add(self, item: PsaItem) -> None:
        self.items[item.key] = item

    def new_key(self, kind: ItemKind) -> PsaKey:
        self.next_id += 1
        return PsaKey(kind, self.next_id)


@dataclass
class SyncHarness:
    backend: MemoryBackend
    mailbox: str
    options: SyncOptions
    psa: FakePsa = field(default_factory=FakePsa)
    links: dict[PsaKey, Link] = field(default_factory=dict)
    states: dict[FolderKind, str | None] = field(default_factory=dict)
    conflicts: list[o.RecordConflict] = field(default_factory=list)
    item_errors: list[WriteResult] = field(default_factory=list)
    # Called between planning and applying (the run's first page): a user editing in Outlook
    # at the worst moment.
    before_apply: Callable[[], None] | None = None
    # The address the items still have to leave (a mailbox move not finished yet).
    previous_mailbox: str | None = None
    # What the last finished moves could not remove (their old mailbox was gone).
    unreachable: list[str] = field(default_factory=list)
    # Destructive ops kept until their pass ends, or held: by (kind, PSA id), as the engine.
    deferred: dict[tuple[str, int], Stored] = field(default_factory=dict)
    # The guard's base of a pass in progress: the folder's linked items when it began.
    pass_base: dict[FolderKind, int] = field(default_factory=dict)
    # Incremental planning, as the engine does it (docs/performance.md): the PSA as the last
    # committed page of a folder read it (the audit cursor), the keys to plan again (failed
    # writes, held-deletion decisions), and the clock of the folder's last whole plan.
    seen_psa: dict[FolderKind, dict[PsaKey, PsaItem]] = field(default_factory=dict)
    retry: dict[FolderKind, set[PsaKey]] = field(default_factory=dict)
    planned_at: dict[FolderKind, dt.datetime] = field(default_factory=dict)
    # How many pages were planned both ways and found to agree.
    incremental_checks: int = 0
    # The Exchange ids a full read split over pages has listed so far (FullReadSeen), kept
    # with each committed page, as the engine does.
    full_seen: dict[FolderKind, set[str]] = field(default_factory=dict)
    _before_apply_due: bool = field(default=False, repr=False)

    # --- held deletions -------------------------------------------------------------------

    def held(self, folder: FolderKind | None = None) -> list[Stored]:
        return [s for s in self.deferred.values() if s.state == HELD and folder in (None, s.folder)]

    def confirm(self) -> list[Deferred]:
        """An administrator confirms the held set (applied by the next run); returns it."""
        return self._decide(CONFIRMED)

    def restore(self) -> list[Deferred]:
        """An administrator chooses Restore for the held set; returns it."""
        return self._decide(RESTORED)

    def _decide(self, state: str) -> list[Deferred]:
        decided = self.held()
        for stored in decided:
            stored.state = state
        return [s.record for s in decided]

    def drop_states(self) -> None:
        """The engine's reaction to an expired state (or a new protocol): the folders are read
        in full again, as a new pass."""
        self.states.clear()
        self.pass_base.clear()

    def move_to(self, mailbox: str) -> None:
        """An administrator gives the resource another mailbox (the next run moves the items)."""
        self.previous_mailbox = self.previous_mailbox or self.mailbox
        self.mailbox = mailbox

    def run(self, now: dt.datetime, *, crash_at: int | None = None) -> o.Plan:
        """One sync cycle, folder by folder; returns the ops applied (over all folders).

        ``crash_at``: raise :class:`Crash` after the write of the op with that index (counted
        over the whole run) and before its baseline is saved; no state is stored then.
        """
        applied: list[o.Op] = []
        self._before_apply_due = True
        if self.previous_mailbox is not None:
            self._finish_move(now, applied, crash_at)
        with self.backend.open_session(self.mailbox) as session:
            for folder in (FolderKind.CALENDAR, FolderKind.CONTACTS):
                self._apply_decisions(session, folder, applied, crash_at)
                self._sync_folder(session, folder, now, applied, crash_at)
        return o.Plan(tuple(applied), bool(self.held()))

    def _sync_folder(
        self,
        session: MailboxSession,
        folder: FolderKind,
        now: dt.datetime,
        applied: list[o.Op],
        crash_at: int | None,
    ) -> None:
        """Page by page from the stored state (``None``: a full read), then settle the pass."""
        window = window_for(self.options, now)
        state = self.states.get(folder)
        while True:
            page = session.read_changes(folder, state, window)
            first, last = state is None, not page.more_available
            if page.full_read:
                view = self._full_read_view(session, folder, window, page.created, first, last)
            else:
                items = [*page.created, *page.updated]
                view = self._with_occurrences(session, folder, window, items, list(page.deleted))
            before = dict(self.links)
            # A full read's first and last page are planned whole, as the engine does.
            whole = page.full_read and (first or last)
            self._sync_chunk(
                session, folder, now, view, page.new_state, applied, crash_at, whole=whole
            )
            if page.full_read and not view.full_read:
                self._keep_listed(folder, page.created, before, first, last)
            stuck = page.more_available and page.new_state == state
            state = page.new_state
            if not page.more_available or stuck:
                break
        self._settle(session, folder, applied, crash_at)

    def _full_read_view(
        self,
        session: MailboxSession,
        folder: FolderKind,
        window: SyncWindow,
        listed_items: tuple[ExchangeItem, ...],
        first: bool,
        last: bool,
    ) -> ExchangeView:
        """A page of a full read as the engine's ``with_gaps`` and ``view_of`` make it: in one
        page, the whole folder; split, what it shows gone so far (with its last page, every
        linked item never listed; before, a linked item not listed whose identity an unlinked
        item of the page carries), the recurring window expanded with the last page only."""
        items = list(listed_items)
        gone: set[str] = set()
        if not (first and last):
            listed = {item.exchange_id for item in items}
            if not first:
                listed |= self.full_seen.get(folder, set())
            baseline = _in_folder(self.links, folder)
            claimed = {link.exchange_id for link in baseline.values()}
            identities = {
                item.identity
                for item in items
                if item.psa_tag is None and item.exchange_id not in claimed and item.identity
            }
            for link in baseline.values():
                if not link.exchange_id or link.exchange_id in listed:
                    continue
                master_id = master_of(link.exchange_id)
                if master_id is not None:
                    if last and master_id not in listed:
                        gone.add(master_id)
                elif last or (link.identity is not None and link.identity in identities):
                    gone.add(link.exchange_id)
        masters: set[str] = set()
        if folder is FolderKind.CALENDAR and last:
            masters = {
                item.exchange_id
                for item in items
                if item.calendar_item_type is CalendarItemType.RECURRING_MASTER
            }
            occurrences = [i for i in session.read_window(folder, window) if i.master_id]
            masters |= {i.master_id for i in occurrences if i.master_id}
            items += occurrences
        return ExchangeView(
            items=tuple(items),
            deleted=frozenset(gone),
            full_read=first and last,
            expanded_series=frozenset(masters),
        )

    def _keep_listed(
        self,
        folder: FolderKind,
        listed_items: tuple[ExchangeItem, ...],
        before: Mapping[PsaKey, Link],
        first: bool,
        last: bool,
    ) -> None:
        """A committed page of a split full read: keep the ids it listed and the items it
        linked (created or moved meanwhile, they are alive) until the read ends."""
        if first or last:
            self.full_seen.pop(folder, None)
        if last:
            return
        seen = self.full_seen.setdefault(folder, set())
        seen |= {item.exchange_id for item in listed_items}
        seen |= {
            link.exchange_id
            for key, link in self.links.items()
            if link.exchange_id and before.get(key) != link
        }

    def _sync_chunk(
        self,
        session: MailboxSession,
        folder: FolderKind,
        now: dt.datetime,
        view: ExchangeView,
        new_state: str,
        applied: list[o.Op],
        crash_at: int | None,
        *,
        whole: bool = False,
    ) -> None:
        """Plan one page (``whole``: every key, a full read's first or last page); apply its
        ops but the destructive ones, which are kept pending."""
        baseline = _in_folder(self.links, folder)
        psa = _in_folder(self.psa.items, folder)
        options = replace(self.options, guard_overridden=True)  # counted over the pass instead
        keys = None if whole else self._planned_keys(folder, psa, view, now)
        result = self._plan_both_ways(baseline, psa, view, options, now, keys)
        # Before creating, look our tags up (a copy written before a crash may be on a page
        # not read yet): adopt it instead of creating a second one, as the engine does.
        tags = [op.tag for op in result.ops if isinstance(op, o.CreateInExchange)]
        found = session.find_by_tag(folder, tags) if tags and not view.full_read else {}
        if found:
            tagged = tuple(item for items in found.values() for item in items)
            tagged_view = replace(view, tagged=tagged)
            result = self._plan_both_ways(baseline, psa, tagged_view, options, now, keys)
        if self.before_apply is not None and self._before_apply_due:
            self.before_apply()  # once per run
        self._before_apply_due = False
        kept = [op for op in result.ops if not isinstance(op, o.DESTRUCTIVE)]
        failed = self._apply_all(session, kept, applied, crash_at)
        # Durable progress, in one step: the page's pending deletions, the base of a pass that
        # begins with it, its state — only once its changes were applied.
        again = {key_of(op) for op in result.ops if isinstance(op, o.DESTRUCTIVE)}
        for key in revived(kept, failed, again):
            self.deferred.pop((key.kind.value, key.psa_id), None)
        for op in result.ops:
            if isinstance(op, o.DESTRUCTIVE):
                record = deferred_of(op)
                slot = (record.kind, record.psa_id)
                state = self.deferred[slot].state if slot in self.deferred else PENDING
                self.deferred[slot] = Stored(folder, record, state)
        self.pass_base.setdefault(folder, _linked(baseline))
        self.states[folder] = new_state
        # The page is committed, and with it the PSA's changes up to now (its own writes
        # included: planning them again would change nothing); its keys are planned.
        self.seen_psa[folder] = _in_folder(self.psa.items, folder)
        if keys is None:
            self.planned_at[folder] = now
        retry = self.retry.get(folder, set())
        done = retry if keys is None else retry & keys
        creates = o.CreateInExchange | o.CreateInPsa  # settled in one step, as in the engine
        follow_ups = {key_of(op) for op in kept if not isinstance(op, creates)}
        self.retry[folder] = (retry - done) | failed | follow_ups

    def _planned_keys(
        self, folder: FolderKind, psa: dict[PsaKey, PsaItem], view: ExchangeView, now: dt.datetime
    ) -> set[PsaKey] | None:
        """The engine's choice (exchange_ext/engine/scope.py): None for a whole plan (a full
        read, an expanded window, the first plan, another clock: the reconciliation), else
        the PSA's changed keys since the last committed page, the keys to plan again, and those
        of deletions pending or held (planned again each page, and kept back)."""
        seen = self.seen_psa.get(folder)
        if view.full_read or view.expanded_series or seen is None:
            return None
        if self.planned_at.get(folder) != now:
            return None
        changed = {key for key in psa.keys() | seen.keys() if psa.get(key) != seen.get(key)}
        deferred = {_key(s.record) for s in self.deferred.values() if s.folder is folder}
        return changed | self.retry.get(folder, set()) | deferred

    def _plan_both_ways(
        self,
        baseline: dict[PsaKey, Link],
        psa: dict[PsaKey, PsaItem],
        view: ExchangeView,
        options: SyncOptions,
        now: dt.datetime,
        keys: set[PsaKey] | None,
    ) -> o.Plan:
        """The whole plan; and, when the engine would plan just some keys, the plan of those
        keys and the view's (:func:`touched_keys`), which must be the same ops."""
        whole = plan(baseline, psa, view, options, now)
        if keys is None:
            return whole
        keys = keys | touched_keys(baseline.values(), view, options)
        narrow = plan(
            {key: link for key, link in baseline.items() if key in keys},
            {key: item for key, item in psa.items() if key in keys},
            view,
            options,
            now,
        )
        assert narrow.ops == whole.ops, (keys, view, self.seen_psa, psa, self.links, whole.ops)
        self.incremental_checks += 1
        return whole

    def _settle(
        self,
        session: MailboxSession,
        folder: FolderKind,
        applied: list[o.Op],
        crash_at: int | None,
    ) -> None:
        """The pass is complete: apply its pending deletions, or hold them."""
        pending = [s for s in self.deferred.values() if s.folder is folder and s.state == PENDING]
        if pending:
            baseline = _in_folder(self.links, folder)
            ops = confirm_ops([s.record for s in pending], baseline)
            base = self.pass_base.get(folder)
            linked = base if base is not None else _linked(baseline)
            if holds(ops, linked, self.options, already_held=bool(self.held(folder))):
                for stored in pending:
                    stored.state = HELD
            else:
                self._apply_stored(session, ops, pending, applied, crash_at)
                self.retry.setdefault(folder, set()).update(key_of(op) for op in ops)
        self.pass_base.pop(folder, None)

    def _apply_decisions(
        self,
        session: MailboxSession,
        folder: FolderKind,
        applied: list[o.Op],
        crash_at: int | None,
    ) -> None:
        """Carry out an administrator's decision: Confirm applies exactly the held set;
        Restore deletes nothing."""
        mine = [s for s in self.deferred.values() if s.folder is folder]
        confirmed = [s for s in mine if s.state == CONFIRMED]
        restored = [s for s in mine if s.state == RESTORED]
        if not (confirmed or restored):
            return
        baseline = _in_folder(self.links, folder)
        ops = confirm_ops([s.record for s in confirmed], baseline)
        ops += restore_ops([s.record for s in restored], baseline)
        self._apply_stored(session, ops, [*confirmed, *restored], applied, crash_at)
        # What the decisions leave to the planner is planned by the next page.
        self.retry.setdefault(folder, set()).update(key_of(op) for op in ops)

    def _apply_stored(
        self,
        session: MailboxSession,
        ops: list[o.Op],
        settled: list[Stored],
        applied: list[o.Op],
        crash_at: int | None,
    ) -> None:
        """Apply stored deletions; drop their records unless their item failed."""
        failed = self._apply_all(session, ops, applied, crash_at)
        failed_slots = {(key.kind.value, key.psa_id) for key in failed}
        for stored in settled:
            slot = (stored.record.kind, stored.record.psa_id)
            if slot not in failed_slots:
                self.deferred.pop(slot, None)

    def _apply_all(
        self,
        session: MailboxSession,
        ops: list[o.Op],
        applied: list[o.Op],
        crash_at: int | None,
    ) -> set[PsaKey]:
        """Apply ``ops`` in order (``crash_at`` counts over the whole run); return the keys
        whose op failed."""
        failed: set[PsaKey] = set()
        for op in ops:
            errors = len(self.item_errors)
            self.apply(session, op, crash=crash_at == len(applied))
            applied.append(op)
            if len(self.item_errors) > errors:
                failed.add(key_of(op))
        return failed

    def _finish_move(self, now: dt.datetime, applied: list[o.Op], crash_at: int | None) -> None:
        assert self.previous_mailbox is not None
        window = window_for(self.options, now)
        try:
            session = self.backend.open_session(self.previous_mailbox)
        except MailboxNotFound:
            self.unreachable.append(self.previous_mailbox)  # reported; the move goes on
        else:
            with session:
                for folder in (FolderKind.CALENDAR, FolderKind.CONTACTS):
                    items = self._read_all(session, folder, window)
                    for op in old_mailbox_deletions(items, self.options):
                        self._ok(session.delete(folder, [ItemDeletion(op.exchange_id)])[0])
                        if crash_at == len(applied):
                            raise Crash("DeleteInExchange (old mailbox)")
                        applied.append(op)
        with self.backend.open_session(self.mailbox) as session:
            found = [
                item
                for folder in (FolderKind.CALENDAR, FolderKind.CONTACTS)
                for item in self._read_all(session, folder, window)
            ]
            found += [i for i in session.read_window(FolderKind.CALENDAR, window) if i.master_id]
        # One transaction: links moved, states dropped, the move done.
        for key, link in links_after_move(self.links, found).items():
            if link is None:
                del self.links[key]
            else:
                self.links[key] = link
        self.states.clear()
        self.pass_base.clear()
        self.deferred.clear()
        self.previous_mailbox = None

    @staticmethod
    def _read_all(
        session: MailboxSession, folder: FolderKind, window: SyncWindow
    ) -> list[ExchangeItem]:
        items: list[ExchangeItem] = []
        state: str | None = None
        while True:
            page = session.read_changes(folder, state, window)
            items += [*page.created, *page.updated]
            state = page.new_state
            if not page.more_available:
                return items

    # --- reading ------------------------------------------------------------------------------

    def _with_occurrences(
        self,
        session: MailboxSession,
        folder: FolderKind,
        window: SyncWindow,
        items: list[ExchangeItem],
        deleted: list[str],
    ) -> ExchangeView:
        """A page of the change feed. Series come as masters from the feed; their occurrences
        from a window read."""
        masters = {
            i.exchange_id
            for i in items
            if i.calendar_item_type is CalendarItemType.RECURRING_MASTER
        }
        occurrences: list[ExchangeItem] = []
        if folder is FolderKind.CALENDAR and (masters or self._known_series()):
            occurrences = [i for i in session.read_window(folder, window) if i.master_id]
            masters |= {i.master_id for i in occurrences if i.master_id}
        return ExchangeView(
            items=tuple(items + occurrences),
            deleted=frozenset(deleted),
            full_read=False,
            expanded_series=frozenset(masters),
        )

    def _known_series(self) -> bool:
        return any("|" in link.exchange_id for link in self.links.values())

    # --- applying -----------------------------------------------------------------------------

    def apply(self, session: MailboxSession, op: o.Op, *, crash: bool = False) -> None:
        link = self._effect(session, op)
        if crash:
            raise Crash(type(op).__name__)
        self._persist(op, link)

    def _effect(self, session: MailboxSession, op: o.Op) -> Link | None:
        """Perform the op's write; return the baseline to persist (None: drop or nothing)."""
        if isinstance(op, o.CreateInExchange):
            result = session.create(_folder_of(op.record), [NewItem(op.record, op.tag)])[0]
            return (
                op.link_after(result.exchange_id, result.change_key) if self._ok(result) else None
            )
        if isinstance(op, o.UpdateInExchange):
            change = ItemChange(op.exchange_id, op.change_key, op.record, op.fields)
            result = session.update(_folder_of(op.record), [change])[0]
            return op.link_after(result.change_key) if self._ok(result) else None
        if isinstance(op, o.DeleteInExchange):
            folder = _folder_of_kind(op.key)
            result = session.delete(folder, [ItemDeletion(op.exchange_id, op.change_key)])[0]
            # A refused delete keeps the link (planned again next run), as the engine's does.
            return None if self._ok(result) else self.links.get(op.key)
        return self._psa_effect(op)

    def _psa_effect(self, op: o.Op) -> Link | None:
        if isinstance(op, o.CreateInPsa):
            new_key = self.psa.new_key(op.kind)
            self.psa.add(PsaItem(new_key, op.record, Side.EXCHANGE))
            if op.read_only:
                self.psa.read_only.add(new_key)
            return op.link_after(new_key.psa_id)
        if isinstance(op, o.UpdatePsa):
            item = self.psa.items[op.key]
            self.psa.add(replace(item, record=merge_groups(item.record, op.record, op.fields)))
            return op.link
        if isinstance(op, o.DeletePsa):
            self.psa.items.pop(op.key, None)
            return None
        if isinstance(op, o.RecordConflict):
            self.conflicts.append(op)
            return None
        if isinstance(op, o.Forget):
            return None
        return op.link

    def _persist(self, op: o.Op, link: Link | None) -> None:
        if link is not None:
            self.links[link.key] = link
        elif isinstance(op, o.DeleteInExchange):
            current = self.links.get(op.key)
            if current is not None and current.exchange_id == op.exchange_id:
                del self.links[op.key]
        elif isinstance(op, o.DeletePsa | o.Forget):
            self.links.pop(op.key, None)

    def _ok(self, result: WriteResult) -> bool:
        if not result.ok:
            self.item_errors.append(result)
        return result.ok


def _key(record: Deferred) -> PsaKey:
    return PsaKey(ItemKind(record.kind), record.psa_id)


def _folder_of(record: Record) -> FolderKind:
    return FolderKind.CONTACTS if isinstance(record, ContactRecord) else FolderKind.CALENDAR


def _folder_of_kind(key: PsaKey) -> FolderKind:
    return FolderKind.CONTACTS if key.kind is ItemKind.CONTACT else FolderKind.CALENDAR


def _linked(baseline: Mapping[PsaKey, Link]) -> int:
    return sum(1 for link in baseline.values() if link.state is LinkState.LINKED)


def _in_folder(mapping: Mapping[PsaKey, T], folder: FolderKind) -> dict[PsaKey, T]:
    return {k: v for k, v in mapping.items() if _folder_of_kind(k) is folder}
