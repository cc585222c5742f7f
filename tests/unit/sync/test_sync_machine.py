"""A Hypothesis state machine over the sync: random edits on both sides, faults, crashes, runs.

The PSA is the harness's dict, Exchange a MemoryBackend mailbox. After any history, a run
without faults must converge (links consistent, times agreeing, everything imported/exported
per the rules), the run after it must plan nothing, and at no time may a PSA item have two
Exchange copies. Histories include what re-identifies items (docs/sync-rules.md,
"Re-identification"): a switch of protocol (every id changes, UIDs and tags stay), an organizer
moving a series (every occurrence id changes), and a mailbox move (another mailbox, possibly
holding copies of the items, the old one possibly gone, a crash halfway). A mailbox move
deletes no PSA item and leaves none of our copies behind.

Deletions (docs/sync-rules.md, "Mass-delete guard", "Deletes"): the harness keeps a pass's
destructive ops pending until the feed is caught up, then applies or holds them; the machine
runs with a small guard (``guard_min_items`` 2, half the linked items) so that histories hold.
Moves: a vanishing calendar (every Exchange item of the mailbox deleted at once) or PSA (every
PSA item removed at once); an administrator's Confirm or Restore of the held set; an item every
read of fails (``MemoryBackend.set_unreadable``) until it is readable again. Invariants: no run
outside a mailbox move or a Confirm loses more of a folder's items on one side than the guard
allows; a held deletion has deleted nothing (its PSA item, its Exchange copy, its link are
still there unless the user removed them); after Confirm and the next runs the held items are
gone on the side each op targets; after Restore and the next runs nothing held was deleted and
the PSA items whose copies vanished are in Exchange again; the PSA counterpart of an unreadable
item survives while it is unreadable. Convergence makes every item readable first, then allows
no op but the held ones (which are planned again and kept back, never applied).

``SYNC_MACHINE_EXAMPLES`` raises the example count (CI runs 500).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import os
from collections import Counter

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from exchange_ext.backends.base import FolderKind, ItemUnreadable, SyncStateExpired, Unavailable
from exchange_ext.backends.memory import MemoryBackend
from exchange_ext.sync import ops as o
from exchange_ext.sync.held import Deferred, DeferredOp, key_of
from exchange_ext.sync.mapping import is_importable
from exchange_ext.sync.records import (
    CalendarItemType,
    CalendarRecord,
    ContactRecord,
    ExchangeItem,
    ItemKind,
    LinkState,
    PsaItem,
    PsaKey,
    ShowAs,
    Side,
    master_of,
)
from exchange_ext.sync.windows import is_in_window, window_for
from tests import clock
from tests.unit.sync.factories import OPTIONS
from tests.unit.sync.harness import CONFIRMED, Crash, SyncHarness

MAILBOX = "tech@example.test"
# A guard small enough for a short history to trip it.
GUARDED = dataclasses.replace(OPTIONS, guard_min_items=2, guard_ratio=0.5)
EXAMPLES = int(os.environ.get("SYNC_MACHINE_EXAMPLES", "100"))

days = st.integers(min_value=-9, max_value=16)
hours = st.integers(min_value=1, max_value=3)
shifts = st.sampled_from([-2, -1, 1, 3])
subjects = st.sampled_from(["Visit", "Call", "Review", "Lunch"])


class SyncMachine(RuleBasedStateMachine):
    """Random histories of edits, faults and runs against the sync invariants."""

    @initialize()
    def start(self) -> None:
        self.h = SyncHarness(MemoryBackend([MAILBOX], page_size=4), MAILBOX, GUARDED)
        self.moves = 0
        # The PSA items the user removed (so their absence is not the sync's doing).
        self.psa_removed: set[PsaKey] = set()
        # Exchange ids the user removed or renamed (a series' id: all its occurrence ids).
        self.exchange_gone: set[str] = set()
        # What a run deleted before it crashed: its stored deletions outlive it (the next pass
        # counts them again, and may hold them), though they were applied within the limit.
        self.crash_deleted: set[str | PsaKey] = set()
        # Unreadable Exchange ids → the PSA keys linked to them when they became unreadable.
        self.unreadable: dict[str, set[PsaKey]] = {}
        # Per folder, the most items ever linked at a run's start (bounds any pass's base).
        self.peak_linked: Counter[FolderKind] = Counter()
        self.now = clock.now()  # the test's pinned clock; advance_clock moves it on from there

    # --- PSA edits ----------------------------------------------------------------------------

    @rule(kind=st.sampled_from([ItemKind.APPOINTMENT, ItemKind.TODO]), day=days, length=hours,
          subject=subjects)  # fmt: skip
    def psa_create(self, kind: ItemKind, day: int, length: int, subject: str) -> None:
        start = self.now + dt.timedelta(days=day)
        record = CalendarRecord(subject, "", start, start + dt.timedelta(hours=length))
        self.h.psa.add(PsaItem(self.h.psa.new_key(kind), record))

    @precondition(lambda self: self.editable_psa())
    @rule(data=st.data(), shift=shifts)
    def psa_move(self, data: st.DataObject, shift: int) -> None:
        item = data.draw(st.sampled_from(self.editable_psa()))
        self.h.psa.add(dataclasses.replace(item, record=_moved(item.record, shift)))

    @precondition(lambda self: self.editable_psa())
    @rule(data=st.data(), subject=subjects)
    def psa_rename(self, data: st.DataObject, subject: str) -> None:
        item = data.draw(st.sampled_from(self.editable_psa()))
        record = dataclasses.replace(item.record, subject=f"{subject} (PSA)")
        self.h.psa.add(dataclasses.replace(item, record=record))

    @rule(surname=subjects)
    def psa_create_contact(self, surname: str) -> None:
        key = self.h.psa.new_key(ItemKind.CONTACT)
        self.h.psa.add(PsaItem(key, ContactRecord("Jane", surname)))

    @precondition(lambda self: self.contacts())
    @rule(data=st.data(), title=subjects)
    def psa_edit_contact(self, data: st.DataObject, title: str) -> None:
        item = data.draw(st.sampled_from(self.contacts()))
        self.h.psa.add(dataclasses.replace(item, record=ContactRecord("Jane", "Doe", title)))

    @precondition(lambda self: self.h.backend.items_of(self.box, FolderKind.CONTACTS))
    @rule(data=st.data())
    def exchange_edit_contact(self, data: st.DataObject) -> None:
        item = data.draw(st.sampled_from(self.h.backend.items_of(self.box, FolderKind.CONTACTS)))
        self.h.backend.edit(self.box, item.exchange_id, ContactRecord("Edited", "In Outlook"))

    @precondition(lambda self: self.h.psa.items)
    @rule(data=st.data())
    def psa_delete(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.h.psa.items)))
        del self.h.psa.items[key]
        self.psa_removed.add(key)

    @precondition(lambda self: self.h.psa.items)
    @rule()
    def psa_vanish_all(self) -> None:
        """Every PSA item of the resource removed at once (a PSA restored from a wrong backup)."""
        self.psa_removed |= set(self.h.psa.items)
        self.h.psa.items.clear()

    # --- Exchange edits (a user in Outlook) ---------------------------------------------------

    @rule(day=days, length=hours, subject=subjects, free=st.booleans(), private=st.booleans())
    def exchange_create(
        self, day: int, length: int, subject: str, free: bool, private: bool
    ) -> None:
        start = self.now + dt.timedelta(days=day)
        record = CalendarRecord(
            subject, "notes", start, start + dt.timedelta(hours=length),
            show_as=ShowAs.FREE if free else ShowAs.BUSY, is_private=private,
        )  # fmt: skip
        self.h.backend.put(self.box, record)

    @rule(day=st.integers(min_value=-3, max_value=3))
    def exchange_create_series(self, day: int) -> None:
        start = self.now + dt.timedelta(days=day)
        record = CalendarRecord("Stand-up", "", start, start + dt.timedelta(minutes=30))
        self.h.backend.put_series(
            self.box, record, [start + dt.timedelta(days=n) for n in range(4)]
        )

    @precondition(lambda self: self.exchange_items())
    @rule(data=st.data(), shift=shifts)
    def exchange_move(self, data: st.DataObject, shift: int) -> None:
        item = data.draw(st.sampled_from(self.exchange_items()))
        self.h.backend.edit(self.box, item.exchange_id, _moved(item.record, shift))

    @precondition(lambda self: self.exchange_items())
    @rule(data=st.data(), subject=subjects)
    def exchange_rename(self, data: st.DataObject, subject: str) -> None:
        item = data.draw(st.sampled_from(self.exchange_items()))
        record = dataclasses.replace(item.record, subject=f"{subject} (Outlook)")
        self.h.backend.edit(self.box, item.exchange_id, record)

    @precondition(lambda self: self.exchange_items())
    @rule(data=st.data())
    def exchange_delete(self, data: st.DataObject) -> None:
        item = data.draw(st.sampled_from(self.exchange_items()))
        self.remove_in_exchange(item)

    @precondition(lambda self: self.h.backend.items_of(self.box))
    @rule()
    def exchange_vanish_all(self) -> None:
        """Every item of the mailbox deleted at once (a calendar emptied, a wrong server)."""
        for item in self.h.backend.items_of(self.box):
            self.remove_in_exchange(item)

    def remove_in_exchange(self, item: ExchangeItem) -> None:
        self.h.backend.remove(self.box, item.exchange_id)
        self.unreadable.pop(item.exchange_id, None)
        self.exchange_gone.add(item.exchange_id)

    @precondition(lambda self: self.h.backend.items_of(self.box))
    @rule(data=st.data())
    def make_unreadable(self, data: st.DataObject) -> None:
        """Every read of an item (a series: of its occurrences) fails, as a corrupt item's."""
        item = data.draw(st.sampled_from(self.h.backend.items_of(self.box)))
        keys = {
            key
            for key, link in self.h.links.items()
            if item.exchange_id in (link.exchange_id, master_of(link.exchange_id))
        }
        self.unreadable[item.exchange_id] = keys
        self.h.backend.set_unreadable(item.exchange_id)

    @precondition(lambda self: self.unreadable)
    @rule(data=st.data())
    def make_readable(self, data: st.DataObject) -> None:
        exchange_id = data.draw(st.sampled_from(sorted(self.unreadable)))
        self.h.backend.set_unreadable(exchange_id, False)
        del self.unreadable[exchange_id]

    def all_readable(self) -> None:
        for exchange_id in list(self.unreadable):
            self.h.backend.set_unreadable(exchange_id, False)
        self.unreadable.clear()

    # --- an administrator's decision on held deletions ------------------------------------

    @precondition(lambda self: self.h.held())
    @rule()
    def confirm_held(self) -> None:
        """Confirm deletions: the next runs delete exactly the held set."""
        confirmed = self.h.confirm()
        if not self.settle_decision():
            return
        for record in confirmed:
            key = _key(record)
            if record.op == DeferredOp.DELETE_PSA:
                assert key not in self.h.psa.items, f"confirmed {record} kept the PSA item"
            elif record.op == DeferredOp.DELETE_IN_EXCHANGE:
                box = self.h.backend.mailboxes[self.box]
                found = self.h.backend.find_stored(box, record.exchange_id)
                # (An item edited in Outlook since is the user's again: not deleted.)
                edited = found and found.change_key_of(record.exchange_id) != record.change_key
                assert found is None or edited, f"confirmed {record} kept the Exchange item"
            else:  # (a later PSA edit may export the item again, as a new copy)
                link = self.h.links.get(key)
                assert (
                    link is None
                    or link.state is not LinkState.LINKED
                    or link.exchange_id != record.exchange_id
                ), (record, link)

    @precondition(lambda self: self.h.held())
    @rule()
    def restore_held(self) -> None:
        """Restore: nothing held is deleted; PSA items whose copies vanished are exported."""
        restored = self.h.restore()
        if not self.settle_decision():
            return
        window = window_for(OPTIONS, self.now)
        copies = self.copies()
        for record in restored:
            key = _key(record)
            if record.op == DeferredOp.DELETE_PSA and key not in self.psa_removed:
                assert key in self.h.psa.items, f"restored {record} lost the PSA item"
            elif record.op == DeferredOp.DELETE_IN_EXCHANGE:
                assert self.in_exchange(record.exchange_id), f"restored {record}: deleted"
            elif record.op == DeferredOp.MARK_EXCHANGE_DELETED:
                item = self.h.psa.items.get(key)
                if item and item.origin is Side.PSA and is_in_window(item.record, window):
                    assert key in copies, f"restored {record}: not exported again"

    def settle_decision(self) -> bool:
        """Run until the decision is carried out; False when an unreadable item stops runs."""
        for _ in range(3):
            self.sync()
        return not self.unreadable

    @precondition(lambda self: self.h.backend.items_of(self.box))
    @rule(data=st.data())
    def exchange_bump_change_key(self, data: st.DataObject) -> None:
        item = data.draw(st.sampled_from(self.h.backend.items_of(self.box)))
        self.h.backend.bump_change_key(self.box, item.exchange_id)

    @precondition(lambda self: self.masters())
    @rule(data=st.data(), shift=st.sampled_from([-26, -1, 2, 24]))
    def exchange_move_series(self, data: st.DataObject, shift: int) -> None:
        master = data.draw(st.sampled_from(self.masters()))
        self.exchange_gone.add(master)  # every occurrence id changes
        self.h.backend.move_series(self.box, master, dt.timedelta(hours=shift))

    @rule()
    def expire_states(self) -> None:
        self.h.backend.expire_states()

    # --- what re-identifies items ---------------------------------------------------------

    @rule()
    def switch_protocol(self) -> None:
        """EWS ⇄ Graph: every id changes (UIDs and tags stay); the configuration change asks
        for a full re-read (its old states mean nothing to the other protocol)."""
        renamed = self.h.backend.reidentify(self.box)
        self.exchange_gone |= set(renamed)
        self.unreadable = {renamed.get(i, i): keys for i, keys in self.unreadable.items()}
        self.h.drop_states()

    @rule(
        migrated=st.sampled_from(["nothing", "untagged", "everything"]),
        old_gone=st.booleans(),
        crash_at=st.one_of(st.none(), st.integers(min_value=0, max_value=3)),
    )
    def move_mailbox(self, migrated: str, old_gone: bool, crash_at: int | None) -> None:
        """An administrator gives the resource another mailbox, which may hold copies of the
        old one's items (a migration); the old one may be gone; the run may crash halfway."""
        self.all_readable()  # (a move reads the old mailbox in full)
        old = self.box
        self.moves += 1
        new = f"tech{self.moves}@example.test"
        self.h.backend.add_mailbox(new)
        if migrated != "nothing":
            self.h.backend.copy_items(old, new, tagged=migrated == "everything")
        if old_gone:
            self.h.backend.remove_mailbox(old)
        psa_before = set(self.h.psa.items)
        self.h.move_to(new)
        with contextlib.suppress(Crash):
            self.sync(crash_at=crash_at)
        self.sync()  # the next run finishes what a crash left
        assert self.h.previous_mailbox is None
        assert set(self.h.psa.items) >= psa_before, "a mailbox move deleted PSA items"
        if not old_gone:
            ours = [i for i in self.h.backend.items_of(old) if i.psa_tag]
            assert ours == [], "our copies left in the old mailbox"

    @rule(step=st.integers(min_value=1, max_value=4))
    def advance_clock(self, step: int) -> None:
        self.now += dt.timedelta(days=step)

    # --- runs ---------------------------------------------------------------------------------

    @rule(crash_at=st.integers(min_value=0, max_value=6))
    def sync_and_crash(self, crash_at: int) -> None:
        with contextlib.suppress(Crash):
            self.sync(crash_at=crash_at)

    @rule(operation=st.sampled_from(["read_changes", "read_window", "create", "update", "delete"]),
          after=st.integers(min_value=0, max_value=2))  # fmt: skip
    def sync_with_fault(self, operation: str, after: int) -> None:
        self.h.backend.fail_next(Unavailable("injected"), operations=[operation], after=after)
        with contextlib.suppress(Unavailable):
            self.sync()
        self.h.backend.clear_faults()  # a fault the run never reached must not linger

    @rule()
    def sync_converges_then_quiesces(self) -> None:
        """Once every item reads again: one run converges, the next applies nothing (held
        deletions are planned again and kept back)."""
        self.all_readable()
        self.sync()
        self.check_converged()
        repeat = self.sync()
        assert repeat is not None
        held = {_key(s.record) for s in self.h.held()}
        assert [op for op in repeat.ops if key_of(op) not in held] == [], repeat

    def sync(self, crash_at: int | None = None) -> o.Plan | None:
        """One run (None: an unreadable item failed it), its losses checked against the guard."""
        before = self.sides()
        present = self.present()
        decided = any(s.state == CONFIRMED for s in self.h.deferred.values())
        moving = self.h.previous_mailbox is not None
        try:
            try:
                return self.h.run(self.now, crash_at=crash_at)
            except SyncStateExpired:
                self.h.drop_states()  # the engine's reaction: a full, adopting re-read
                return self.h.run(self.now, crash_at=crash_at)
        except Crash:
            self.crash_deleted |= present - self.present()
            raise
        except ItemUnreadable:
            assert self.unreadable, "ItemUnreadable without an unreadable item"
            return None
        finally:
            if not (decided or moving):
                self.check_losses(before)

    def present(self) -> set[str | PsaKey]:
        """The PSA items and the Exchange ids (occurrences too) there now."""
        ids = {i.exchange_id for i in self.exchange_items()}
        ids |= {i.exchange_id for i in self.h.backend.items_of(self.box, FolderKind.CONTACTS)}
        return {*self.h.psa.items, *ids}

    def sides(self) -> dict[FolderKind, tuple[set[PsaKey], set[PsaKey], int]]:
        """Per folder: the PSA items, our Exchange copies (by key), the linked items."""
        copies = self.copies()
        result = {}
        for folder in (FolderKind.CALENDAR, FolderKind.CONTACTS):
            psa = {k for k in self.h.psa.items if _folder(k) is folder}
            linked = sum(
                1
                for k, link in self.h.links.items()
                if _folder(k) is folder and link.state is LinkState.LINKED
            )
            self.peak_linked[folder] = max(self.peak_linked[folder], linked)
            result[folder] = (psa, {k for k in copies if _folder(k) is folder}, linked)
        return result

    def check_losses(self, before: dict[FolderKind, tuple[set[PsaKey], set[PsaKey], int]]) -> None:
        """A run deletes at most the guard's limit of a folder's items on either side (only a
        Confirm or a mailbox move deletes more)."""
        after = self.sides()
        for folder, (psa, copies, _) in before.items():
            limit = max(GUARDED.guard_min_items, GUARDED.guard_ratio * self.peak_linked[folder])
            psa_lost = psa - after[folder][0]
            copies_lost = copies - after[folder][1]
            assert len(psa_lost) <= limit, f"the sync deleted PSA items {psa_lost}"
            assert len(copies_lost) <= limit, f"the sync deleted Exchange copies {copies_lost}"

    # --- invariants ---------------------------------------------------------------------------

    @invariant()
    def nothing_held_is_deleted(self) -> None:
        if not hasattr(self, "h"):
            return
        for stored in self.h.held():
            record, key = stored.record, _key(stored.record)
            if record.op == DeferredOp.DELETE_PSA:
                kept = key in self.h.psa.items or key in self.psa_removed
                assert kept or key in self.crash_deleted, record
            elif record.op == DeferredOp.DELETE_IN_EXCHANGE:
                kept = self.in_exchange(record.exchange_id)
                assert kept or record.exchange_id in self.crash_deleted, record
            else:
                link = self.h.links.get(key)
                # (A link forgotten — both sides gone, or out of the window — lost nothing.)
                assert link is None or link.state is LinkState.LINKED, (record, link)

    @invariant()
    def unreadable_items_delete_nothing(self) -> None:
        if not hasattr(self, "h"):
            return
        for exchange_id, keys in self.unreadable.items():
            for key in keys:
                assert key in self.h.psa.items or key in self.psa_removed, (exchange_id, key)

    @invariant()
    def no_psa_item_has_two_exchange_copies(self) -> None:
        if not hasattr(self, "h"):
            return
        tags = Counter(i.psa_tag.key for i in self.h.backend.items_of(self.box) if i.psa_tag)
        assert all(count == 1 for count in tags.values()), tags

    @invariant()
    def links_are_a_bijection(self) -> None:
        if not hasattr(self, "h"):
            return
        # (Links of a moved mailbox's imports await their new id: they have none yet.)
        ids = [link.exchange_id for link in self.h.links.values() if link.exchange_id]
        assert len(ids) == len(set(ids)), ids

    def check_converged(self) -> None:
        """Everything synced, but what a held deletion keeps as it was."""
        window = window_for(OPTIONS, self.now)
        by_id = {i.exchange_id: i for i in self.exchange_items()}
        held = {_key(s.record) for s in self.h.held()}
        for key, link in self.h.links.items():
            if key in held:
                continue
            psa_record = self.h.psa.items[key].record if key in self.h.psa.items else None
            if link.state is LinkState.LINKED and isinstance(psa_record, CalendarRecord):
                exchange = by_id[link.exchange_id]
                assert isinstance(exchange.record, CalendarRecord)
                assert (exchange.record.start, exchange.record.end) == (
                    psa_record.start, psa_record.end,
                ), key  # fmt: skip
        for key, item in self.h.psa.items.items():
            if item.origin is Side.PSA and is_in_window(item.record, window):
                assert key in self.h.links, f"{key} not exported"
        contacts = {i.psa_tag.key for i in self.h.backend.items_of(self.box, FolderKind.CONTACTS)
                    if i.psa_tag}  # fmt: skip
        # (A contact whose copy the user deleted stays so until its next PSA change.)
        gone = {k for k, link in self.h.links.items() if link.state is LinkState.EXCHANGE_DELETED}
        expected = {i.key for i in self.contacts()} - gone
        assert contacts - held == expected - held, "contacts out of step"
        linked_ids = {link.exchange_id for link in self.h.links.values()}
        for item in by_id.values():
            occurrence = item.master_id is not None
            if (
                item.psa_tag is None
                and is_importable(item, OPTIONS)
                and is_in_window(item.record, window, is_occurrence=occurrence)
            ):
                assert item.exchange_id in linked_ids, f"{item.exchange_id} not imported"

    # --- helpers ------------------------------------------------------------------------------

    @property
    def box(self) -> str:
        """The mailbox the resource syncs with now."""
        return self.h.mailbox

    def masters(self) -> list[str]:
        items = self.h.backend.items_of(self.box, FolderKind.CALENDAR)
        return sorted(
            i.exchange_id
            for i in items
            if i.calendar_item_type is CalendarItemType.RECURRING_MASTER
        )

    def editable_psa(self) -> list[PsaItem]:
        items = sorted(self.h.psa.items.items())
        return [
            item
            for key, item in items
            if key not in self.h.psa.read_only and isinstance(item.record, CalendarRecord)
        ]

    def contacts(self) -> list[PsaItem]:
        return [i for _, i in sorted(self.h.psa.items.items()) if i.key.kind is ItemKind.CONTACT]

    def exchange_items(self) -> list[ExchangeItem]:
        """Every single item and every occurrence in the calendar (no masters), read through
        the backdoor (an unreadable item is still there)."""
        box = self.h.backend.mailboxes[self.box]
        items: list[ExchangeItem] = []
        for stored in box.items.values():
            if stored.folder is FolderKind.CALENDAR:
                items += stored.expand() if stored.is_master else [stored.as_item()]
        return items

    def in_exchange(self, exchange_id: str) -> bool:
        """Whether the item is still in the mailbox, or the user removed (or renamed) it."""
        box = self.h.backend.mailboxes[self.box]
        if self.h.backend.find_stored(box, exchange_id) is not None:
            return True
        return exchange_id in self.exchange_gone or master_of(exchange_id) in self.exchange_gone

    def copies(self) -> set[PsaKey]:
        """The PSA keys of our copies in the mailbox."""
        return {i.psa_tag.key for i in self.h.backend.items_of(self.box) if i.psa_tag}


def _key(record: Deferred) -> PsaKey:
    return PsaKey(ItemKind(record.kind), record.psa_id)


def _folder(key: PsaKey) -> FolderKind:
    return FolderKind.CONTACTS if key.kind is ItemKind.CONTACT else FolderKind.CALENDAR


def _moved(record: CalendarRecord, shift: int) -> CalendarRecord:
    delta = dt.timedelta(hours=shift)
    return dataclasses.replace(record, start=record.start + delta, end=record.end + delta)


TestSyncMachine = SyncMachine.TestCase
TestSyncMachine.settings = settings(
    max_examples=EXAMPLES,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    # The same histories on every run, so CI never turns red by luck; the shifted-clock runs
    # replay them at other dates.
    derandomize=True,
    database=None,
)
