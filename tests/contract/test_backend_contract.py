"""The backend contract (``exchange_ext.backends.base``), one suite for every implementation.

Each backend plugs in through a factory in :data:`BACKENDS` returning a :class:`Subject`: the
backend, a mailbox to work in, and the few backdoor powers the suite needs (edit an item as a
user in Outlook would, expire sync states, count meeting messages). MemoryBackend runs here;
EWS-on-sandbox and Graph-on-sandbox add their factory (starting the sandbox in a fixture).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from exchange_ext.backends.base import (
    AuthFailed,
    BackendError,
    ConflictError,
    ExchangeBackend,
    FolderKind,
    ImpersonationDenied,
    ItemChange,
    ItemDeletion,
    ItemNotFound,
    ItemRejected,
    KnownVersions,
    MailboxNotFound,
    MailboxSession,
    NewItem,
    SyncStateExpired,
    Throttled,
    Unavailable,
)
from exchange_ext.backends.memory import MemoryBackend
from exchange_ext.sync.records import (
    ALL_GROUPS,
    CalendarItemType,
    CalendarRecord,
    ContactRecord,
    FieldGroup,
    ItemKind,
    PsaKey,
    PsaTag,
    Record,
    occurrence_id,
)
from exchange_ext.sync.windows import SyncWindow
from tests import clock

from .conftest import ews_driver

PAGE_SIZE = 3


def sync_window() -> SyncWindow:
    """The sync window of a run at the test's pinned clock: 7 days back, 14 ahead."""
    now = clock.now()
    return SyncWindow(now - dt.timedelta(days=7), now + dt.timedelta(days=14))


@dataclass
class Subject:
    """A backend under test and its backdoor."""

    backend: ExchangeBackend
    mailbox: str
    edit_as_user: Callable[[str, Record], None]
    delete_as_user: Callable[[str], None]
    expire_states: Callable[[], None]
    meeting_messages: Callable[[], int]
    # Creates a series (record of the first occurrence, starts); None where unsupported.
    create_series: Callable[[CalendarRecord, list[dt.datetime]], str] | None = None
    # Content reads so far (memory: items read; EWS: GetItem requests; Graph: event/contact
    # GETs, inside $batch or not), as the server counts them.
    content_reads: Callable[[], int] = lambda: 0


def sandbox_requests(handle: Any, *operations: str) -> Callable[[], int]:
    """The sandbox's request-log count of ``operations`` (Graph: $batch parts included)."""

    def count() -> int:
        counters = handle.state.requests.query()["counters"]
        return sum(counters.get(operation, 0) for operation in operations)

    return count


def memory_subject() -> Iterator[Subject]:
    mailbox = "tech@example.test"
    backend = MemoryBackend([mailbox], page_size=PAGE_SIZE)
    yield Subject(
        backend=backend,
        mailbox=mailbox,
        edit_as_user=lambda exchange_id, record: backend.edit(mailbox, exchange_id, record),
        delete_as_user=lambda exchange_id: backend.remove(mailbox, exchange_id),
        expire_states=backend.expire_states,
        meeting_messages=lambda: backend.meeting_messages_sent,
        create_series=lambda record, starts: backend.put_series(mailbox, record, starts),
        content_reads=lambda: len(backend.content_reads),
    )


def ews_subject() -> Iterator[Subject]:
    with ews_driver(page_size=PAGE_SIZE) as driver:
        yield Subject(
            backend=driver.backend,
            mailbox=driver.mailbox,
            edit_as_user=driver.edit,
            delete_as_user=driver.remove,
            expire_states=driver.expire_states,
            meeting_messages=driver.meeting_messages,
            create_series=driver.create_series,
            content_reads=sandbox_requests(driver.handle, "GetItem"),
        )


#: One factory per backend. EWS and Graph append theirs here (sandbox-backed generators).
BACKENDS: list[Callable[[], Iterator[Subject]]] = [memory_subject, ews_subject]


@pytest.fixture(params=BACKENDS, ids=lambda factory: factory.__name__.removesuffix("_subject"))
def subject(request: pytest.FixtureRequest) -> Iterator[Subject]:
    yield from request.param()


