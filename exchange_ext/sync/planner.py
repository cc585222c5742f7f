"""The planner: baseline + both sides' current state → the ops of one run for one mailbox.

Decision table (per PSA key, then per Exchange item nobody claimed):

| link             | PSA             | Exchange             | ops                                  |
|------------------|-----------------|----------------------|--------------------------------------|
| none             | in window       | our tagged twin      | LinkItems (+ UpdateInExchange)       |
| none             | in window       | none                 | CreateInExchange (tagged)            |
| none             | imported        | same content         | LinkItems (a lost link re-found)     |
| linked, imported | present         | new id, same UID     | Relink / merge (re-identified)       |
| linked, imported | present         | series moved         | merge with the occurrence of its rank|
| linked           | out of window   | any                  | Forget                               |
| linked           | present         | present / unchanged  | three-way merge per field group      |
| linked           | present         | gone                 | DeletePsa / MarkExchangeDeleted      |
| linked           | gone            | present / unchanged  | DeleteInExchange / Unlink            |
| linked           | gone            | gone                 | Forget                               |
| exchange_deleted | changed         | —                    | CreateInExchange (re-export)         |
| exchange_deleted | gone / aged out | —                    | Forget                               |
| unlinked         | —               | gone                 | Forget (else nothing, ever)          |
| none             | —               | ours, PSA item gone  | DeleteInExchange (crash orphan)      |
| none             | —               | foreign, importable  | CreateInPsa                          |

Then the mass-delete guard withholds destructive ops if one side seems to have emptied.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from exchange_ext.sync.digest import digest_record
from exchange_ext.sync.mapping import (
    exchange_details,
    import_record,
    is_importable,
    storable_times,
)
from exchange_ext.sync.ops import (
    DESTRUCTIVE,
    CreateInExchange,
    CreateInPsa,
    DeleteInExchange,
    DeletePsa,
    Forget,
    LinkItems,
    MarkExchangeDeleted,
    Op,
    Plan,
    RecordConflict,
    Relink,
    Unlink,
    UpdateInExchange,
    UpdatePsa,
)
from exchange_ext.sync.policy import OnExchangeDelete, OnPsaDelete, Rule, rule_for
from exchange_ext.sync.records import (
    CalendarItemType,
    CalendarRecord,
    Digest,
    ExchangeItem,
    ExchangeView,
    FieldGroup,
    ImportMode,
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
    original_start_of,
)
from exchange_ext.sync.windows import SyncWindow, is_in_window, window_for

EMPTY = Digest("", "")  # a baseline that matches nothing: every group counts as changed


def plan(
    baseline: Mapping[PsaKey, Link],
    psa: Mapping[PsaKey, PsaItem],
    exchange: ExchangeView,
    options: SyncOptions,
    now: dt.datetime,
) -> Plan:
    """Decide the ops of one run for one mailbox. Pure; never raises for consistent input.

    ``baseline``: every link of this mailbox (all states). ``psa``: every PSA item currently
    in this mailbox's scope (its kind enabled, assigned to the resource, contact in scope and
    active) — at least those in the window and those linked, whatever their dates; an absent
    key means deleted or out of scope. ``exchange``: see :class:`ExchangeView`. ``now``: aware.

    Call it once per folder (calendar kinds together; contacts; the public contacts folder),
    with the links and PSA items of that folder's kinds: "full read" is a property of a
    folder's read, and absence from a full read means deletion.
    """
    planner = _Planner(baseline, psa, exchange, options, now, window_for(options, now))
    for key in sorted(set(baseline) | set(psa)):
        planner.plan_key(key)
    for item in planner.latest_items():
        planner.plan_unclaimed(item)
    return guard_mass_delete(planner.ops, baseline, options)


def guard_mass_delete(
    ops: Iterable[Op], baseline: Mapping[PsaKey, Link], options: SyncOptions
) -> Plan:
    """Withhold destructive ops if they would lose too many linked items on one side.

    Losses on the Exchange side are deletes there; losses seen on the PSA side are PSA
    deletes and Exchange copies found gone. Trips when one side's count exceeds both
    ``guard_min_items`` and ``guard_ratio`` × linked items.
    """
    ops = tuple(ops)
    linked = sum(1 for link in baseline.values() if link.state is LinkState.LINKED)
    if options.guard_overridden or not guard_trips(ops, linked, options):
        return Plan(ops)
    kept = tuple(op for op in ops if not isinstance(op, DESTRUCTIVE))
    withheld = tuple(op for op in ops if isinstance(op, DESTRUCTIVE))
    return Plan(kept, guard_tripped=True, withheld=withheld)


def losses(ops: Iterable[Op]) -> tuple[int, int]:
    """(Exchange-side, PSA-side) losses among ``ops``: deletes and unlinks in Exchange; PSA
    deletes and Exchange copies found gone."""
    ops = tuple(ops)
    exchange_losses = sum(isinstance(op, DeleteInExchange | Unlink) for op in ops)
    psa_losses = sum(isinstance(op, DeletePsa | MarkExchangeDeleted) for op in ops)
    return exchange_losses, psa_losses


def guard_trips(ops: Iterable[Op], linked: int, options: SyncOptions) -> bool:
    """Whether ``ops`` would lose too many of ``linked`` synced items on one side: more than
    both ``guard_min_items`` and ``guard_ratio`` × ``linked``."""
    limit = max(options.guard_min_items, options.guard_ratio * linked)
    return max(losses(ops)) > limit


# What became of a link's Exchange item: the item as read now, "gone", or UNCHANGED (None:
# not in this incremental view, so as the baseline says).
Gone = Literal["gone"]
GONE: Gone = "gone"
UNCHANGED = None
Current = ExchangeItem | Gone | None


@dataclass
class _Planner:
    baseline: Mapping[PsaKey, Link]
    psa: Mapping[PsaKey, PsaItem]
    exchange: ExchangeView
    options: SyncOptions
    now: dt.datetime
    window: SyncWindow
    ops: list[Op] = field(default_factory=list)
    claimed: set[str] = field(default_factory=set)
    by_id: dict[str, ExchangeItem] = field(default_factory=dict)
    ours: dict[PsaKey, list[ExchangeItem]] = field(default_factory=dict)
    imports_by_digest: dict[Digest, list[ExchangeItem]] | None = None
    by_identity: dict[str, list[ExchangeItem]] = field(default_factory=dict)
    # Moved series: link key → the occurrence of the same rank it is paired with; and the
    # links of moved series left without a partner (kept in the PSA, unlinked).
    series_partner: dict[PsaKey, ExchangeItem] = field(default_factory=dict)
    series_surplus: set[PsaKey] = field(default_factory=set)

    def __post_init__(self) -> None:
        # Later entries win: a change feed may replay an item; the last version is current.
        for item in (*self.exchange.tagged, *self.exchange.items):
            self.by_id[item.exchange_id] = item
        for item in self.by_id.values():
            tag = item.psa_tag
            if tag is not None and tag.installation_id == self.options.installation_id:
                self.ours.setdefault(tag.key, []).append(item)
        self.claimed = {link.exchange_id for link in self.baseline.values()}
        for item in self.latest_items():
            if _is_untagged_single(item) and item.identity is not None:
                self.by_identity.setdefault(item.identity, []).append(item)
        self.pair_moved_series()

    def latest_items(self) -> list[ExchangeItem]:
        """The view's items, each once, in its latest version (feeds may replay items)."""
        ids = dict.fromkeys(item.exchange_id for item in self.exchange.items)
        return [self.by_id[exchange_id] for exchange_id in ids]

    # --- per PSA key ------------------------------------------------------------------------

    def plan_key(self, key: PsaKey) -> None:
        link, item = self.baseline.get(key), self.psa.get(key)
        if not self.is_enabled(key, link, item):
            return  # disabled kinds stop syncing; what is already in Exchange stays
        if link is None:
            self.plan_unlinked(key, item)
        elif link.state is LinkState.UNLINKED:
            self.plan_detached(link)
        elif link.state is LinkState.EXCHANGE_DELETED:
            self.plan_exchange_deleted(link, item)
        else:
            self.plan_linked(link, item)

    def is_enabled(self, key: PsaKey, link: Link | None, item: PsaItem | None) -> bool:
        origin = link.origin if link else item.origin if item else Side.PSA
        if origin is Side.EXCHANGE:
            return self.options.import_mode is not ImportMode.NONE
        return key.kind in self.options.export_kinds

    def plan_unlinked(self, key: PsaKey, item: PsaItem | None) -> None:
        if item is None or not is_in_window(item.record, self.window):
            return
        if item.origin is Side.EXCHANGE:
            self.refind_import(item)
            return
        twin = self.pick_twin(key, None)
        if twin is None:
            self.emit_create(item, "new in the PSA")
        else:
            self.adopt(item, twin)

    def plan_detached(self, stored: Link) -> None:
        # Kept so the item is never re-imported; dropped once the Exchange item is gone too.
        link, current = self.current_exchange(stored)
        if current is not UNCHANGED and (current == GONE or not self.in_window(current)):
            self.ops.append(Forget(link.key, "unlinked item gone from Exchange or aged out"))
        elif isinstance(current, ExchangeItem) and link.exchange_id != stored.exchange_id:
            # Found again under a new id (another protocol, a moved mailbox or series).
            moved = _with_identity(replace(link, change_key=current.change_key), current)
            self.ops.append(Relink(moved, "unlinked item re-identified: still never imported"))

    def plan_exchange_deleted(self, link: Link, item: PsaItem | None) -> None:
        if item is None or not is_in_window(item.record, self.window):
            self.ops.append(Forget(link.key, "deleted in both, or aged out"))
        elif digest_record(item.record) != link.psa_digest:
            twin = self.pick_twin(link.key, None)
            if twin is None:
                self.emit_create(item, "changed in the PSA after its Exchange copy was deleted")
            else:
                self.adopt(item, twin)

    def plan_linked(self, stored: Link, item: PsaItem | None) -> None:
        link, current = self.current_exchange(stored)
        if self.left_window(stored, item, current):
            self.ops.append(Forget(link.key, "left the sync window"))
        elif current == GONE and stored.key in self.series_surplus:
            reason = "its series moved and has no occurrence left for it: kept in the PSA"
            self.ops.append(Forget(link.key, reason))
        elif item is None:
            self.plan_psa_gone(link, current, repointed=link != stored)
        elif current == GONE:
            self.plan_exchange_gone(link, item)
        else:
            merge = _Merge.of(link, item, current, self.options)
            self.plan_merge(merge, relinked=link != stored)

    def plan_merge(self, merge: _Merge, *, relinked: bool) -> None:
        ops = merge.ops(relinked=relinked)
        if self.merge_stays_in_window(merge):
            self.ops.extend(ops)
        else:
            # This run's changes take the item out of the window: write them, then forget it,
            # so the next run has nothing left to do.
            self.ops.extend(op for op in ops if not isinstance(op, Relink))
            self.ops.append(Forget(merge.link.key, "moved out of the sync window"))

    def merge_stays_in_window(self, merge: _Merge) -> bool:
        """Whether either side is in the window once the merge is applied. An Exchange side
        not read this run and not written by the merge is where the last sync left it, which
        may be inside: the link is kept until that side is seen (docs/sync-rules.md, "Sync
        window")."""
        if is_in_window(merge.psa_after(), self.window):
            return True
        exchange_record = merge.exchange_after()
        if exchange_record is None:
            return True
        is_occurrence = master_of(merge.link.exchange_id) is not None
        return is_in_window(exchange_record, self.window, is_occurrence=is_occurrence)

    # --- deletes ----------------------------------------------------------------------------

    def plan_psa_gone(self, link: Link, current: Current, *, repointed: bool = False) -> None:
        if current == GONE:
            self.ops.append(Forget(link.key, "deleted on both sides"))
            return
        if repointed:
            # Found under a new id: the link follows first, so the delete below drops it (a
            # delete of another id is a duplicate's, which leaves the link in place).
            self.ops.append(Relink(link, "found under a new id (another protocol or folder)"))
        elif isinstance(current, ExchangeItem) and current.change_key != link.change_key:
            # Seen at a new version (an edit, or a dismissed reminder): the link keeps it now.
            # The delete waits for the end of its pass and is planned again by later pages,
            # which may not list the item: from the link's old version it would meet a
            # conflict at every run, the feed never listing the item again.
            link = replace(link, change_key=current.change_key)
            self.ops.append(Relink(link, "seen at a new version; its deletion waits"))
        change_key = current.change_key if isinstance(current, ExchangeItem) else link.change_key
        rule = rule_of_link(link)
        may_delete = rule.on_psa_delete is OnPsaDelete.DELETE_IN_EXCHANGE or (
            link.is_organizer and link.exchange_start is not None and link.exchange_start > self.now
        )
        if may_delete:
            reason = "deleted in the PSA or left this mailbox's scope"
            self.ops.append(DeleteInExchange(link.key, link.exchange_id, change_key, reason))
        else:
            reason = "deleted in the PSA; not the organizer, or already past: unlinked only"
            self.ops.append(Unlink(replace(link, state=LinkState.UNLINKED), reason))

    def plan_exchange_gone(self, link: Link, item: PsaItem) -> None:
        rule = rule_of_link(link)
        if rule.on_exchange_delete is OnExchangeDelete.DELETE_IN_PSA:
            self.ops.append(DeletePsa(link.key, link.exchange_id, "deleted in Exchange"))
        elif digest_record(item.record) != link.psa_digest:
            self.emit_create(item, "changed in the PSA after its Exchange copy was deleted")
        else:
            deleted = replace(link, state=LinkState.EXCHANGE_DELETED)
            reason = "deleted in Exchange: not reflected, re-exported on the next PSA change"
            self.ops.append(MarkExchangeDeleted(deleted, reason))

    # --- Exchange items nobody claimed ------------------------------------------------------

    def plan_unclaimed(self, item: ExchangeItem) -> None:
        if item.exchange_id in self.claimed or item.exchange_id in self.exchange.deleted:
            return
        if item.calendar_item_type is CalendarItemType.RECURRING_MASTER:
            return  # its occurrences come one by one from the expanded window read
        self.claimed.add(item.exchange_id)
        tag = item.psa_tag
        if tag is not None and tag.installation_id == self.options.installation_id:
            self.plan_orphan(item, tag.key)
        elif is_importable(item, self.options) and self.in_window(item):
            self.emit_import(item)

    def plan_orphan(self, item: ExchangeItem, key: PsaKey) -> None:
        # Ours, but its PSA item is gone and no link knows it: a crash between create and
        # link, then a PSA delete. The PSA is the master of what we tagged. (A PSA item that
        # still exists but was not adopted — out of the window, kind disabled — keeps it.)
        exported = key.kind in self.options.export_kinds and key not in self.psa
        if exported and self.in_window(item):
            reason = "our tagged item whose PSA item no longer exists"
            self.ops.append(DeleteInExchange(key, item.exchange_id, item.change_key, reason))

    # --- building blocks --------------------------------------------------------------------

    def current_exchange(self, link: Link) -> tuple[Link, Current]:
        """The link (repointed if its item moved) and what became of its Exchange item."""
        item = self.by_id.get(link.exchange_id) if link.exchange_id else None
        if item is not None and link.exchange_id not in self.exchange.deleted:
            self.claim_twins(link.key, item)
            return link, item
        twin = self.pick_twin(link.key, link.exchange_id)
        if twin is not None:
            # Moved to another folder (new id), or re-read after an expired state.
            return replace(link, exchange_id=twin.exchange_id), twin
        if not self.is_gone(link.exchange_id):
            return link, UNCHANGED
        found = self.rematch(link)
        if found is not None:
            # The same item under another id: another protocol's id space, a moved mailbox,
            # or an occurrence of a series the organizer moved.
            return replace(link, exchange_id=found.exchange_id), found
        return link, GONE

    def rematch(self, link: Link) -> ExchangeItem | None:
        """An untagged item taking the place of an imported link's vanished item: the same
        identity (UID + original start), else, for a link stored before UIDs were, the same
        imported content; else the occurrence of the same rank of its moved series."""
        if link.origin is not Side.EXCHANGE:
            return None  # ours carry their tag, which pick_twin follows
        identity = link.identity
        if identity is not None:
            candidates = self.by_identity.get(identity, [])
        else:
            candidates = self.import_index().get(link.psa_digest, [])
        for candidate in sorted(candidates, key=lambda c: c.exchange_id):
            if candidate.exchange_id not in self.claimed:
                self.claimed.add(candidate.exchange_id)
                return candidate
        return self.series_partner.get(link.key)

    def pair_moved_series(self) -> None:
        """Pair the occurrence links of each series the organizer moved with its new
        occurrences, in order of original start (docs/sync-rules.md, "Recurring series").

        A series moved when its occurrences are in this view (expanded) and none of its
        linked occurrences in the window kept its original start: Exchange then reports every
        occurrence under a new original start, hence a new id. Each link keeps its PSA
        appointment and takes the times of the occurrence of its rank; links without a partner
        are forgotten (their occurrence may have moved out of the window), occurrences
        without one are imported. A series with a survivor had occurrences deleted, not moved.
        """
        occurrences: dict[str, list[ExchangeItem]] = {}
        for item in self.latest_items():
            if _is_untagged_single(item) and item.master_id is not None and self.in_window(item):
                for series in _series_names(item.ical_uid, item.master_id):
                    occurrences.setdefault(series, []).append(item)
        identities = {link.identity for link in self.baseline.values()} - {None}
        for series, links in self.occurrence_links().items():
            if any(not self.is_gone(link.exchange_id) or self.found_as_is(link) for link in links):
                continue  # not expanded in this view, or a survivor: no move
            free = sorted(
                (
                    item
                    for item in occurrences.get(series, [])
                    if item.exchange_id not in self.claimed and item.identity not in identities
                ),
                key=_occurrence_order,
            )
            if not free:
                continue  # the series is gone (or left the window): nothing moved
            links.sort(key=_original_start_of_link)
            for link, item in zip(links, free, strict=False):
                self.series_partner[link.key] = item
                self.claimed.add(item.exchange_id)
            self.series_surplus |= {link.key for link in links[len(free) :]}

    def occurrence_links(self) -> dict[str, list[Link]]:
        """Imported occurrence links in the window (PSA side; unlinked ones by their Exchange
        start) by series: its UID, or its master id for links stored before UIDs were."""
        by_series: dict[str, list[Link]] = {}
        for link in self.baseline.values():
            if link.origin is not Side.EXCHANGE or link.state is LinkState.EXCHANGE_DELETED:
                continue
            master_id = master_of(link.exchange_id)
            if master_id is None or not self.occurrence_in_window(link):
                continue
            by_series.setdefault(_series_names(link.ical_uid, master_id)[0], []).append(link)
        return by_series

    def occurrence_in_window(self, link: Link) -> bool:
        if link.state is LinkState.UNLINKED:
            start = link.exchange_start
            return start is None or self.window.start <= start < self.window.recurring_end
        item = self.psa.get(link.key)
        return item is not None and is_in_window(item.record, self.window, is_occurrence=True)

    def found_as_is(self, link: Link) -> bool:
        """Whether the link's item is in this view under its id or its identity."""
        seen = link.exchange_id in self.by_id or link.exchange_id in self.exchange.unchanged
        present = seen and link.exchange_id not in self.exchange.deleted
        return present or (link.identity is not None and link.identity in self.by_identity)

    def is_gone(self, exchange_id: str) -> bool:
        if exchange_id in self.exchange.unchanged and exchange_id not in self.exchange.deleted:
            return False
        if exchange_id in self.exchange.deleted or self.exchange.full_read:
            return True
        master_id = master_of(exchange_id)
        return master_id is not None and (
            master_id in self.exchange.expanded_series or master_id in self.exchange.deleted
        )

    def pick_twin(self, key: PsaKey, linked_id: str | None) -> ExchangeItem | None:
        """Our tagged item for ``key`` other than ``linked_id``; extra copies are deleted."""
        candidates = [
            twin
            for twin in self.ours.get(key, [])
            if twin.exchange_id != linked_id and twin.exchange_id not in self.exchange.deleted
        ]
        if not candidates:
            return None
        twin = min(candidates, key=lambda twin: twin.exchange_id)
        self.claim_twins(key, twin)
        return twin

    def claim_twins(self, key: PsaKey, keep: ExchangeItem) -> None:
        self.claimed.add(keep.exchange_id)
        for twin in self.ours.get(key, []):
            if twin.exchange_id not in self.claimed:
                self.claimed.add(twin.exchange_id)
                reason = "duplicate of an item already linked (tag seen twice)"
                self.ops.append(DeleteInExchange(key, twin.exchange_id, twin.change_key, reason))

    def left_window(self, link: Link, item: PsaItem | None, current: Current) -> bool:
        """Whether both sides are out of the window (an Exchange item moved back into it, or a
        PSA item moved out while Exchange moved it in, is still synced).

        An Exchange side not read this run is where the last sync left it: beside a PSA side
        whose times did not change since, both aged out together; a PSA side *moved* out is
        left to the merge, which writes the move to Exchange and only then forgets the item.
        """
        psa_in = item is not None and is_in_window(item.record, self.window)
        exchange_in = isinstance(current, ExchangeItem) and self.in_window(current)
        seen = item is not None or isinstance(current, ExchangeItem)
        if item is not None and current is UNCHANGED and self.times_changed(link, item):
            return False
        return seen and not psa_in and not exchange_in

    @staticmethod
    def times_changed(link: Link, item: PsaItem) -> bool:
        times = digest_record(item.record).part(FieldGroup.TIMES)
        return times != link.psa_digest.part(FieldGroup.TIMES)

    def in_window(self, item: Current) -> bool:
        if not isinstance(item, ExchangeItem):
            return True
        is_occurrence = item.master_id is not None
        return is_in_window(item.record, self.window, is_occurrence=is_occurrence)

    def emit_create(self, item: PsaItem, reason: str) -> None:
        digest = digest_record(item.record)  # both sides hold this record once it is written
        link = Link(
            key=item.key,
            exchange_id="",
            change_key="",
            psa_digest=digest,
            exchange_digest=digest,
            origin=item.origin,
            exchange_start=_start_of(item.record),
        )
        tag = self.options.tag_for(item.key)
        self.ops.append(CreateInExchange(item.key, item.record, tag, link, reason))

    def adopt(self, item: PsaItem, twin: ExchangeItem) -> None:
        # The twin was written by us (a crash before the link was saved, or a lost link):
        # link it and let the merge bring it up to date, PSA being the master of its items.
        link = Link(item.key, twin.exchange_id, twin.change_key, EMPTY, EMPTY, item.origin)
        merge = _Merge.of(link, item, twin, self.options)
        self.ops.append(LinkItems(merge.link_before_write(), "tagged item found without a link"))
        self.ops.extend(op for op in merge.ops() if isinstance(op, UpdateInExchange))

    def refind_import(self, item: PsaItem) -> None:
        # An imported appointment whose link was lost (restored database): imports carry no
        # tag, so find the untagged Exchange item whose import gives exactly this record.
        wanted = digest_record(item.record)
        for candidate in self.import_index().get(wanted, []):
            if candidate.exchange_id not in self.claimed:
                self.claimed.add(candidate.exchange_id)
                link = _import_link(item.key, candidate, wanted)
                self.ops.append(LinkItems(link, "imported item re-found by content"))
                return

    def import_index(self) -> dict[Digest, list[ExchangeItem]]:
        """Importable untagged items by the digest of their import (built once, on demand)."""
        if self.imports_by_digest is None:
            self.imports_by_digest = {}
            for candidate in self.latest_items():
                if _is_untagged_single(candidate) and is_importable(candidate, self.options):
                    record = import_record(candidate, self.options)
                    self.imports_by_digest.setdefault(digest_record(record), []).append(candidate)
        return self.imports_by_digest

    def emit_import(self, item: ExchangeItem) -> None:
        record = import_record(item, self.options)
        link = _import_link(PsaKey(ItemKind.APPOINTMENT, 0), item, digest_record(record))
        read_only = not item.is_organizer
        reason = "new in Exchange"
        self.ops.append(CreateInPsa(ItemKind.APPOINTMENT, record, read_only, link, reason))


