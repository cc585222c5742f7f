"""The backend contract (exchange_ext/backends/base.py), for every backend.

Each test runs once per driver in conftest.py: the memory backend and EWS on the sandbox.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from zoneinfo import ZoneInfo

import pytest

from exchange_ext.backends.base import (
    ConflictError,
    FolderKind,
    ItemChange,
    ItemDeletion,
    ItemNotFound,
    NewItem,
    SyncStateExpired,
)
from exchange_ext.sync.records import (
    CalendarItemType,
    CalendarRecord,
    ContactRecord,
    FieldGroup,
    ItemKind,
    PsaKey,
    PsaTag,
    ShowAs,
    occurrence_id,
)
from exchange_ext.sync.windows import SyncWindow
from tests import clock

from .conftest import daily_starts, record_without_zone, same_records

INSTALLATION = "inst-1"


def this_hour() -> dt.datetime:
    """The test's pinned clock, on the hour."""
    return clock.now().replace(minute=0, second=0)


def sync_window() -> SyncWindow:
    """The sync window of a run at the pinned clock: 7 days back, 14 ahead."""
    now = clock.now()
    return SyncWindow(start=now - dt.timedelta(days=7), recurring_end=now + dt.timedelta(days=14))


def appointment(n: int = 1, **changes: object) -> CalendarRecord:
    start = this_hour() + dt.timedelta(days=1, hours=n % 8)
    record = CalendarRecord(
        subject=f"Visit {n}", body=f"Account {n}\nOpen in PSA", start=start,
        end=start + dt.timedelta(hours=1), location="Site", time_zone="Europe/Berlin",
    )  # fmt: skip
    return replace(record, **changes)  # type: ignore[arg-type]


def tag(n: int, kind: ItemKind = ItemKind.APPOINTMENT) -> PsaTag:
    return PsaTag(INSTALLATION, PsaKey(kind, n))


def contact(n: int = 1) -> ContactRecord:
    return ContactRecord(
        given_name="Ada", surname=f"Lovelace {n}", job_title="Engineer", company_name="Analytical",
        emails=("ada@example.com", "ada2@example.com"), business_phone="+1 555 0100",
        mobile_phone="+1 555 0101", street="1 Main St", city="London", postal_code="N1",
        country="UK",
    )  # fmt: skip


def read_all(session, folder=FolderKind.CALENDAR, state=None):
    """Follow pages to the end: (items by id, final state, pages)."""
    items, pages = {}, 0
    while True:
        page = session.read_changes(folder, state, sync_window())
        pages += 1
        for item in (*page.created, *page.updated):
            items[item.exchange_id] = item
        for gone in page.deleted:
            items.pop(gone, None)
        state = page.new_state
        if not page.more_available:
            return items, state, pages


def test_created_items_carry_their_tag_and_read_back_equal(driver):
    # An all-day item runs midnight to midnight in its zone.
    midnight = dt.datetime(2030, 5, 6, tzinfo=ZoneInfo("Europe/Berlin"))
    records = [
        appointment(1),
        appointment(2, is_all_day=True, start=midnight, end=midnight + dt.timedelta(days=1)),
        appointment(3, is_private=True, show_as=ShowAs.TENTATIVE),
    ]
    with driver.backend.open_session(driver.mailbox) as session:
        results = session.create(
            FolderKind.CALENDAR, [NewItem(r, tag(n)) for n, r in enumerate(records)]
        )
        assert all(r.ok and r.exchange_id and r.change_key for r in results)
        found = session.find_by_tag(FolderKind.CALENDAR, [tag(n) for n in range(3)])
    for n, (record, result) in enumerate(zip(records, results, strict=True)):
        [item] = found[tag(n)]
        assert (item.exchange_id, item.change_key) == (result.exchange_id, result.change_key)
        assert record_without_zone(item.record) == record_without_zone(record)
        assert item.psa_tag == tag(n)


