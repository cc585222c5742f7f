"""An Exchange server in memory, for unit and contract tests.

It keeps the contracts of :mod:`exchange_ext.backends.base` and adds what tests need around
them: a backdoor to edit mailboxes as a user in Outlook would (:meth:`MemoryBackend.put`,
``edit``, ``remove``, ``bump_change_key``, recurring series and ``move_series``), to change
what the server is (``reidentify``: another protocol's ids; ``copy_items``: a mailbox
migrated; ``remove_mailbox``), fault hooks
(:meth:`MemoryBackend.fail_next`, :meth:`MemoryBackend.expire_states`, ``reject_if``,
:meth:`MemoryBackend.set_unreadable`: an item every read of fails, as a corrupt one does) and
counters (writes per call, meeting messages — always zero, by construction; ``content_reads``:
the items whose content a change-feed read fetched, as GetItem or a Graph GET would).

Sync states are opaque strings naming a position in a per-mailbox change log; expiring states
bumps an epoch that every older state carries. Every calendar item has an iCalendar UID (its
series' for an occurrence), which ``reidentify`` and ``copy_items`` keep, as Exchange does.
"""

from __future__ import annotations

import copy
import datetime as dt
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from exchange_ext.backends.base import (
    AuthFailed,
    BackendError,
    ChangePage,
    ConflictError,
    ExchangeBackend,
    FolderKind,
    ImpersonationDenied,
    ItemChange,
    ItemDeletion,
    ItemNotFound,
    ItemRejected,
    ItemUnreadable,
    KnownVersions,
    MailboxNotFound,
    MailboxSession,
    NewItem,
    ProbeResult,
    SyncStateExpired,
    WriteResult,
)
from exchange_ext.sync.records import (
    CalendarItemType,
    CalendarRecord,
    ExchangeItem,
    PsaTag,
    Record,
    master_of,
    merge_groups,
    occurrence_id,
    parse_tag,
)
from exchange_ext.sync.windows import SyncWindow, is_in_window


@dataclass
class StoredItem:
    """One item as the memory server holds it (masters hold their occurrences)."""

    exchange_id: str
    change_key: str
    folder: FolderKind
    record: Record
    tag: str | None = None
    is_organizer: bool = True
    attendees: tuple[str, ...] = ()
    is_master: bool = False
    # Series only: original start → the occurrence's record, or None once deleted.
    occurrences: dict[dt.datetime, Record | None] = field(default_factory=dict)
    modified: set[dt.datetime] = field(default_factory=set)
    # An occurrence has its own change key (as a CalendarView read reports it), so editing
    # one occurrence does not make the others' keys stale.
    occurrence_keys: dict[dt.datetime, str] = field(default_factory=dict)
    # The iCalendar UID: the same whatever id the item has (a series' occurrences share it).
    uid: str = ""

    def change_key_of(self, exchange_id: str) -> str:
        original = _original_start(self, exchange_id)
        if original is None:
            return self.change_key
        return self.occurrence_keys[original]

    def as_item(self) -> ExchangeItem:
        item_type = CalendarItemType.RECURRING_MASTER if self.is_master else None
        return self._item(self.exchange_id, self.record, item_type or CalendarItemType.SINGLE)

    def _item(
        self,
        exchange_id: str,
        record: Record,
        item_type: CalendarItemType,
        original_start: dt.datetime | None = None,
    ) -> ExchangeItem:
        return ExchangeItem(
            exchange_id=exchange_id,
            change_key=self.change_key_of(exchange_id),
            record=record,
            psa_tag=parse_tag(self.tag) if self.tag else None,
            is_organizer=self.is_organizer,
            has_attendees=bool(self.attendees),
            attendees=self.attendees,
            calendar_item_type=item_type,
            ical_uid=self.uid if self.folder is FolderKind.CALENDAR else "",
            original_start=original_start,
        )

    def expand(self) -> list[ExchangeItem]:
        """The series' remaining occurrences, each under its own occurrence id."""
        return [
            self._item(
                occurrence_id(self.exchange_id, original_start),
                record,
                CalendarItemType.EXCEPTION
                if original_start in self.modified
                else CalendarItemType.OCCURRENCE,
                original_start,
            )
            for original_start, record in sorted(self.occurrences.items())
            if record is not None
        ]