def _is_untagged_single(item: ExchangeItem) -> bool:
    """An item nobody tagged that stands for itself (a series master never does)."""
    return item.psa_tag is None and item.calendar_item_type is not CalendarItemType.RECURRING_MASTER


def _import_link(key: PsaKey, item: ExchangeItem, psa_digest: Digest) -> Link:
    link = Link(
        key=key,
        exchange_id=item.exchange_id,
        change_key=item.change_key,
        psa_digest=psa_digest,
        exchange_digest=digest_record(item.record),
        origin=Side.EXCHANGE,
        exchange_start=_start_of(item.record),
        is_organizer=item.is_organizer,
    )
    return _with_identity(link, item)


def _with_identity(link: Link, item: ExchangeItem) -> Link:
    """An imported item's ``link`` storing ``item``'s identity. Links of PSA items need none
    (their tag finds them), and one without a UID keeps what it had."""
    if link.origin is not Side.EXCHANGE or not item.ical_uid:
        return link
    return replace(link, ical_uid=item.ical_uid, original_start=item.original_start)


def _series_names(ical_uid: str, master_id: str) -> tuple[str, ...]:
    """How an occurrence's series is named: by its UID, and by its master id (links stored
    before UIDs were know only that; an item is filed under both)."""
    return (f"uid:{ical_uid}", f"master:{master_id}") if ical_uid else (f"master:{master_id}",)