def test_a_full_read_lists_every_item_then_an_incremental_read_is_empty(driver):
    ids = {driver.put(appointment(n)) for n in range(5)}
    with driver.backend.open_session(driver.mailbox) as session:
        first = session.read_changes(FolderKind.CALENDAR, None, sync_window())
        assert first.full_read and not first.updated and not first.deleted
        items, state, _pages = read_all(session, state=None)
        assert set(items) == ids
        again = session.read_changes(FolderKind.CALENDAR, state, sync_window())
    assert (again.created, again.updated, again.deleted) == ((), (), ())
    assert not again.full_read and not again.more_available


def test_outlook_edits_and_deletes_come_as_updates_and_deletions(driver):
    kept, edited, removed = (driver.put(appointment(n)) for n in range(3))
    with driver.backend.open_session(driver.mailbox) as session:
        before, state, _ = read_all(session)
        driver.edit(edited, appointment(9, subject="Moved"))
        driver.remove(removed)
        page = session.read_changes(FolderKind.CALENDAR, state, sync_window())
    assert [i.exchange_id for i in page.updated] == [edited]
    assert page.updated[0].record.subject == "Moved"
    assert page.updated[0].change_key != before[edited].change_key
    assert list(page.deleted) == [removed] and not page.created
    assert kept in before


def test_many_changes_come_in_pages_that_resume_from_their_state(driver):
    with driver.backend.open_session(driver.mailbox) as session:
        _items, state, _ = read_all(session)
        session.create(FolderKind.CALENDAR, [NewItem(appointment(n), tag(n)) for n in range(130)])
        items, _state, pages = read_all(session, state=state)
    assert len(items) == 130
    assert pages >= 1


def test_an_unreadable_state_is_expired(driver):
    with driver.backend.open_session(driver.mailbox) as session, pytest.raises(SyncStateExpired):
        session.read_changes(FolderKind.CALENDAR, "bm90IGEgc3RhdGU=", sync_window())


def test_update_writes_only_the_given_groups_with_the_current_change_key(driver):
    exchange_id = driver.put(appointment(1, subject="Original"))
    with driver.backend.open_session(driver.mailbox) as session:
        items, _state, _ = read_all(session)
        current = items[exchange_id]
        moved = appointment(1, subject="Ignored", start=this_hour() + dt.timedelta(days=3))
        moved = replace(moved, end=moved.start + dt.timedelta(hours=2))
        [result] = session.update(
            FolderKind.CALENDAR,
            [ItemChange(exchange_id, current.change_key, moved, frozenset({FieldGroup.TIMES}))],
        )
        assert result.ok and result.change_key != current.change_key
        after, _state, _ = read_all(session)
    record = after[exchange_id].record
    assert record.subject == "Original"
    assert (record.start, record.end) == (moved.start, moved.end)
    assert after[exchange_id].change_key == result.change_key


def test_a_stale_change_key_is_a_conflict_for_that_item_only(driver):
    first, second, third = (driver.put(appointment(n)) for n in range(3))
    with driver.backend.open_session(driver.mailbox) as session:
        items, _state, _ = read_all(session)
        driver.edit(second, appointment(5, subject="Edited in Outlook"))
        changes = [
            ItemChange(i, items[i].change_key, appointment(7, subject="From PSA"),
                       frozenset({FieldGroup.DETAILS}))
            for i in (first, second, third)
        ]  # fmt: skip
        results = session.update(FolderKind.CALENDAR, changes)
        after, _state, _ = read_all(session)
    assert [r.ok for r in results] == [True, False, True]
    assert isinstance(results[1].error, ConflictError)
    assert after[second].record.subject == "Edited in Outlook"
    assert after[first].record.subject == after[third].record.subject == "From PSA"


def test_update_of_a_missing_item_is_item_not_found(driver):
    gone = driver.put(appointment(1))
    with driver.backend.open_session(driver.mailbox) as session:
        items, _state, _ = read_all(session)
        driver.remove(gone)
        [result] = session.update(
            FolderKind.CALENDAR,
            [ItemChange(gone, items[gone].change_key, appointment(2), frozenset(FieldGroup))],
        )
    assert isinstance(result.error, ItemNotFound)