@pytest.fixture
def session(subject: Subject) -> Iterator[MailboxSession]:
    with subject.backend.open_session(subject.mailbox) as opened:
        yield opened


def visit(n: int = 1, **changes: object) -> CalendarRecord:
    start = clock.now() + dt.timedelta(days=n)
    record = CalendarRecord(f"Visit {n}", "Notes", start, start + dt.timedelta(hours=1))
    return dataclasses.replace(record, **changes)  # type: ignore[arg-type]


def tag(n: int = 1, kind: ItemKind = ItemKind.APPOINTMENT) -> PsaTag:
    return PsaTag("inst-contract", PsaKey(kind, n))


def create(session: MailboxSession, *records: CalendarRecord) -> list[tuple[str, str]]:
    items = [NewItem(record, tag(n)) for n, record in enumerate(records, start=1)]
    results = session.create(FolderKind.CALENDAR, items)
    assert all(result.ok for result in results), results
    return [(result.exchange_id, result.change_key) for result in results]


def read_all(session: MailboxSession, state: str | None, folder=FolderKind.CALENDAR, known=None):  # type: ignore[no-untyped-def]
    """Every page from ``state``: (created+updated, deleted, final state, pages, full_read)."""
    items, deleted, pages, full = [], [], 0, False
    while True:
        page = session.read_changes(folder, state, sync_window(), known)
        items += [*page.created, *page.updated]
        deleted += page.deleted
        state, pages, full = page.new_state, pages + 1, full or page.full_read
        if not page.more_available:
            return items, deleted, state, pages, full


# --- create / read / update / delete ----------------------------------------------------------


def test_created_items_come_back_with_their_tag_content_and_ids(session: MailboxSession) -> None:
    created = create(session, visit(1), visit(2))
    assert len({exchange_id for exchange_id, _ in created}) == 2
    found = session.find_by_tag(FolderKind.CALENDAR, [tag(1), tag(2)])
    assert [item.record for item in found[tag(1)]] == [visit(1)]
    assert found[tag(2)][0].exchange_id == created[1][0]
    assert found[tag(2)][0].psa_tag == tag(2)


def test_results_come_one_per_item_in_input_order(session: MailboxSession) -> None:
    created = create(session, *(visit(n) for n in range(1, 6)))
    found = session.find_by_tag(FolderKind.CALENDAR, [tag(n) for n in range(1, 6)])
    assert [found[tag(n)][0].exchange_id for n in range(1, 6)] == [i for i, _ in created]


def test_update_writes_the_given_groups_and_bumps_the_change_key(session: MailboxSession) -> None:
    [(exchange_id, change_key)] = create(session, visit(1))
    moved = visit(3, subject="Ignored subject")
    result = session.update(
        FolderKind.CALENDAR,
        [ItemChange(exchange_id, change_key, moved, frozenset({FieldGroup.TIMES}))],
    )[0]
    assert result.ok and result.change_key != change_key
    [item] = session.find_by_tag(FolderKind.CALENDAR, [tag(1)])[tag(1)]
    assert (item.record.start, item.record.subject) == (moved.start, "Visit 1")
    assert item.change_key == result.change_key


def test_update_with_a_stale_change_key_is_a_conflict_and_writes_nothing(
    subject: Subject, session: MailboxSession
) -> None:
    [(exchange_id, change_key)] = create(session, visit(1))
    subject.edit_as_user(exchange_id, visit(1, location="Changed in Outlook"))
    change = ItemChange(exchange_id, change_key, visit(1, subject="Ours"), ALL_GROUPS)
    result = session.update(FolderKind.CALENDAR, [change])[0]
    assert isinstance(result.error, ConflictError)
    [item] = session.find_by_tag(FolderKind.CALENDAR, [tag(1)])[tag(1)]
    assert (item.record.subject, item.record.location) == ("Visit 1", "Changed in Outlook")