_EARLIEST = dt.datetime.min.replace(tzinfo=dt.UTC)


def _original_start_of_link(link: Link) -> dt.datetime:
    start = link.original_start or original_start_of(link.exchange_id) or link.exchange_start
    return start or _EARLIEST


def _occurrence_order(item: ExchangeItem) -> tuple[dt.datetime, str]:
    start = item.original_start or original_start_of(item.exchange_id) or _start_of(item.record)
    return start or _EARLIEST, item.exchange_id


def _start_of(record: Record) -> dt.datetime | None:
    return record.start if isinstance(record, CalendarRecord) else None


def rule_of_link(link: Link) -> Rule:
    return rule_for(link.key.kind, link.origin, is_organizer=link.is_organizer)


@dataclass(frozen=True)
class _Merge:
    """The three-way merge of one linked item whose both sides exist.

    Per field group: changed = digest moved from the baseline; a group flows only the ways the
    rule allows; both sides changed to the same value → nothing to write; to different values
    → the rule's winner (the origin) and a RecordConflict.
    """

    link: Link
    item: PsaItem
    current: ExchangeItem | None  # None: unchanged since the baseline, not in this view
    rule: Rule
    psa_now: Digest
    exchange_now: Digest
    exchange_as_psa: Record | None
    exchange_as_psa_digest: Digest

    @classmethod
    def of(
        cls, link: Link, item: PsaItem, current: ExchangeItem | None, options: SyncOptions
    ) -> _Merge:
        record = current.record if current is not None else None
        # The PSA holds the real details only for items imported with them (not private).
        details_out = options.import_mode is ImportMode.ALL and not (
            isinstance(item.record, CalendarRecord) and item.record.is_private
        )
        is_organizer = current.is_organizer if current is not None else link.is_organizer
        rule = rule_for(
            link.key.kind, link.origin, is_organizer=is_organizer, details_flow_out=details_out
        )
        as_psa = _as_psa(current, link, options)
        if as_psa is not None:
            as_psa_digest = digest_record(as_psa)
        elif link.origin is Side.EXCHANGE:
            as_psa_digest = link.psa_digest  # unchanged: what we imported last time
        else:
            as_psa_digest = link.exchange_digest
        exchange_now = digest_record(record) if record is not None else link.exchange_digest
        return cls(
            link, item, current, rule, digest_record(item.record), exchange_now, as_psa,
            as_psa_digest,
        )  # fmt: skip

    def equal(self, group: FieldGroup) -> bool:
        return self.psa_now.part(group) == self.exchange_as_psa_digest.part(group)

    @property
    def psa_changed(self) -> frozenset[FieldGroup]:
        return self.psa_now.changed_groups(self.link.psa_digest)

    @property
    def exchange_changed(self) -> frozenset[FieldGroup]:
        return self.exchange_now.changed_groups(self.link.exchange_digest)

    @property
    def contested(self) -> frozenset[FieldGroup]:
        both = self.psa_changed & self.exchange_changed
        allowed = self.rule.psa_to_exchange & self.rule.exchange_to_psa
        return frozenset(g for g in both & allowed if not self.equal(g))

    @property
    def inbound(self) -> frozenset[FieldGroup]:
        groups = self.exchange_changed & self.rule.exchange_to_psa
        if self.rule.winner is Side.PSA:
            groups -= self.contested
        return frozenset(g for g in groups if not self.equal(g))

    @property
    def outbound(self) -> frozenset[FieldGroup]:
        groups = self.psa_changed & self.rule.psa_to_exchange
        if self.rule.winner is Side.EXCHANGE:
            groups -= self.contested
        if groups and self.rule.psa_overwrites:
            # The PSA is the master: any change of it rewrites everything that does not
            # flow back this run, overwriting Exchange edits that were ignored until now.
            groups = self.rule.psa_to_exchange - self.inbound
        return frozenset(g for g in groups if not self.equal(g))

    @property
    def agreed(self) -> frozenset[FieldGroup]:
        changed = self.psa_changed | self.exchange_changed
        return frozenset(g for g in changed if self.equal(g))

    def psa_after(self) -> Record:
        if not self.inbound:
            return self.item.record
        assert self.exchange_as_psa is not None  # inbound implies the item was read
        return merge_groups(self.item.record, self.exchange_as_psa, self.inbound)

    def exchange_write(self) -> Record:
        record = self.psa_after()
        if self.link.origin is Side.EXCHANGE and isinstance(record, CalendarRecord):
            return exchange_details(record)
        return record

    def exchange_after(self) -> Record | None:
        """The Exchange content once the merge is applied (times-wise), ``None`` if unknown."""
        if FieldGroup.TIMES in self.outbound:
            return self.exchange_write()
        return self.current.record if self.current is not None else None

    def change_key(self) -> str:
        return self.current.change_key if self.current is not None else self.link.change_key

    def link_after_psa(self) -> Link:
        """The baseline once the PSA was updated (and Exchange not yet)."""
        synced = self.inbound | self.agreed
        return replace(
            self.base_link(),
            psa_digest=self.link.psa_digest.with_parts(digest_record(self.psa_after()), synced),
            exchange_digest=self.exchange_now,
        )

    def link_before_write(self) -> Link:
        """The baseline of an adopted item before its outbound write: the groups still to
        write look changed in the PSA, so a failed write is retried on the next run."""
        return replace(
            self.base_link(),
            psa_digest=self.psa_now.with_parts(EMPTY, self.outbound),
            exchange_digest=self.exchange_now,
        )

    def final_link(self) -> Link:
        """The baseline once every write of this merge succeeded.

        The Exchange digest always becomes what Exchange holds now (edits that do not flow
        back are acknowledged, so a later PSA change compares against the real content);
        the PSA digest advances only for groups that were synced.
        """
        synced = self.inbound | self.outbound | self.agreed
        written = self.exchange_write()
        base = self.base_link()
        if FieldGroup.TIMES in self.outbound:
            base = replace(base, exchange_start=_start_of(written))
        return replace(
            base,
            psa_digest=self.link.psa_digest.with_parts(digest_record(self.psa_after()), synced),
            exchange_digest=self.exchange_now.with_parts(digest_record(written), self.outbound),
        )

    def base_link(self) -> Link:
        if self.current is None:
            return self.link
        link = replace(
            self.link,
            change_key=self.current.change_key,
            exchange_start=_start_of(self.current.record),
            is_organizer=self.current.is_organizer,
        )
        return _with_identity(link, self.current)

    def ops(self, *, relinked: bool = False) -> list[Op]:
        """The ops of this merge; ``relinked``: the link was repointed to a moved item."""
        ops: list[Op] = []
        key = self.link.key
        if self.contested:
            winner = "PSA" if self.rule.winner is Side.PSA else "Exchange"
            reason = f"both sides changed {_names(self.contested)}; the {winner} side wins"
            ops.append(
                RecordConflict(
                    key, self.contested, self.rule.winner, reason, psa=self.item.record,
                    exchange=self.exchange_as_psa,
                )
            )  # fmt: skip
        if self.inbound:
            reason = f"{_names(self.inbound)} changed in Exchange"
            link = self.final_link() if not self.outbound else self.link_after_psa()
            ops.append(UpdatePsa(key, self.psa_after(), self.inbound, link, reason))
        if self.outbound:
            reason = f"{_names(self.outbound)} changed in the PSA"
            ops.append(
                UpdateInExchange(
                    key, self.link.exchange_id, self.change_key(), self.exchange_write(),
                    self.outbound, self.final_link(), reason,
                )
            )  # fmt: skip
        if not ops and (relinked or self.final_link() != self.link):
            ops.append(Relink(self.final_link(), "baseline refreshed (no content to write)"))
        return ops


def _as_psa(current: ExchangeItem | None, link: Link, options: SyncOptions) -> Record | None:
    """The Exchange item's content in PSA terms (imports are mapped per the import mode), as
    the PSA can store it (docs/sync-rules.md, "Items the PSA cannot store as they are")."""
    if current is None:
        return None
    if not isinstance(current.record, CalendarRecord):
        return current.record
    if link.origin is Side.EXCHANGE:
        return import_record(current, options)
    return storable_times(current.record, link.key.kind)


def _names(groups: frozenset[FieldGroup]) -> str:
    return " and ".join(sorted(group.value for group in groups))