def test_delete_is_idempotent_and_refuses_a_stale_change_key(driver):
    plain, edited, gone = (driver.put(appointment(n)) for n in range(3))
    with driver.backend.open_session(driver.mailbox) as session:
        items, _state, _ = read_all(session)
        driver.edit(edited, appointment(8, subject="Edited"))
        driver.remove(gone)
        results = session.delete(
            FolderKind.CALENDAR,
            [ItemDeletion(i, items[i].change_key) for i in (plain, edited, gone)],
        )
        after, _state, _ = read_all(session)
    assert [r.ok for r in results] == [True, False, True]
    assert isinstance(results[1].error, ConflictError)
    assert set(after) == {edited}


def test_find_by_tag_reports_duplicates_and_omits_unknown_tags(driver):
    driver.put(appointment(1), tag=tag(1))
    driver.put(appointment(2), tag=tag(1))
    driver.put(appointment(3), tag=tag(3))
    driver.put(appointment(4))
    with driver.backend.open_session(driver.mailbox) as session:
        found = session.find_by_tag(FolderKind.CALENDAR, [tag(1), tag(2), tag(3)])
    assert set(found) == {tag(1), tag(3)}
    assert len(found[tag(1)]) == 2 and len(found[tag(3)]) == 1


def test_a_series_is_a_master_in_changes_and_expanded_in_the_window(driver):
    first = appointment(1, subject="Standup")
    master_id = driver.put_series(first, 5)
    originals = daily_starts(first, 5)
    moved = replace(first, subject="Standup (late)", start=originals[1] + dt.timedelta(hours=2),
                    end=originals[1] + dt.timedelta(hours=3))  # fmt: skip
    driver.edit_occurrence(master_id, originals[1], moved)
    driver.remove_occurrence(master_id, originals[2])
    with driver.backend.open_session(driver.mailbox) as session:
        items, _state, _ = read_all(session)
        occurrences = session.read_window(FolderKind.CALENDAR, sync_window())
    assert items[master_id].calendar_item_type is CalendarItemType.RECURRING_MASTER
    by_id = {o.exchange_id: o for o in occurrences}
    expected = {occurrence_id(master_id, o) for i, o in enumerate(originals) if i != 2}
    assert set(by_id) == expected
    late = by_id[occurrence_id(master_id, originals[1])]
    assert late.calendar_item_type is CalendarItemType.EXCEPTION
    assert (late.record.subject, late.record.start) == ("Standup (late)", moved.start)
    assert by_id[occurrence_id(master_id, originals[0])].calendar_item_type is (
        CalendarItemType.OCCURRENCE
    )
    assert all(o.master_id == master_id for o in occurrences)


def test_calendar_items_carry_their_uid_and_occurrences_the_series_uid_and_original_start(
    driver,
):
    single_id = driver.put(appointment(7))
    first = appointment(1, subject="Standup")
    master_id = driver.put_series(first, 3)
    originals = daily_starts(first, 3)
    driver.edit_occurrence(master_id, originals[1], replace(first, subject="Moved",
                           start=originals[1] + dt.timedelta(hours=2),
                           end=originals[1] + dt.timedelta(hours=3)))  # fmt: skip
    with driver.backend.open_session(driver.mailbox) as session:
        items, _state, _ = read_all(session)
        occurrences = session.read_window(FolderKind.CALENDAR, sync_window())
    single, master = items[single_id], items[master_id]
    assert single.ical_uid and master.ical_uid and single.ical_uid != master.ical_uid
    assert (single.original_start, master.original_start) == (None, None)
    series = sorted((o for o in occurrences if o.master_id == master_id),
                    key=lambda o: o.original_start or o.record.start)  # fmt: skip
    assert [o.ical_uid for o in series] == [master.ical_uid] * 3  # exceptions included
    assert [o.original_start for o in series] == originals
    assert len({o.identity for o in series} | {single.identity}) == 4