@dataclass
class MemoryMailbox:
    address: str
    items: dict[str, StoredItem] = field(default_factory=dict)
    # The change log: (sequence number, folder, exchange id); an item's latest state is read
    # from ``items`` (absent = deleted), as SyncFolderItems reports current versions.
    log: list[tuple[int, FolderKind, str]] = field(default_factory=list)


@dataclass
class _Fault:
    error: BackendError
    remaining: int
    operations: frozenset[str] | None
    skip: int = 0


class MemoryBackend(ExchangeBackend):
    """All mailboxes of one in-memory Exchange organisation.

    ``page_size``: changes per :meth:`MemorySession.read_changes` page.
    ``reject_if``: called with each record written; a returned reason rejects that item.
    """

    name = "memory"
    supports_public_folders = True

    def __init__(
        self,
        mailboxes: Sequence[str] = (),
        *,
        page_size: int = 100,
        reject_if: Callable[[Record], str | None] | None = None,
    ) -> None:
        self.mailboxes: dict[str, MemoryMailbox] = {}
        self.page_size = page_size
        self.reject_if = reject_if
        self.epoch = 1
        self.meeting_messages_sent = 0  # never incremented: nothing here sends mail
        self.calls: list[tuple[str, int]] = []  # (operation, number of items)
        # The ids whose content read_changes read, in order (GetItem / Graph GET on a server);
        # items a ``known`` callback vouched for are listed by id only and never appear here.
        self.content_reads: list[str] = []
        self._faults: list[_Fault] = []
        self._counter = itertools.count(1)
        # Items every read of fails (ItemUnreadable), while the change feed still lists them.
        self.unreadable: set[str] = set()
        for address in mailboxes:
            self.add_mailbox(address)

    # --- the interface ------------------------------------------------------------------------

    def open_session(self, mailbox: str) -> MemorySession:
        """Open a session; raises :class:`MailboxNotFound` for an unknown address."""
        self.check_fault("open_session")
        found = self.mailboxes.get(mailbox.lower())
        if found is None:
            raise MailboxNotFound(f"no mailbox {mailbox}")
        return MemorySession(self, found)

    def probe(self, mailbox: str | None) -> ProbeResult:
        """Succeed, unless a fault is armed for ``"probe"`` (:meth:`fail_next`) or ``mailbox``
        is unknown.

        A fault's error fails the probe with its plain words, on ``username``/``password``
        for :class:`AuthFailed`, on ``mailbox`` for :class:`MailboxNotFound` and
        :class:`ImpersonationDenied`, on no field otherwise.
        """
        try:
            self.check_fault("probe")
        except BackendError as error:
            message = error.plain or error.message
            fields: tuple[str, ...] = ()
            if isinstance(error, AuthFailed):
                fields = ("username", "password")
            elif isinstance(error, MailboxNotFound | ImpersonationDenied):
                fields = ("mailbox",)
            return ProbeResult.failed(message, dict.fromkeys(fields, message), error=error)
        if mailbox is None:
            return ProbeResult.passed("Connected to the memory server and signed in.")
        if mailbox.lower() not in self.mailboxes:
            message = f"The mailbox {mailbox} does not exist on the memory server."
            return ProbeResult.failed(
                message, {"mailbox": message}, error=MailboxNotFound(f"no mailbox {mailbox}")
            )
        return ProbeResult.passed(f"Connected to the memory server and opened {mailbox}.")

    # --- test controls ------------------------------------------------------------------------

    def add_mailbox(self, address: str) -> MemoryMailbox:
        return self.mailboxes.setdefault(address.lower(), MemoryMailbox(address.lower()))

    def fail_next(
        self,
        error: BackendError,
        times: int = 1,
        operations: Sequence[str] | None = None,
        *,
        after: int = 0,
    ) -> None:
        """Raise ``error`` from ``times`` calls (of ``operations``, or any call), after letting
        the next ``after`` of them succeed."""
        names = frozenset(operations) if operations is not None else None
        self._faults.append(_Fault(error, times, names, after))

    def clear_faults(self) -> None:
        """Disarm every fault not yet raised."""
        self._faults.clear()

    def set_unreadable(self, exchange_id: str, unreadable: bool = True) -> None:
        """Make every read of an item (a series: of any of its occurrences) fail with
        :class:`ItemUnreadable` from ``read_changes`` and ``read_window`` (or read again), as
        a corrupt item does; writes and deletes still work."""
        (self.unreadable.add if unreadable else self.unreadable.discard)(exchange_id)

    def check_readable(self, stored: Sequence[StoredItem]) -> None:
        for item in stored:
            if item.exchange_id in self.unreadable:
                raise ItemUnreadable(f"ErrorItemCorrupt on item …{item.exchange_id[-12:]}")

    def expire_states(self) -> None:
        """Invalidate every sync state issued so far (as a server-side cache eviction does)."""
        self.epoch += 1

    def check_fault(self, operation: str) -> None:
        for fault in self._faults:
            if fault.remaining <= 0:
                continue
            if fault.operations is not None and operation not in fault.operations:
                continue
            if fault.skip > 0:
                fault.skip -= 1
                continue
            fault.remaining -= 1
            raise fault.error

    def new_id(self) -> str:
        return f"AAMkAD{next(self._counter):06d}"

    def new_change_key(self) -> str:
        return f"CQAAAB{next(self._counter):06d}"

    def new_uid(self) -> str:
        return f"040000008200E00074C5B7101A82E008{next(self._counter):08d}"

    def writes(self) -> int:
        """How many items were created, updated or deleted through sessions so far."""
        return sum(count for name, count in self.calls if name in ("create", "update", "delete"))

    # --- backdoor: what a user does in Outlook ------------------------------------------------

    def put(
        self,
        mailbox: str,
        record: Record,
        *,
        folder: FolderKind = FolderKind.CALENDAR,
        tag: PsaTag | str | None = None,
        is_organizer: bool = True,
        attendees: tuple[str, ...] = (),
        uid: str | None = None,
    ) -> str:
        """Create an item as a user would (or as a foreign tool, with its own tag); ``uid``:
        its iCalendar UID (default: a new one, as Exchange gives every calendar item)."""
        stored = StoredItem(
            self.new_id(), self.new_change_key(), folder, record,
            str(tag) if tag is not None else None, is_organizer, attendees,
        )  # fmt: skip
        stored.uid = uid or self.new_uid()
        self._store(mailbox, stored)
        return stored.exchange_id

    def put_series(
        self, mailbox: str, record: CalendarRecord, starts: Sequence[dt.datetime]
    ) -> str:
        """Create a recurring series with one occurrence per start (same duration)."""
        duration = record.end - record.start
        occurrences: dict[dt.datetime, Record | None] = {
            start: replace(record, start=start, end=start + duration) for start in starts
        }
        stored = StoredItem(
            self.new_id(), self.new_change_key(), FolderKind.CALENDAR, record,
            is_master=True, occurrences=occurrences,
            occurrence_keys={start: self.new_change_key() for start in starts},
            uid=self.new_uid(),
        )  # fmt: skip
        self._store(mailbox, stored)
        return stored.exchange_id

    def move_series(self, mailbox: str, master_id: str, delta: dt.timedelta) -> None:
        """The organizer moves the whole series by ``delta``: every occurrence gets a new
        original start, hence a new occurrence id; exceptions and deletions are dropped, as
        Exchange drops them when a series' time changes. The UID stays."""
        box = self.mailboxes[mailbox.lower()]
        stored = box.items[master_id]
        template = stored.record = _shifted(stored.record, delta)
        assert isinstance(template, CalendarRecord)
        length = template.end - template.start
        stored.occurrences = {
            start + delta: replace(template, start=start + delta, end=start + delta + length)
            for start in stored.occurrences
        }
        stored.modified = set()
        stored.occurrence_keys = {start: self.new_change_key() for start in stored.occurrences}
        stored.change_key = self.new_change_key()
        self._log(box, stored)

    def reidentify(self, mailbox: str) -> dict[str, str]:
        """Every item of ``mailbox`` under a new id, as another protocol names it (an EWS
        ItemId is not a Graph event id): content, UIDs and tags stay. Sync states issued so
        far expire (the other protocol knows none of them). Returns old id → new id."""
        box = self.mailboxes[mailbox.lower()]
        renamed: dict[str, str] = {}
        for old_id, stored in list(box.items.items()):
            del box.items[old_id]
            stored.exchange_id = renamed[old_id] = self.new_id()
            if old_id in self.unreadable:
                self.unreadable.discard(old_id)
                self.unreadable.add(stored.exchange_id)
            box.items[stored.exchange_id] = stored
            self._log(box, stored)
        self.expire_states()
        return renamed

    def copy_items(self, source: str, target: str, *, tagged: bool = True) -> list[str]:
        """Copy every item of ``source`` into ``target`` under new ids, UIDs kept (a mailbox
        migrated); items tagged by a sync are copied only with ``tagged``. Returns new ids."""
        box = self.mailboxes[source.lower()]
        copied: list[str] = []
        for stored in list(box.items.values()):
            if stored.tag is not None and not tagged:
                continue
            twin = copy.deepcopy(stored)
            twin.exchange_id, twin.change_key = self.new_id(), self.new_change_key()
            self._store(target, twin)
            copied.append(twin.exchange_id)
        return copied

    def remove_mailbox(self, address: str) -> None:
        """The mailbox no longer exists (sessions on it raise :class:`MailboxNotFound`)."""
        self.mailboxes.pop(address.lower(), None)

    def edit(self, mailbox: str, exchange_id: str, record: Record) -> None:
        """Replace an item's (or an occurrence's) content, bumping its change key."""
        self.write_stored(self.mailboxes[mailbox.lower()], exchange_id, record)

    def remove(self, mailbox: str, exchange_id: str) -> None:
        """Delete an item, or one occurrence of a series."""
        self.remove_stored(self.mailboxes[mailbox.lower()], exchange_id)

    def bump_change_key(self, mailbox: str, exchange_id: str) -> None:
        """A new change key without a content change (Exchange Online's background processing)."""
        box = self.mailboxes[mailbox.lower()]
        stored = box.items[exchange_id]
        stored.change_key = self.new_change_key()
        self._log(box, stored)

    def items_of(self, mailbox: str, folder: FolderKind | None = None) -> list[ExchangeItem]:
        """Every item of a mailbox (series as masters), for assertions."""
        box = self.mailboxes[mailbox.lower()]
        return [s.as_item() for s in box.items.values() if folder in (None, s.folder)]

    # --- internals shared with sessions -------------------------------------------------------

    def _store(self, mailbox: str, stored: StoredItem) -> None:
        box = self.add_mailbox(mailbox)
        box.items[stored.exchange_id] = stored
        self._log(box, stored)

    def _log(self, box: MemoryMailbox, stored: StoredItem) -> None:
        box.log.append((next(self._counter), stored.folder, stored.exchange_id))

    def find_stored(self, box: MemoryMailbox, exchange_id: str) -> StoredItem | None:
        """The item (or the series holding the live occurrence) an id names, or ``None``."""
        stored = box.items.get(master_of(exchange_id) or exchange_id)
        if stored is None or exchange_id == stored.exchange_id:
            return stored
        original = _original_start(stored, exchange_id)
        return stored if original is not None and stored.occurrences[original] else None

    def write_stored(
        self, box: MemoryMailbox, exchange_id: str, record: Record
    ) -> StoredItem | None:
        stored = self.find_stored(box, exchange_id)
        if stored is None:
            return None
        original = _original_start(stored, exchange_id)
        if original is None:
            stored.record = record
        else:
            stored.occurrences[original] = record
            stored.modified.add(original)
            stored.occurrence_keys[original] = self.new_change_key()
        stored.change_key = self.new_change_key()
        self._log(box, stored)
        return stored

    def remove_stored(self, box: MemoryMailbox, exchange_id: str) -> None:
        stored = self.find_stored(box, exchange_id)
        if stored is None:
            return
        original = _original_start(stored, exchange_id)
        if original is None:
            del box.items[stored.exchange_id]
        else:
            stored.occurrences[original] = None
            stored.change_key = self.new_change_key()
        self._log(box, stored)