def test_update_of_a_missing_item_is_item_not_found(
    subject: Subject, session: MailboxSession
) -> None:
    [(exchange_id, change_key)] = create(session, visit(1))
    subject.delete_as_user(exchange_id)
    change = ItemChange(exchange_id, change_key, visit(1), ALL_GROUPS)
    assert isinstance(session.update(FolderKind.CALENDAR, [change])[0].error, ItemNotFound)


def test_delete_removes_the_item_and_deleting_again_succeeds(session: MailboxSession) -> None:
    [(exchange_id, change_key)] = create(session, visit(1))
    deletion = ItemDeletion(exchange_id, change_key)
    assert session.delete(FolderKind.CALENDAR, [deletion])[0].ok
    assert session.find_by_tag(FolderKind.CALENDAR, [tag(1)]) == {}
    assert session.delete(FolderKind.CALENDAR, [deletion])[0].ok


def test_delete_with_a_stale_change_key_is_a_conflict(
    subject: Subject, session: MailboxSession
) -> None:
    [(exchange_id, change_key)] = create(session, visit(1))
    subject.edit_as_user(exchange_id, visit(1, body="Edited"))
    result = session.delete(FolderKind.CALENDAR, [ItemDeletion(exchange_id, change_key)])[0]
    assert isinstance(result.error, ConflictError)
    assert tag(1) in session.find_by_tag(FolderKind.CALENDAR, [tag(1)])


def test_contacts_round_trip_in_the_contacts_folder(session: MailboxSession) -> None:
    person = ContactRecord("Jane", "Doe", "CTO", "Acme", ("jane@acme.test",), "+1 555 0100")
    contact_tag = tag(9, ItemKind.CONTACT)
    [result] = session.create(FolderKind.CONTACTS, [NewItem(person, contact_tag)])
    assert result.ok
    assert [
        i.record for i in session.find_by_tag(FolderKind.CONTACTS, [contact_tag])[contact_tag]
    ] == [person]
    assert session.find_by_tag(FolderKind.CALENDAR, [contact_tag]) == {}


# --- tags ---------------------------------------------------------------------------------------


def test_find_by_tag_returns_only_the_items_carrying_each_tag(session: MailboxSession) -> None:
    create(session, visit(1), visit(2))
    other_installation = PsaTag("someone-else", tag(1).key)
    found = session.find_by_tag(FolderKind.CALENDAR, [tag(1), other_installation, tag(5)])
    assert set(found) == {tag(1)}


# --- change feed ----------------------------------------------------------------------------------


def test_full_read_pages_through_every_item(session: MailboxSession) -> None:
    created = create(session, *(visit(n) for n in range(1, 8)))
    items, deleted, _, pages, full = read_all(session, None)
    assert full and deleted == []
    assert {i.exchange_id for i in items} == {exchange_id for exchange_id, _ in created}
    assert pages >= 2  # more items than one page holds


def test_incremental_read_reports_creates_updates_and_deletes_since_the_state(
    subject: Subject, session: MailboxSession
) -> None:
    (first, _), (second, _) = create(session, visit(1), visit(2))
    *_, state, _, _ = read_all(session, None)
    subject.edit_as_user(first, visit(1, subject="Renamed"))
    subject.delete_as_user(second)
    third = session.create(FolderKind.CALENDAR, [NewItem(visit(3), tag(3))])[0].exchange_id
    items, deleted, _, _, full = read_all(session, state)
    assert not full
    assert {i.exchange_id: i.record.subject for i in items} == {first: "Renamed", third: "Visit 3"}
    assert deleted == [second]


def test_a_state_stays_valid_until_replaced_so_a_page_can_be_replayed(
    subject: Subject, session: MailboxSession
) -> None:
    create(session, visit(1))
    *_, state, _, _ = read_all(session, None)
    for n in range(2, 9):
        session.create(FolderKind.CALENDAR, [NewItem(visit(n), tag(n))])
    first = session.read_changes(FolderKind.CALENDAR, state, sync_window())
    again = session.read_changes(
        FolderKind.CALENDAR, state, sync_window()
    )  # the crash-and-retry case
    assert first.more_available
    assert [i.exchange_id for i in again.updated + again.created] == [
        i.exchange_id for i in first.updated + first.created
    ]
    items, *_ = read_all(session, first.new_state)
    seen = {i.exchange_id for i in first.created + first.updated + tuple(items)}
    assert len(seen) == 7


