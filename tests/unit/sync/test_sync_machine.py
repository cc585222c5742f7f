"""A Hypothesis state machine over the sync: random edits on both sides, faults, crashes, runs.

The PSA is the harness's dict, Exchange a MemoryBackend mailbox. After any history, a run
without faults must converge (links consistent, times agreeing, everything imported/exported
per the rules), the run after it must plan nothing, and at no time may a PSA item have two
Exchange copies. Histories include what re-identifies items (docs/sync-rules.md,
"Re-identification"): a switch of protocol (every id changes, UIDs and tags stay), an organizer
moving a series (every occurrence id changes), and a mailbox move (another mailbox, possibly
holding copies of the items, the old one possibly gone, a crash halfway). A mailbox move
deletes no PSA item and leaves none of our copies behind. ``SYNC_MACHINE_EXAMPLES`` raises the
example count (CI runs 500).
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

from exchange_ext.backends.base import FolderKind, SyncStateExpired, Unavailable
from exchange_ext.backends.memory import MemoryBackend
from exchange_ext.sync.mapping import is_importable
from exchange_ext.sync.records import (
    CalendarItemType,
    CalendarRecord,
    ContactRecord,
    ExchangeItem,
    ItemKind,
    LinkState,
    PsaItem,
    ShowAs,
    Side,
)
from exchange_ext.sync.windows import is_in_window, window_for
from tests import clock
from tests.unit.sync.factories import OPTIONS
from tests.unit.sync.harness import Crash, SyncHarness

MAILBOX = "tech@example.test"
EXAMPLES = int(os.environ.get("SYNC_MACHINE_EXAMPLES", "100"))

days = st.integers(min_value=-9, max_value=16)
hours = st.integers(min_value=1, max_value=3)
shifts = st.sampled_from([-2, -1, 1, 3])
subjects = st.sampled_from(["Visit", "Call", "Review", "Lunch"])


class SyncMachine(RuleBasedStateMachine):
    """Random histories of edits, faults and runs against the sync invariants."""

    @initialize()
    def start(self) -> None:
        self.h = SyncHarness(MemoryBackend([MAILBOX], page_size=4), MAILBOX, OPTIONS)
        self.moves = 0
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
        self.h.backend.remove(self.box, item.exchange_id)

    @precondition(lambda self: self.h.backend.items_of(self.box))
    @rule(data=st.data())
    def exchange_bump_change_key(self, data: st.DataObject) -> None:
        item = data.draw(st.sampled_from(self.h.backend.items_of(self.box)))
        self.h.backend.bump_change_key(self.box, item.exchange_id)

    @precondition(lambda self: self.masters())
    @rule(data=st.data(), shift=st.sampled_from([-26, -1, 2, 24]))
    def exchange_move_series(self, data: st.DataObject, shift: int) -> None:
        master = data.draw(st.sampled_from(self.masters()))
        self.h.backend.move_series(self.box, master, dt.timedelta(hours=shift))

    @rule()
    def expire_states(self) -> None:
        self.h.backend.expire_states()

    # --- what re-identifies items ---------------------------------------------------------

    @rule()
    def switch_protocol(self) -> None:
        """EWS ⇄ Graph: every id changes (UIDs and tags stay); the configuration change asks
        for a full re-read (its old states mean nothing to the other protocol)."""
        self.h.backend.reidentify(self.box)
        self.h.states.clear()

    @rule(
        migrated=st.sampled_from(["nothing", "untagged", "everything"]),
        old_gone=st.booleans(),
        crash_at=st.one_of(st.none(), st.integers(min_value=0, max_value=3)),
    )
    def move_mailbox(self, migrated: str, old_gone: bool, crash_at: int | None) -> None:
        """An administrator gives the resource another mailbox, which may hold copies of the
        old one's items (a migration); the old one may be gone; the run may crash halfway."""
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
        self.sync()
        self.check_converged()
        repeat = self.sync()
        assert repeat.ops == (), repeat.ops

    def sync(self, crash_at: int | None = None):  # type: ignore[no-untyped-def]
        try:
            return self.h.run(self.now, crash_at=crash_at)
        except SyncStateExpired:
            self.h.states.clear()  # the engine's reaction: a full, adopting re-read
            return self.h.run(self.now, crash_at=crash_at)

    # --- invariants ---------------------------------------------------------------------------

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
        window = window_for(OPTIONS, self.now)
        by_id = {i.exchange_id: i for i in self.exchange_items()}
        for key, link in self.h.links.items():
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
        assert contacts == {i.key for i in self.contacts()}, "contacts out of step"
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
        """Every single item and every occurrence in the calendar (no masters)."""
        session = self.h.backend.open_session(self.box)
        far = window_for(
            dataclasses.replace(OPTIONS, past_days=3650, recurring_days=3650), self.now
        )
        items = session.read_window(FolderKind.CALENDAR, far)
        return [i for i in items if i.calendar_item_type is not CalendarItemType.RECURRING_MASTER]


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
