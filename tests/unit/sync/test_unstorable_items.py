"""Items the PSA cannot store as they are: one test per rule of docs/sync-rules.md, "Items the PSA
cannot store as they are", on the mapping and through the planner (plain data in, ops out)."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from exchange_ext.sync import ops as o
from exchange_ext.sync.mapping import (
    PSA_TEXT_MAX,
    exchange_details,
    import_record,
    storable_in_psa,
    storable_times,
)
from exchange_ext.sync.planner import plan
from exchange_ext.sync.records import (
    CalendarRecord,
    ExchangeItem,
    ExchangeView,
    FieldGroup,
    ImportMode,
    ItemKind,
    Link,
    PsaItem,
    Side,
)
from tests import clock
from tests.unit.sync.factories import OPTIONS, at, calendar, foreign, key, linked, ours, psa_item

LONG_SUBJECT = "Quarterly planning with the whole regional team " * 6 + "and a lunch!"
LONG_PLACE = "Building 7, " * 30
IMPORTED = key(50)
TIMES = frozenset({FieldGroup.TIMES})
DETAILS = frozenset({FieldGroup.DETAILS})


def imported(record: CalendarRecord) -> CalendarRecord:
    return import_record(foreign(record), OPTIONS)


def zero_length(**changes: object) -> CalendarRecord:
    return calendar("Call the bank", hours=0, **changes)


def plan_of(
    *, links: tuple[Link, ...] = (), psa: tuple[PsaItem, ...] = (), items: tuple[ExchangeItem, ...]
) -> o.Plan:
    view = ExchangeView(items)
    return plan({lk.key: lk for lk in links}, {i.key: i for i in psa}, view, OPTIONS, clock.now())


def import_of(record: CalendarRecord) -> tuple[Link, PsaItem]:
    """The link and PSA item an import of ``record`` leaves (as the engine persists them)."""
    [op] = plan_of(items=(foreign(record),)).ops
    assert isinstance(op, o.CreateInPsa)
    link = op.link_after(IMPORTED.psa_id)
    return link, psa_item(IMPORTED, op.record, Side.EXCHANGE)


# --- the rules, one by one ----------------------------------------------------------------------


def test_a_zero_length_item_lasts_one_minute_from_its_start() -> None:
    record = imported(zero_length())
    assert (record.start, record.end) == (at(1), at(1) + dt.timedelta(minutes=1))


def test_an_item_ending_before_it_starts_keeps_its_start_and_lasts_one_minute() -> None:
    inverted = calendar("Backwards", start=at(1), end=at(1) - dt.timedelta(hours=2))
    record = imported(inverted)
    assert (record.start, record.end) == (at(1), at(1) + dt.timedelta(minutes=1))


def test_a_zero_length_all_day_item_lasts_one_day() -> None:
    midnight = clock.day(2)
    record = imported(calendar("Holiday", start=midnight, hours=0, is_all_day=True))
    assert (record.start, record.end, record.is_all_day) == (midnight, clock.day(3), True)


def test_a_to_do_may_be_due_when_it_starts_but_not_before() -> None:
    at_start = calendar("Call", hours=0)
    assert storable_times(at_start, ItemKind.TODO) == at_start
    before = dataclasses.replace(at_start, end=at_start.start - dt.timedelta(hours=1))
    assert storable_times(before, ItemKind.TODO).end == at_start.start


def test_an_over_long_subject_is_shortened_with_an_ellipsis_and_kept_whole_in_the_description() -> (
    None
):
    record = import_record(foreign(calendar(LONG_SUBJECT, body="Agenda"), attendees=("a@x.test",)),
                           OPTIONS)  # fmt: skip
    assert len(LONG_SUBJECT) == 300 and len(record.subject) == PSA_TEXT_MAX
    assert record.subject == LONG_SUBJECT[: PSA_TEXT_MAX - 1] + "…"
    assert record.body == f"Agenda\n\nAttendees: a@x.test\n\nFull subject: {LONG_SUBJECT}"


def test_an_over_long_subject_without_details_is_only_the_placeholder() -> None:
    options = dataclasses.replace(OPTIONS, import_mode=ImportMode.TIMES_ONLY)
    record = import_record(foreign(calendar(LONG_SUBJECT, body="Agenda")), options)
    assert (record.subject, record.body) == ("Appointment", "")


def test_an_over_long_location_is_shortened_and_kept_whole_in_the_description() -> None:
    record = imported(calendar(LONG_SUBJECT, body="", location=LONG_PLACE))
    assert len(record.location) == PSA_TEXT_MAX and record.location.endswith("…")
    assert record.body == f"\n\nFull subject: {LONG_SUBJECT}\n\nFull location: {LONG_PLACE}"


@pytest.mark.parametrize("subject", ["", "   ", "\x00"])
def test_a_blank_subject_becomes_no_subject(subject: str) -> None:
    assert imported(calendar(subject)).subject == "(No subject)"


def test_nul_characters_are_dropped_from_every_text() -> None:
    record = imported(calendar("Stand\x00up", body="Notes\x00", location="Room\x001"))
    assert (record.subject, record.body, record.location) == ("Standup", "Notes", "Room1")


def test_a_record_the_psa_can_store_is_imported_unchanged_and_the_rules_are_idempotent() -> None:
    plain = calendar("Lunch", body="Menu", location="Cafe")
    assert storable_in_psa(plain) == plain
    once = storable_in_psa(calendar(LONG_SUBJECT, hours=0, location=LONG_PLACE))
    assert once.end > once.start and len(once.subject) == len(once.location) == PSA_TEXT_MAX
    assert storable_in_psa(once) == once


# --- nothing flows back that the normalisation made ---------------------------------------------


def test_details_written_back_hand_exchange_its_own_subject_location_and_empty_subject() -> None:
    record = calendar(LONG_SUBJECT, body="Agenda", location=LONG_PLACE)
    psa_side = import_record(foreign(record, attendees=("a@x.test",)), OPTIONS)
    assert "Full subject" in psa_side.body and len(psa_side.location) == PSA_TEXT_MAX
    back = exchange_details(psa_side)
    assert (back.subject, back.location, back.body) == (LONG_SUBJECT, LONG_PLACE, "Agenda")
    untitled = imported(calendar(""))
    assert untitled.subject == "(No subject)" and exchange_details(untitled).subject == ""


def test_a_subject_or_location_changed_in_the_psa_is_written_as_the_psa_has_it() -> None:
    psa_side = imported(calendar(LONG_SUBJECT, body="Agenda", location=LONG_PLACE))
    assert "Full location" in psa_side.body
    edited = dataclasses.replace(psa_side, subject="Planning", location="Room 4")
    back = exchange_details(edited)
    assert (back.subject, back.location, back.body) == ("Planning", "Room 4", "Agenda")


@pytest.mark.parametrize(
    "record",
    [zero_length(), calendar(LONG_SUBJECT, location=LONG_PLACE), calendar("")],
    ids=["zero-length", "over-long", "no-subject"],
)
def test_a_normalised_import_is_quiet_on_the_next_run_even_on_a_full_read(
    record: CalendarRecord,
) -> None:
    link, item = import_of(record)
    assert item.record != record  # normalised
    unchanged = foreign(record)
    assert plan_of(links=(link,), psa=(item,), items=(unchanged,)).writes == ()
    view = ExchangeView((unchanged,), full_read=True)
    assert plan({IMPORTED: link}, {IMPORTED: item}, view, OPTIONS, clock.now()).writes == ()


def test_a_later_outlook_edit_of_a_normalised_import_flows_in_normalised() -> None:
    link, item = import_of(zero_length())
    later = foreign(calendar(LONG_SUBJECT, days=2, hours=0), change_key="ck10")
    [op] = plan_of(links=(link,), psa=(item,), items=(later,)).ops
    assert isinstance(op, o.UpdatePsa)
    assert (op.record.start, op.record.end) == (at(2), at(2) + dt.timedelta(minutes=1))
    assert op.record.subject == LONG_SUBJECT[: PSA_TEXT_MAX - 1] + "…"


def test_a_psa_details_edit_of_a_normalised_import_writes_no_normalised_value_back() -> None:
    link, item = import_of(calendar(LONG_SUBJECT, hours=0, body="Agenda"))
    assert item.record.end > item.record.start and item.record.subject != LONG_SUBJECT
    edited = dataclasses.replace(item, record=dataclasses.replace(item.record, location="Room 4"))
    [op] = plan_of(links=(link,), psa=(edited,), items=()).ops
    assert isinstance(op, o.UpdateInExchange)
    assert op.fields == DETAILS  # the one-minute end is not written: times did not change
    assert (op.record.subject, op.record.body, op.record.location) == (
        LONG_SUBJECT, "Agenda", "Room 4",
    )  # fmt: skip


def test_an_outlook_time_change_making_a_psa_appointment_zero_length_flows_back_as_one_minute() -> (
    None
):
    visit = calendar("Visit")
    squashed = dataclasses.replace(visit, end=visit.start)
    result = plan_of(links=(linked(key(1), visit),), psa=(psa_item(key(1), visit),),
                     items=(ours(key(1), squashed, change_key="ck2"),))  # fmt: skip
    [op] = result.ops
    assert isinstance(op, o.UpdatePsa) and op.fields == TIMES
    assert op.record.end == visit.start + dt.timedelta(minutes=1)
    # ... and the next run, Exchange unchanged, is quiet.
    after = psa_item(key(1), op.record)
    assert plan_of(links=(op.link,), psa=(after,), items=(ours(key(1), squashed, change_key="ck2"),)
                   ).ops == ()  # fmt: skip


def test_an_outlook_time_change_of_a_to_do_ending_before_it_starts_arrives_due_at_its_start() -> (
    None
):
    todo_key = key(7, ItemKind.TODO)
    todo = calendar("Phone call: Acme")
    backwards = dataclasses.replace(todo, end=todo.start - dt.timedelta(minutes=30))
    result = plan_of(links=(linked(todo_key, todo),), psa=(psa_item(todo_key, todo),),
                     items=(ours(todo_key, backwards, change_key="ck2"),))  # fmt: skip
    [op] = result.ops
    assert isinstance(op, o.UpdatePsa) and op.record.end == todo.start