def test_nothing_changed_means_an_empty_last_page(session: MailboxSession) -> None:
    create(session, visit(1))
    *_, state, _, _ = read_all(session, None)
    page = session.read_changes(FolderKind.CALENDAR, state, sync_window())
    assert (page.created, page.updated, page.deleted, page.more_available) == ((), (), (), False)


def test_an_unreadable_state_raises_sync_state_expired(session: MailboxSession) -> None:
    with pytest.raises(SyncStateExpired):
        session.read_changes(FolderKind.CALENDAR, "not-a-state", sync_window())


def test_an_expired_state_raises_sync_state_expired(
    subject: Subject, session: MailboxSession
) -> None:
    create(session, visit(1))
    *_, state, _, _ = read_all(session, None)
    subject.expire_states()
    with pytest.raises(SyncStateExpired):
        session.read_changes(FolderKind.CALENDAR, state, sync_window())


# --- recurrence -----------------------------------------------------------------------------------


def test_read_window_expands_series_into_occurrences_with_stable_ids(
    subject: Subject, session: MailboxSession
) -> None:
    if subject.create_series is None:
        pytest.skip("this backend's harness cannot create series")
    starts = [clock.now() + dt.timedelta(days=n) for n in range(0, 30, 5)]  # 0, 5, 10 | 15 (beyond)
    master = subject.create_series(visit(0, subject="Weekly"), starts)
    subject.delete_as_user(occurrence_id(master, starts[1]))
    occurrences = [
        i for i in session.read_window(FolderKind.CALENDAR, sync_window()) if i.master_id
    ]
    assert [i.exchange_id for i in occurrences] == [occurrence_id(master, starts[0]),
                                                    occurrence_id(master, starts[2])]  # fmt: skip
    assert {i.calendar_item_type for i in occurrences} == {CalendarItemType.OCCURRENCE}


# --- never a meeting message, typed errors ------------------------------------------------------


def test_writes_never_send_meeting_messages(subject: Subject, session: MailboxSession) -> None:
    created = create(session, visit(1), visit(2))
    (first, key1), (second, key2) = created
    session.update(FolderKind.CALENDAR, [ItemChange(first, key1, visit(5), ALL_GROUPS)])
    session.delete(FolderKind.CALENDAR, [ItemDeletion(second, key2)])
    assert subject.meeting_messages() == 0


def test_an_unknown_mailbox_raises_mailbox_not_found(subject: Subject) -> None:
    # A backend may find out on opening or on the first call; both must say MailboxNotFound.
    with pytest.raises(MailboxNotFound), subject.backend.open_session("nobody@x.test") as opened:
        opened.read_changes(FolderKind.CALENDAR, None, sync_window())


# --- the connection test (probe) ------------------------------------------------------------


def test_a_probe_of_a_reachable_mailbox_passes_and_names_it(subject: Subject) -> None:
    result = subject.backend.probe(subject.mailbox)

    assert result.ok, result
    assert subject.mailbox in result.message
    assert (dict(result.field_errors), result.error) == ({}, None)


def test_a_probe_without_a_mailbox_tests_the_sign_in(subject: Subject) -> None:
    result = subject.backend.probe(None)

    assert result.ok, result
    assert "signed in" in result.message.lower()


def test_a_probe_of_an_unknown_mailbox_names_the_mailbox_field(subject: Subject) -> None:
    result = subject.backend.probe("nobody@x.test")

    assert not result.ok
    assert isinstance(result.error, MailboxNotFound)
    assert set(result.field_errors) == {"mailbox"}
    assert result.field_errors["mailbox"] == result.message
    assert "nobody@x.test" in result.message


@pytest.mark.parametrize(
    ("error", "permanent"),
    [
        (AuthFailed(), True),
        (MailboxNotFound(), True),
        (ImpersonationDenied(), True),
        (ItemRejected("too large"), True),
        (Throttled(retry_after_seconds=30), False),
        (Unavailable(), False),
        (SyncStateExpired(), False),
        (ConflictError(), False),
    ],
)
def test_errors_are_typed_and_say_whether_retrying_can_help(
    error: BackendError, permanent: bool
) -> None:
    assert isinstance(error, BackendError)
    assert error.permanent is permanent


