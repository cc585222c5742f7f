"""A tiny engine for tests: a dict-based PSA, a MemoryBackend mailbox, plan() and an applier.

It does what the real engine will do, minus the ORM: read the change feed page by page (full
read without a state), expand series through ``read_window``, plan, apply the ops one by one
(persisting each op's baseline after it succeeded), and store the new sync state only after
every op was applied. ``crash_at`` simulates a kill after the k-th op's write and before its
baseline was saved — the worst moment.

A mailbox move (:meth:`SyncHarness.move_to`) is finished at the start of the next run, as
``exchange_ext/engine/moves.py`` does: our items leave the old mailbox (each delete counts as
an op for ``crash_at``), the new one is read in full, then the links move and the states are
dropped in one step.
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
from exchange_ext.sync.moves import links_after_move, old_mailbox_deletions
from exchange_ext.sync.planner import plan
from exchange_ext.sync.records import (
    CalendarItemType,
    ContactRecord,
    ExchangeItem,
    ExchangeView,
    ItemKind,
    Link,
    PsaItem,
    PsaKey,
    Record,
    Side,
    SyncOptions,
    merge_groups,
)
from exchange_ext.sync.windows import SyncWindow, window_for

T = TypeVar("T")


class Crash(Exception):
    """The worker died (simulated)."""


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
    # Called between planning and applying: a user editing in Outlook at the worst moment.
    before_apply: Callable[[], None] | None = None
    # The address the items still have to leave (a mailbox move not finished yet).
    previous_mailbox: str | None = None
    # What the last finished moves could not remove (their old mailbox was gone).
    unreachable: list[str] = field(default_factory=list)

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
        guard_tripped = False
        if self.previous_mailbox is not None:
            self._finish_move(now, applied, crash_at)
        with self.backend.open_session(self.mailbox) as session:
            for folder in (FolderKind.CALENDAR, FolderKind.CONTACTS):
                view, new_state = self.read(session, folder, now)
                result = plan(
                    _in_folder(self.links, folder), _in_folder(self.psa.items, folder), view,
                    self.options, now,
                )  # fmt: skip
                if self.before_apply is not None:
                    self.before_apply()
                for op in result.ops:
                    self.apply(session, op, crash=crash_at == len(applied))
                    applied.append(op)
                guard_tripped = guard_tripped or result.guard_tripped
                # Durable progress: the state is stored only once its changes were applied.
                self.states[folder] = new_state
        return o.Plan(tuple(applied), guard_tripped)

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

    def read(
        self, session: MailboxSession, folder: FolderKind, now: dt.datetime
    ) -> tuple[ExchangeView, str]:
        """Every page of changes since the stored state (a full read without one)."""
        window = window_for(self.options, now)
        state = self.states.get(folder)
        items: list[ExchangeItem] = []
        deleted: list[str] = []
        full = state is None
        while True:
            page = session.read_changes(folder, state, window)
            items += [*page.created, *page.updated]
            deleted += page.deleted
            state = page.new_state
            if not page.more_available:
                break
        return self._with_occurrences(session, folder, window, items, deleted, full), state

    def _with_occurrences(
        self,
        session: MailboxSession,
        folder: FolderKind,
        window: SyncWindow,
        items: list[ExchangeItem],
        deleted: list[str],
        full: bool,
    ) -> ExchangeView:
        # Series come as masters from the feed; their occurrences from a window read.
        masters = {
            i.exchange_id
            for i in items
            if i.calendar_item_type is CalendarItemType.RECURRING_MASTER
        }
        occurrences: list[ExchangeItem] = []
        if folder is FolderKind.CALENDAR and (masters or full or self._known_series()):
            occurrences = [i for i in session.read_window(folder, window) if i.master_id]
            masters |= {i.master_id for i in occurrences if i.master_id}
        return ExchangeView(
            items=tuple(items + occurrences),
            deleted=frozenset(deleted),
            full_read=full,
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
            self._ok(result)
            return None
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


def _folder_of(record: Record) -> FolderKind:
    return FolderKind.CONTACTS if isinstance(record, ContactRecord) else FolderKind.CALENDAR


def _folder_of_kind(key: PsaKey) -> FolderKind:
    return FolderKind.CONTACTS if key.kind is ItemKind.CONTACT else FolderKind.CALENDAR


def _in_folder(mapping: Mapping[PsaKey, T], folder: FolderKind) -> dict[PsaKey, T]:
    return {k: v for k, v in mapping.items() if _folder_of_kind(k) is folder}