def _original_start(stored: StoredItem, exchange_id: str) -> dt.datetime | None:
    """The original start an occurrence id names (``None`` for the item itself)."""
    if exchange_id == stored.exchange_id:
        return None
    for original_start in stored.occurrences:
        if occurrence_id(stored.exchange_id, original_start) == exchange_id:
            return original_start
    return None


def _id_number(exchange_id: str) -> int:
    """The counter in a memory item id (``AAMkAD000042`` → 42): ids grow as items are made."""
    digits = exchange_id.removeprefix("AAMkAD")
    return int(digits) if digits.isdigit() else 0


class MemorySession(MailboxSession):
    """A session on one memory mailbox. See :class:`MailboxSession` for the contracts."""

    max_batch = 20

    def __init__(self, backend: MemoryBackend, mailbox: MemoryMailbox) -> None:
        self.backend = backend
        self.mailbox = mailbox

    def read_changes(
        self,
        folder: FolderKind,
        state: str | None,
        window: SyncWindow,
        known: KnownVersions | None = None,
    ) -> ChangePage:
        self._call("read_changes", 0)
        if state is None:
            return self._full_page(folder, self._head(), 0, known)
        kind, position, offset = self._parse_state(state)
        if kind == "full":
            return self._full_page(folder, position, offset, known)
        return self._change_page(folder, position, known)

    def read_window(self, folder: FolderKind, window: SyncWindow) -> list[ExchangeItem]:
        self._call("read_window", 0)
        found: list[ExchangeItem] = []
        for stored in self._in(folder):
            items = stored.expand() if stored.is_master else [stored.as_item()]
            items = [item for item in items if _in_window(item, window)]
            if items:
                self.backend.check_readable([stored])
            found += items
        return found

    def find_by_tag(
        self, folder: FolderKind, tags: Sequence[PsaTag]
    ) -> Mapping[PsaTag, tuple[ExchangeItem, ...]]:
        self._call("find_by_tag", 0)
        wanted = {str(tag): tag for tag in tags}
        result: dict[PsaTag, tuple[ExchangeItem, ...]] = {}
        for stored in self._in(folder):
            if stored.tag in wanted:
                tag = wanted[stored.tag]
                result[tag] = (*result.get(tag, ()), stored.as_item())
        return result

    def create(self, folder: FolderKind, items: Sequence[NewItem]) -> list[WriteResult]:
        self._call("create", len(items))
        return [self._create_one(folder, item) for item in items]

    def update(self, folder: FolderKind, changes: Sequence[ItemChange]) -> list[WriteResult]:
        self._call("update", len(changes))
        return [self._update_one(change) for change in changes]

    def delete(self, folder: FolderKind, deletions: Sequence[ItemDeletion]) -> list[WriteResult]:
        self._call("delete", len(deletions))
        return [self._delete_one(deletion) for deletion in deletions]

    # --- one item -----------------------------------------------------------------------------

    def _create_one(self, folder: FolderKind, item: NewItem) -> WriteResult:
        reason = self.backend.reject_if(item.record) if self.backend.reject_if else None
        if reason:
            return WriteResult(error=ItemRejected(reason))
        address = self.mailbox.address
        exchange_id = self.backend.put(address, item.record, folder=folder, tag=item.tag)
        return WriteResult(exchange_id, self.mailbox.items[exchange_id].change_key)

    def _update_one(self, change: ItemChange) -> WriteResult:
        stored = self.backend.find_stored(self.mailbox, change.exchange_id)
        if stored is None:
            return WriteResult(error=ItemNotFound(change.exchange_id))
        if stored.change_key_of(change.exchange_id) != change.change_key:
            return WriteResult(error=ConflictError("the item changed since it was read"))
        reason = self.backend.reject_if(change.record) if self.backend.reject_if else None
        if reason:
            return WriteResult(error=ItemRejected(reason))
        current = _current_record(stored, change.exchange_id)
        merged = merge_groups(current, change.record, change.fields)
        written = self.backend.write_stored(self.mailbox, change.exchange_id, merged)
        assert written is not None
        return WriteResult(change.exchange_id, written.change_key_of(change.exchange_id))

    def _delete_one(self, deletion: ItemDeletion) -> WriteResult:
        stored = self.backend.find_stored(self.mailbox, deletion.exchange_id)
        if stored is None:
            return WriteResult()  # already gone: deleting is idempotent
        if (
            deletion.change_key
            and stored.change_key_of(deletion.exchange_id) != deletion.change_key
        ):
            return WriteResult(error=ConflictError("the item changed since it was read"))
        self.backend.remove_stored(self.mailbox, deletion.exchange_id)
        return WriteResult()

    # --- change log and states ----------------------------------------------------------------

    def _head(self) -> int:
        return self.mailbox.log[-1][0] if self.mailbox.log else 0

    def _state(self, kind: str, position: int, offset: int = 0) -> str:
        return f"mem:{self.backend.epoch}:{kind}:{position}:{offset}"

    def _parse_state(self, state: str) -> tuple[str, int, int]:
        parts = state.split(":")
        valid = len(parts) == 5 and parts[0] == "mem" and parts[2] in ("full", "inc")
        if not valid or not all(p.isdigit() for p in (parts[1], parts[3], parts[4])):
            raise SyncStateExpired("unreadable sync state")
        if int(parts[1]) != self.backend.epoch:
            raise SyncStateExpired("the sync state has expired")
        return parts[2], int(parts[3]), int(parts[4])

    def _full_page(
        self, folder: FolderKind, position: int, after: int, known: KnownVersions | None
    ) -> ChangePage:
        # A full read lists the folder as it is now, in id order, resuming after the last id
        # listed (``after``: its number), as a server's cursor does: items created or deleted
        # meanwhile never make it skip one. Changes made meanwhile come again afterwards from
        # ``position`` (a replay the planner absorbs).
        items = sorted(self._in(folder), key=lambda stored: _id_number(stored.exchange_id))
        rest = [stored for stored in items if _id_number(stored.exchange_id) > after]
        page = rest[: self.backend.page_size]
        more = len(rest) > len(page)
        new_state = (
            self._state("full", position, _id_number(page[-1].exchange_id))
            if more
            else self._state("inc", position)
        )
        to_read, unchanged = self._split_known(page, known)
        created = self._read(to_read)
        return ChangePage(created, (), (), new_state, more, full_read=True, unchanged=unchanged)

    def _change_page(
        self, folder: FolderKind, position: int, known: KnownVersions | None
    ) -> ChangePage:
        entries = [e for e in self.mailbox.log if e[0] > position and e[1] is folder]
        page = entries[: self.backend.page_size]
        new_position = page[-1][0] if page else position
        ids = list(dict.fromkeys(exchange_id for _, _, exchange_id in page))
        live = [self.mailbox.items[i] for i in ids if i in self.mailbox.items]
        to_read, unchanged = self._split_known(live, known)
        updated = self._read(to_read)
        deleted = tuple(i for i in ids if i not in self.mailbox.items)
        more = len(entries) > len(page)
        return ChangePage(
            (), updated, deleted, self._state("inc", new_position), more, full_read=False,
            unchanged=unchanged,
        )  # fmt: skip

    @staticmethod
    def _split_known(
        page: Sequence[StoredItem], known: KnownVersions | None
    ) -> tuple[list[StoredItem], tuple[str, ...]]:
        """The page's items to read, and the ids the caller holds at their current version
        (one ``known`` call per page; see :meth:`MailboxSession.read_changes`)."""
        if known is None or not page:
            return list(page), ()
        versions = known([stored.exchange_id for stored in page])
        unchanged = [
            s for s in page if s.change_key and versions.get(s.exchange_id) == s.change_key
        ]
        skipped = {stored.exchange_id for stored in unchanged}
        to_read = [stored for stored in page if stored.exchange_id not in skipped]
        return to_read, tuple(stored.exchange_id for stored in unchanged)

    def _read(self, page: Sequence[StoredItem]) -> tuple[ExchangeItem, ...]:
        """The items' content, as GetItem reads it (an unreadable one fails the page)."""
        self.backend.check_readable(page)
        self.backend.content_reads += [stored.exchange_id for stored in page]
        return tuple(stored.as_item() for stored in page)

    def _in(self, folder: FolderKind) -> list[StoredItem]:
        return [stored for stored in self.mailbox.items.values() if stored.folder is folder]

    def _call(self, operation: str, count: int) -> None:
        self.backend.check_fault(operation)
        self.backend.calls.append((operation, count))


def _current_record(stored: StoredItem, exchange_id: str) -> Record:
    original = _original_start(stored, exchange_id)
    if original is None:
        return stored.record
    record = stored.occurrences[original]
    assert record is not None
    return record


def _shifted(record: Record, delta: dt.timedelta) -> Record:
    if not isinstance(record, CalendarRecord):
        return record
    return replace(record, start=record.start + delta, end=record.end + delta)


def _in_window(item: ExchangeItem, window: SyncWindow) -> bool:
    return is_in_window(item.record, window, is_occurrence=item.master_id is not None)