# --- no content reads of our own writes (``known``) ----------------------------------------------


class Known:
    """A ``known`` callback over fixed versions that records what it was asked."""

    def __init__(self, versions: Mapping[str, str]) -> None:
        self.versions = dict(versions)
        self.asked: list[tuple[str, ...]] = []

    def __call__(self, ids: Sequence[str]) -> Mapping[str, str]:
        self.asked.append(tuple(ids))
        return {i: self.versions[i] for i in ids if i in self.versions}


def read_pages(
    session: MailboxSession, state: str | None, known: KnownVersions | None
) -> tuple[list[str], list[str], list[str], bool]:
    """Every page from ``state``: (ids read, ids unchanged, deleted, full_read)."""
    read: list[str] = []
    unchanged: list[str] = []
    deleted: list[str] = []
    full = False
    while True:
        page = session.read_changes(FolderKind.CALENDAR, state, sync_window(), known)
        read += [item.exchange_id for item in (*page.created, *page.updated)]
        unchanged += page.unchanged
        deleted += page.deleted
        state, full = page.new_state, full or page.full_read
        if not page.more_available:
            return read, unchanged, deleted, full


def test_items_known_at_their_version_are_listed_unchanged_and_not_read(
    subject: Subject, session: MailboxSession
) -> None:
    *_, state, _, _ = read_all(session, None)
    created = dict(create(session, visit(1), visit(2)))
    known = Known(created)
    reads = subject.content_reads()

    page = session.read_changes(FolderKind.CALENDAR, state, sync_window(), known)

    assert set(page.unchanged) == set(created)
    assert (page.created, page.updated, page.deleted) == ((), (), ())
    assert subject.content_reads() == reads
    assert len(known.asked) == 1 and set(known.asked[0]) == set(created)


def test_an_item_edited_in_exchange_after_our_write_is_read(
    subject: Subject, session: MailboxSession
) -> None:
    *_, state, _, _ = read_all(session, None)
    (first, _), (second, _) = created = create(session, visit(1), visit(2))
    subject.edit_as_user(first, visit(1, subject="Renamed in Outlook"))
    reads = subject.content_reads()

    read, unchanged, _, _ = read_pages(session, state, Known(dict(created)))

    assert (read, unchanged) == ([first], [second])
    assert subject.content_reads() > reads


def test_a_full_read_lists_known_items_as_unchanged_and_reads_only_the_others(
    subject: Subject, session: MailboxSession
) -> None:
    created = create(session, *(visit(n) for n in range(1, 6)))  # two pages of 3
    ours, theirs = dict(created[:4]), created[4][0]
    reads = subject.content_reads()

    read, unchanged, deleted, full = read_pages(session, None, Known(ours))

    assert full and deleted == []
    assert sorted(unchanged) == sorted(ours) and read == [theirs]
    assert subject.content_reads() - reads == 1


def test_a_stale_known_change_key_means_the_item_is_read(
    subject: Subject, session: MailboxSession
) -> None:
    *_, state, _, _ = read_all(session, None)
    [(exchange_id, _)] = create(session, visit(1))
    reads = subject.content_reads()

    read, unchanged, _, _ = read_pages(session, state, Known({exchange_id: "CQAAAAstale=="}))

    assert (read, unchanged) == ([exchange_id], [])
    assert subject.content_reads() > reads


def test_without_known_every_reported_item_is_read_as_before(
    subject: Subject, session: MailboxSession
) -> None:
    *_, state, _, _ = read_all(session, None)
    created = dict(create(session, visit(1), visit(2)))
    reads = subject.content_reads()

    read, unchanged, _, _ = read_pages(session, state, None)
    nothing_known, *_ = read_pages(session, state, Known({}))

    assert sorted(read) == sorted(created) and unchanged == []
    assert nothing_known == read
    assert subject.content_reads() > reads