def test_an_occurrence_is_updated_and_deleted_by_its_occurrence_id(driver):
    first = appointment(1, subject="Weekly")
    master_id = driver.put_series(first, 3)
    originals = daily_starts(first, 3)
    with driver.backend.open_session(driver.mailbox) as session:
        window = {o.exchange_id: o for o in session.read_window(FolderKind.CALENDAR, sync_window())}
    second, third = (occurrence_id(master_id, o) for o in originals[1:])
    with driver.backend.open_session(driver.mailbox) as session:  # a new session: no cache
        [updated] = session.update(
            FolderKind.CALENDAR,
            [ItemChange(second, window[second].change_key, replace(first, subject="Changed"),
                        frozenset({FieldGroup.DETAILS}))],
        )  # fmt: skip
        [deleted] = session.delete(FolderKind.CALENDAR, [ItemDeletion(third)])
        after = {o.exchange_id: o for o in session.read_window(FolderKind.CALENDAR, sync_window())}
    assert updated.ok and deleted.ok
    assert after[second].record.subject == "Changed"
    assert third not in after


def test_contacts_round_trip_with_their_tag(driver):
    record = contact(1)
    with driver.backend.open_session(driver.mailbox) as session:
        [result] = session.create(FolderKind.CONTACTS, [NewItem(record, tag(1, ItemKind.CONTACT))])
        items, _state, _ = read_all(session, FolderKind.CONTACTS)
    item = items[result.exchange_id]
    assert item.record == record and item.psa_tag == tag(1, ItemKind.CONTACT)


def test_writes_never_send_a_meeting_message(driver):
    with driver.backend.open_session(driver.mailbox) as session:
        [created] = session.create(FolderKind.CALENDAR, [NewItem(appointment(1), tag(1))])
        session.update(
            FolderKind.CALENDAR,
            [ItemChange(created.exchange_id, created.change_key, appointment(2),
                        frozenset(FieldGroup))],
        )  # fmt: skip
        items, _state, _ = read_all(session)
        session.delete(
            FolderKind.CALENDAR,
            [ItemDeletion(created.exchange_id, items[created.exchange_id].change_key)],
        )
    assert driver.meeting_messages() == 0


def test_results_come_in_input_order_across_batches(driver):
    with driver.backend.open_session(driver.mailbox) as session:
        count = session.max_batch + 5
        records = [appointment(n, subject=f"#{n}") for n in range(count)]
        results = session.create(
            FolderKind.CALENDAR, [NewItem(r, tag(n)) for n, r in enumerate(records)]
        )
        items, _state, _ = read_all(session)
    assert same_records([items[r.exchange_id].record for r in results], records)


def test_a_contact_update_rewrites_its_details(driver):
    with driver.backend.open_session(driver.mailbox) as session:
        [created] = session.create(FolderKind.CONTACTS, [NewItem(contact(1), tag(1))])
        changed = replace(
            contact(1), job_title="", emails=("new@example.com",), mobile_phone="", street="",
            city="", postal_code="", country="", company_name="Babbage & Co",
        )  # fmt: skip
        [result] = session.update(
            FolderKind.CONTACTS,
            [ItemChange(created.exchange_id, created.change_key, changed,
                        frozenset({FieldGroup.DETAILS}))],
        )  # fmt: skip
        items, _state, _ = read_all(session, FolderKind.CONTACTS)
    assert result.ok
    assert items[created.exchange_id].record == changed


def test_emptied_details_are_cleared_not_kept(driver):
    exchange_id = driver.put(appointment(1))
    with driver.backend.open_session(driver.mailbox) as session:
        items, _state, _ = read_all(session)
        cleared = appointment(1, body="", location="", subject="Bare")
        session.update(
            FolderKind.CALENDAR,
            [ItemChange(exchange_id, items[exchange_id].change_key, cleared,
                        frozenset({FieldGroup.DETAILS}))],
        )  # fmt: skip
        after, _state, _ = read_all(session)
    record = after[exchange_id].record
    assert (record.subject, record.body, record.location) == ("Bare", "", "")
