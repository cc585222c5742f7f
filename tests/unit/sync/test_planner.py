"""The planner, one test per cell of the "Directions" table of docs/sync-rules.md and per rule
of its other sections (plain data in, ops out)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable

import pytest

from exchange_ext.sync import ops as o
from exchange_ext.sync.digest import digest_record
from exchange_ext.sync.mapping import import_record
from exchange_ext.sync.planner import plan
from exchange_ext.sync.records import (
    ALL_GROUPS,
    CalendarRecord,
    ExchangeItem,
    ExchangeView,
    FieldGroup,
    ImportMode,
    ItemKind,
    Link,
    LinkState,
    PsaItem,
    PsaKey,
    PsaTag,
    ShowAs,
    Side,
    SyncOptions,
)
from tests import clock
from tests.unit.sync.factories import (
    OPTIONS,
    at,
    calendar,
    contact,
    foreign,
    key,
    linked,
    ours,
    psa_item,
)

TIMES = frozenset({FieldGroup.TIMES})
DETAILS = frozenset({FieldGroup.DETAILS})
APPT = key(1)


def visit() -> CalendarRecord:
    """A PSA appointment tomorrow (the records are placed from the pinned clock, in each test)."""
    return calendar("Visit", body="Bring cables", days=1)


def run(
    *,
    links: Iterable[Link] = (),
    psa: Iterable[PsaItem] = (),
    items: Iterable[ExchangeItem] = (),
    deleted: Iterable[str] = (),
    full: bool = False,
    options: SyncOptions = OPTIONS,
    now: dt.datetime | None = None,
) -> o.Plan:
    """Plan at ``now`` (default: the pinned clock)."""
    view = ExchangeView(tuple(items), frozenset(deleted), full_read=full)
    links_by_key = {link.key: link for link in links}
    when = clock.now() if now is None else now
    return plan(links_by_key, {i.key: i for i in psa}, view, options, when)


def kinds(result: o.Plan) -> list[str]:
    return [type(op).__name__ for op in result.ops]


def only(result: o.Plan, op_type: type[o.Op]) -> o.Op:
    assert kinds(result) == [op_type.__name__], result.ops
    return result.ops[0]


def moved(record, hours: float = 2):  # type: ignore[no-untyped-def]
    delta = dt.timedelta(hours=hours)
    return dataclasses.replace(record, start=record.start + delta, end=record.end + delta)


# --- PSA appointment → Exchange ---------------------------------------------------------------


def test_new_psa_appointment_is_created_in_exchange_with_our_tag() -> None:
    op = only(run(psa=[psa_item(APPT, visit())]), o.CreateInExchange)
    assert op.tag == PsaTag("inst-1", APPT)
    assert op.record == visit()
    assert op.link.psa_digest == digest_record(visit())


def test_psa_change_updates_the_exchange_appointment_with_its_change_key() -> None:
    edited = dataclasses.replace(visit(), location="Site B")
    result = run(links=[linked(APPT, visit())], psa=[psa_item(APPT, edited)])
    op = only(result, o.UpdateInExchange)
    assert (op.exchange_id, op.change_key, op.record) == ("ex1", "ck1", edited)
    assert op.link.psa_digest == op.link.exchange_digest == digest_record(edited)


def test_psa_delete_deletes_the_exchange_appointment() -> None:
    op = only(run(links=[linked(APPT, visit())]), o.DeleteInExchange)
    assert (op.exchange_id, op.change_key) == ("ex1", "ck1")


def test_reassigned_psa_appointment_leaves_the_old_mailbox_and_enters_the_new_one() -> None:
    old_mailbox = run(links=[linked(APPT, visit())], psa=[])
    new_mailbox = run(psa=[psa_item(APPT, visit())])
    assert kinds(old_mailbox) == ["DeleteInExchange"]
    assert kinds(new_mailbox) == ["CreateInExchange"]


# --- PSA appointment ← Exchange ---------------------------------------------------------------


def test_exchange_time_change_of_psa_appointment_flows_back() -> None:
    result = run(
        links=[linked(APPT, visit())],
        psa=[psa_item(APPT, visit())],
        items=[ours(APPT, moved(visit()), change_key="ck2")],
    )
    op = only(result, o.UpdatePsa)
    assert op.fields == TIMES
    assert op.record == moved(visit())
    assert op.link.change_key == "ck2"


def test_exchange_subject_edit_of_psa_appointment_is_ignored_until_the_next_psa_change() -> None:
    outlook = dataclasses.replace(visit(), subject="Renamed in Outlook")
    ignored = run(
        links=[linked(APPT, visit())],
        psa=[psa_item(APPT, visit())],
        items=[ours(APPT, outlook, change_key="ck2")],
    )
    assert kinds(ignored) == ["Relink"]  # only the change key is refreshed
    refreshed = ignored.ops[0].link
    edited = dataclasses.replace(visit(), body="New notes")
    overwritten = run(links=[refreshed], psa=[psa_item(APPT, edited)])
    op = only(overwritten, o.UpdateInExchange)
    assert op.record.subject == "Visit"
    assert op.fields == DETAILS  # the times already agree
    assert op.change_key == "ck2"


def test_exchange_delete_of_psa_appointment_is_not_reflected() -> None:
    result = run(links=[linked(APPT, visit())], psa=[psa_item(APPT, visit())], deleted=["ex1"])
    op = only(result, o.MarkExchangeDeleted)
    assert op.link.state is LinkState.EXCHANGE_DELETED


def test_psa_appointment_deleted_in_exchange_is_re_exported_on_its_next_psa_change() -> None:
    gone = linked(APPT, visit(), state=LinkState.EXCHANGE_DELETED)
    assert run(links=[gone], psa=[psa_item(APPT, visit())]).ops == ()
    edited = dataclasses.replace(visit(), subject="Visit (moved)")
    op = only(run(links=[gone], psa=[psa_item(APPT, edited)]), o.CreateInExchange)
    assert op.record == edited


# --- Exchange appointment → PSA ---------------------------------------------------------------


def test_new_exchange_appointment_is_imported_with_all_details() -> None:
    item = foreign(calendar("Lunch", body="Menu", location="Cafe"), attendees=("a@x.test",))
    op = only(run(items=[item]), o.CreateInPsa)
    assert op.kind is ItemKind.APPOINTMENT
    assert (op.record.subject, op.record.body) == ("Lunch", "Menu\n\nAttendees: a@x.test")
    assert op.link.origin is Side.EXCHANGE
    assert not op.read_only


def test_import_mode_none_imports_nothing() -> None:
    options = dataclasses.replace(OPTIONS, import_mode=ImportMode.NONE)
    assert run(items=[foreign(calendar("Lunch"))], options=options).ops == ()


def test_times_only_import_brings_start_and_end_only() -> None:
    options = dataclasses.replace(OPTIONS, import_mode=ImportMode.TIMES_ONLY)
    op = only(run(items=[foreign(calendar("Lunch", body="Menu"))], options=options), o.CreateInPsa)
    assert (op.record.subject, op.record.body, op.record.location) == ("Appointment", "", "")


def test_private_exchange_appointment_arrives_titled_appointment_without_details() -> None:
    item = foreign(calendar("Doctor", body="Checkup", location="Clinic", is_private=True))
    op = only(run(items=[item]), o.CreateInPsa)
    assert (op.record.subject, op.record.body, op.record.location) == ("Appointment", "", "")


@pytest.mark.parametrize("show_as", [ShowAs.FREE, ShowAs.WORKING_ELSEWHERE])
def test_free_time_appointment_is_not_imported_when_free_time_is_off(show_as: ShowAs) -> None:
    options = dataclasses.replace(OPTIONS, import_free_time=False)
    item = foreign(calendar("Focus", show_as=show_as))
    assert run(items=[item], options=options).ops == ()
    assert kinds(run(items=[item])) == ["CreateInPsa"]


IMPORTED = key(50)


def lunch() -> CalendarRecord:
    return calendar("Lunch", body="Menu")


def imported_link(record=None, **changes):  # type: ignore[no-untyped-def]
    item = foreign(record or lunch())
    psa_record = import_record(item, OPTIONS)
    link = linked(IMPORTED, psa_record, record, exchange_id="ex9", change_key="ck9")
    return dataclasses.replace(link, origin=Side.EXCHANGE, **changes), psa_item(
        IMPORTED, psa_record, Side.EXCHANGE
    )


def test_exchange_changes_of_an_imported_appointment_flow_to_the_psa() -> None:
    link, item = imported_link()
    changed = moved(dataclasses.replace(lunch(), subject="Team lunch"))
    op = only(
        run(links=[link], psa=[item], items=[foreign(changed, change_key="ck10")]), o.UpdatePsa
    )
    assert op.fields == ALL_GROUPS
    assert (op.record.subject, op.record.start) == ("Team lunch", changed.start)


def test_exchange_delete_of_an_imported_appointment_deletes_it_in_the_psa() -> None:
    link, item = imported_link()
    assert kinds(run(links=[link], psa=[item], deleted=["ex9"])) == ["DeletePsa"]


def test_psa_change_of_an_exchange_appointment_the_resource_organizes_flows_to_exchange() -> None:
    link, item = imported_link()
    edited = dataclasses.replace(item, record=moved(dataclasses.replace(item.record, subject="X")))
    op = only(run(links=[link], psa=[edited]), o.UpdateInExchange)
    assert op.fields == ALL_GROUPS
    assert (op.record.subject, op.record.start) == ("X", edited.record.start)


def test_psa_time_change_of_a_detail_less_import_writes_only_times_back() -> None:
    private = dataclasses.replace(lunch(), is_private=True)
    link, item = imported_link(private)
    assert item.record.subject == "Appointment"
    op = only(run(links=[link], psa=[dataclasses.replace(item, record=moved(item.record))]),
              o.UpdateInExchange)  # fmt: skip
    assert op.fields == TIMES  # the placeholder title never overwrites the real one


def test_attendee_only_appointment_is_read_only_and_psa_edits_do_not_flow() -> None:
    meeting = foreign(lunch(), is_organizer=False, has_attendees=True)
    assert only(run(items=[meeting]), o.CreateInPsa).read_only
    link, item = imported_link(is_organizer=False)
    edited = dataclasses.replace(item, record=moved(item.record))
    assert run(links=[link], psa=[edited], items=[meeting]).writes == ()


def test_psa_delete_of_a_future_appointment_the_resource_organizes_deletes_it_in_exchange() -> None:
    link, _ = imported_link()
    assert kinds(run(links=[link])) == ["DeleteInExchange"]


@pytest.mark.parametrize(
    ("is_organizer", "days"), [(False, 1), (True, -1)], ids=["attendee", "past"]
)
def test_psa_delete_of_an_attended_or_past_exchange_appointment_only_unlinks(
    is_organizer: bool, days: float
) -> None:
    link, _ = imported_link(calendar("Lunch", days=days), is_organizer=is_organizer)
    op = only(run(links=[link]), o.Unlink)
    assert op.link.state is LinkState.UNLINKED
    # ... and it is never re-imported, even when a full read sees it again.
    seen_again = foreign(calendar("Lunch", days=days), is_organizer=is_organizer)
    assert run(links=[op.link], items=[seen_again], full=True).ops == ()


# --- service calls ----------------------------------------------------------------------------


def call_key(resource_id: int) -> PsaKey:
    return key(7, ItemKind.SERVICE_CALL, resource_id)


def acme_call() -> CalendarRecord:
    return calendar("Service call: Acme", body="Fix it", location="1 Main St")


@pytest.mark.parametrize("resource_id", [11, 12, 13])
def test_service_call_gets_a_copy_in_each_assigned_resources_mailbox(resource_id: int) -> None:
    op = only(run(psa=[psa_item(call_key(resource_id), acme_call())]), o.CreateInExchange)
    assert op.tag.key.resource_id == resource_id


def test_service_call_unassigned_from_a_resource_is_deleted_from_its_mailbox() -> None:
    assert kinds(run(links=[linked(call_key(12), acme_call())], psa=[])) == ["DeleteInExchange"]


def test_service_call_exchange_edits_do_not_flow_back_and_are_overwritten_later() -> None:
    k = call_key(11)
    outlook = moved(dataclasses.replace(acme_call(), subject="Mine now"))
    ignored = run(
        links=[linked(k, acme_call())],
        psa=[psa_item(k, acme_call())],
        items=[ours(k, outlook, change_key="ck2")],
    )
    assert ignored.writes == ()
    edited = dataclasses.replace(acme_call(), body="Fix it today")
    op = only(run(links=[ignored.ops[0].link], psa=[psa_item(k, edited)]), o.UpdateInExchange)
    assert op.record == edited and op.fields == ALL_GROUPS


# --- to-dos -----------------------------------------------------------------------------------

TODO = key(3, ItemKind.TODO)


def call_back() -> CalendarRecord:
    return calendar("Phone call: call back", body="Account: Acme")


def test_todo_time_change_in_exchange_flows_back() -> None:
    result = run(links=[linked(TODO, call_back())], psa=[psa_item(TODO, call_back())],
                 items=[ours(TODO, moved(call_back()))])  # fmt: skip
    assert only(result, o.UpdatePsa).fields == TIMES


def test_todo_other_edits_in_exchange_are_ignored() -> None:
    edited = dataclasses.replace(call_back(), subject="Done?", body="")
    result = run(links=[linked(TODO, call_back())], psa=[psa_item(TODO, call_back())],
                 items=[ours(TODO, edited, change_key="ck2")])  # fmt: skip
    assert result.writes == ()


def test_todo_delete_in_exchange_is_not_reflected() -> None:
    result = run(
        links=[linked(TODO, call_back())], psa=[psa_item(TODO, call_back())], deleted=["ex1"]
    )
    assert kinds(result) == ["MarkExchangeDeleted"]


# --- contacts ---------------------------------------------------------------------------------

PERSON = key(9, ItemKind.CONTACT)


def test_contact_in_scope_is_created_then_updated_in_the_mailbox() -> None:
    assert kinds(run(psa=[psa_item(PERSON, contact())])) == ["CreateInExchange"]
    changed = contact(job_title="CTO")
    result = run(links=[linked(PERSON, contact())], psa=[psa_item(PERSON, changed)])
    assert only(result, o.UpdateInExchange).record == changed


def test_contact_leaving_scope_or_inactive_is_deleted_from_the_mailbox() -> None:
    assert kinds(run(links=[linked(PERSON, contact())], psa=[])) == ["DeleteInExchange"]


def test_contact_edits_in_exchange_do_not_flow_back() -> None:
    edited = contact(surname="Smith")
    result = run(links=[linked(PERSON, contact())], psa=[psa_item(PERSON, contact())],
                 items=[ours(PERSON, edited, change_key="ck2")])  # fmt: skip
    assert result.writes == ()


def test_foreign_contacts_in_the_mailbox_are_never_imported() -> None:
    assert run(items=[foreign(contact())]).ops == ()


# --- windows and recurrence -------------------------------------------------------------------


def test_item_leaving_window_is_forgotten_not_deleted() -> None:
    old = calendar("Old", days=-8)
    by_psa = run(links=[linked(APPT, old)], psa=[psa_item(APPT, old)])
    by_both = run(links=[linked(APPT, old)], psa=[psa_item(APPT, old)],
                  items=[ours(APPT, moved(old), change_key="ck2")])  # fmt: skip
    assert kinds(by_psa) == kinds(by_both) == ["Forget"]


def test_a_move_out_of_the_window_is_synced_once_then_the_item_is_forgotten() -> None:
    link, item = imported_link()
    gone_by = foreign(calendar("Lunch", days=-9), change_key="ck10")
    result = run(links=[link], psa=[item], items=[gone_by])
    assert kinds(result) == ["UpdatePsa", "Forget"]


def test_item_moved_back_into_the_window_on_one_side_keeps_syncing() -> None:
    link, item = imported_link(calendar("Lunch", days=-8))
    back = foreign(calendar("Lunch", days=2), change_key="ck10")
    assert only(run(links=[link], psa=[item], items=[back]), o.UpdatePsa).fields == TIMES


def test_items_outside_the_window_are_neither_exported_nor_imported() -> None:
    old = calendar("Old", days=-8)
    assert run(psa=[psa_item(APPT, old)], items=[foreign(old)]).ops == ()


def occurrence(master: str, days: float, record=None, **changes):  # type: ignore[no-untyped-def]
    from exchange_ext.sync.records import CalendarItemType, occurrence_id

    start = at(days)
    placed = dataclasses.replace(record or lunch(), start=start, end=start + dt.timedelta(hours=1))
    item = ExchangeItem(occurrence_id(master, start), "ck", placed,
                        calendar_item_type=CalendarItemType.OCCURRENCE)  # fmt: skip
    return dataclasses.replace(item, **changes)


def test_each_occurrence_in_the_window_becomes_its_own_psa_appointment() -> None:
    occurrences = [occurrence("M1", days) for days in (-2, 1, 8, 13, 15)]
    result = run(items=occurrences)
    assert kinds(result) == ["CreateInPsa"] * 4  # day 15 is beyond recurring_days (14)
    assert len({op.link.exchange_id for op in result.ops}) == 4


def test_modified_and_deleted_occurrences_update_and_remove_their_psa_appointments() -> None:
    links, items = [], []
    for n, days in enumerate((1, 2, 3), start=1):
        item = occurrence("M1", days)
        psa_record = import_record(item, OPTIONS)
        link = dataclasses.replace(
            linked(key(n), psa_record, item.record, exchange_id=item.exchange_id, change_key="ck"),
            origin=Side.EXCHANGE,
        )
        links.append(link)
        items.append(psa_item(key(n), psa_record, Side.EXCHANGE))
    modified = occurrence("M1", 2, dataclasses.replace(lunch(), subject="Moved lunch"))
    view = ExchangeView((occurrence("M1", 1), modified), expanded_series=frozenset({"M1"}))
    result = plan(
        {link.key: link for link in links}, {i.key: i for i in items}, view, OPTIONS, clock.now()
    )
    assert kinds(result) == ["UpdatePsa", "DeletePsa"]
    assert result.ops[0].key == key(2) and result.ops[1].key == key(3)


def test_an_imported_item_moved_just_out_of_the_window_in_the_psa_is_written_then_forgotten() -> (
    None
):
    link, item = imported_link(calendar("Lunch", days=-6.99))
    out = dataclasses.replace(item, record=moved(item.record, -2))  # ends before the window
    result = run(links=[link], psa=[out])  # Exchange unchanged: not in this read
    assert kinds(result) == ["UpdateInExchange", "Forget"]
    assert result.ops[0].record.end == out.record.end


def test_a_psa_item_that_only_aged_out_beside_an_unread_exchange_copy_is_forgotten() -> None:
    link, item = imported_link(calendar("Lunch", days=-8))
    assert kinds(run(links=[link], psa=[item])) == ["Forget"]


# --- re-identification (docs/sync-rules.md, "Re-identification") ------------------------------


def uid_link(item: ExchangeItem, k: PsaKey, **changes: object):  # type: ignore[no-untyped-def]
    """An imported item's link and PSA item, as the last sync left them."""
    psa_record = import_record(item, OPTIONS)
    link = linked(k, psa_record, item.record, exchange_id=item.exchange_id,
                  change_key=item.change_key, origin=Side.EXCHANGE,
                  ical_uid=item.ical_uid, original_start=item.original_start)  # fmt: skip
    return dataclasses.replace(link, **changes), psa_item(k, psa_record, Side.EXCHANGE)


def series(master: str, days: Iterable[float], uid: str = "UID-SERIES", hours: float = 0):  # type: ignore[no-untyped-def]
    """Occurrences of one series (original start = start, shifted by ``hours`` if moved)."""
    return [
        dataclasses.replace(
            occurrence(master, day + hours / 24), ical_uid=uid, original_start=at(day, hours)
        )
        for day in days
    ]


def test_an_imported_item_read_under_another_id_is_relinked_by_its_uid() -> None:
    before = foreign(lunch(), exchange_id="ews-1", ical_uid="UID-1")
    link, item = uid_link(before, IMPORTED)
    after = dataclasses.replace(before, exchange_id="graph-1", change_key="g1")
    op = only(run(links=[link], psa=[item], items=[after], full=True), o.Relink)
    assert (op.link.key, op.link.exchange_id, op.link.change_key) == (IMPORTED, "graph-1", "g1")


def test_imported_occurrences_under_a_new_master_id_are_relinked_by_uid_and_original_start() -> (
    None
):
    old = series("ews-M", (1, 2, 3))
    pairs = [uid_link(item, key(n)) for n, item in enumerate(old, start=1)]
    new = series("graph-M", (1, 2, 3))
    result = run(links=[p[0] for p in pairs], psa=[p[1] for p in pairs], items=new, full=True)
    assert kinds(result) == ["Relink"] * 3
    assert [op.link.exchange_id for op in result.ops] == [i.exchange_id for i in new]


def test_a_link_stored_before_uids_is_refound_by_its_imported_content() -> None:
    before = foreign(lunch(), exchange_id="ews-1")
    link, item = uid_link(before, IMPORTED)
    after = dataclasses.replace(before, exchange_id="graph-1", ical_uid="UID-1")
    op = only(run(links=[link], psa=[item], items=[after], full=True), o.Relink)
    assert (op.link.exchange_id, op.link.ical_uid) == ("graph-1", "UID-1")


def test_an_item_of_another_uid_is_not_taken_for_a_vanished_one() -> None:
    link, item = uid_link(foreign(lunch(), exchange_id="ews-1", ical_uid="UID-1"), IMPORTED)
    other = foreign(lunch(), exchange_id="graph-7", ical_uid="UID-7")
    result = run(links=[link], psa=[item], items=[other], full=True)
    assert kinds(result) == ["DeletePsa", "CreateInPsa"]


def test_an_unlinked_item_found_under_another_id_stays_unlinked_and_is_not_imported() -> None:
    before = foreign(lunch(), exchange_id="ews-1", ical_uid="UID-1")
    link, _ = uid_link(before, IMPORTED, state=LinkState.UNLINKED)
    after = dataclasses.replace(before, exchange_id="graph-1")
    op = only(run(links=[link], items=[after], full=True), o.Relink)
    assert (op.link.exchange_id, op.link.state) == ("graph-1", LinkState.UNLINKED)


def test_a_series_moved_by_its_organizer_keeps_its_psa_appointments_with_new_times() -> None:
    old = series("M1", (1, 2, 3))
    pairs = [uid_link(item, key(n)) for n, item in enumerate(old, start=1)]
    moved_series = series("M1", (1, 2, 3), hours=1)  # new original starts: new occurrence ids
    view = ExchangeView(tuple(moved_series), expanded_series=frozenset({"M1"}))
    result = plan({p[0].key: p[0] for p in pairs}, {p[1].key: p[1] for p in pairs}, view,
                  OPTIONS, clock.now())  # fmt: skip
    assert kinds(result) == ["UpdatePsa"] * 3
    assert [(op.key, op.record.start) for op in result.ops] == [
        (key(n), item.record.start) for n, item in enumerate(moved_series, start=1)
    ]
    assert [op.link.exchange_id for op in result.ops] == [i.exchange_id for i in moved_series]


def test_a_moved_series_with_fewer_occurrences_in_the_window_forgets_the_surplus() -> None:
    old = series("M1", (11, 12, 13))
    pairs = [uid_link(item, key(n)) for n, item in enumerate(old, start=1)]
    later = series("M1", (12, 13, 14), hours=2)  # day 14 + 2 h starts past recurring_days
    view = ExchangeView(tuple(later), expanded_series=frozenset({"M1"}))
    result = plan({p[0].key: p[0] for p in pairs}, {p[1].key: p[1] for p in pairs}, view,
                  OPTIONS, clock.now())  # fmt: skip
    assert kinds(result) == ["UpdatePsa", "UpdatePsa", "Forget"]
    assert "DeletePsa" not in kinds(result)


def test_a_series_that_kept_an_occurrence_had_the_others_deleted_not_moved() -> None:
    old = series("M1", (1, 2, 3))
    pairs = [uid_link(item, key(n)) for n, item in enumerate(old, start=1)]
    kept = [old[0], *series("M1", (5,))]  # day 5 newly in view: not a partner
    view = ExchangeView(tuple(kept), expanded_series=frozenset({"M1"}))
    result = plan({p[0].key: p[0] for p in pairs}, {p[1].key: p[1] for p in pairs}, view,
                  OPTIONS, clock.now())  # fmt: skip
    assert kinds(result) == ["DeletePsa", "DeletePsa", "CreateInPsa"]


def test_a_deleted_series_deletes_its_occurrences() -> None:
    pairs = [uid_link(item, key(n)) for n, item in enumerate(series("M1", (1, 2)), start=1)]
    view = ExchangeView((), deleted=frozenset({"M1"}))
    result = plan({p[0].key: p[0] for p in pairs}, {p[1].key: p[1] for p in pairs}, view,
                  OPTIONS, clock.now())  # fmt: skip
    assert kinds(result) == ["DeletePsa", "DeletePsa"]


# --- conflicts --------------------------------------------------------------------------------


def test_both_sides_changed_origin_side_wins_and_conflict_is_recorded() -> None:
    psa_side = moved(visit(), 1)
    exchange_side = moved(visit(), 3)
    result = run(links=[linked(APPT, visit())], psa=[psa_item(APPT, psa_side)],
                 items=[ours(APPT, exchange_side, change_key="ck2")])  # fmt: skip
    assert kinds(result) == ["RecordConflict", "UpdateInExchange"]
    conflict, update = result.ops
    assert (conflict.fields, conflict.winner) == (TIMES, Side.PSA)
    assert update.record.start == psa_side.start and update.change_key == "ck2"


def test_both_sides_changed_an_imported_appointment_exchange_wins() -> None:
    link, item = imported_link()
    result = run(links=[link], psa=[dataclasses.replace(item, record=moved(item.record, 1))],
                 items=[foreign(moved(lunch(), 3), change_key="ck10")])  # fmt: skip
    assert kinds(result) == ["RecordConflict", "UpdatePsa"]
    assert result.ops[0].winner is Side.EXCHANGE
    assert result.ops[1].record.start == moved(lunch(), 3).start


def test_changes_to_different_fields_on_both_sides_both_survive() -> None:
    psa_side = dataclasses.replace(visit(), subject="Visit Acme")
    result = run(links=[linked(APPT, visit())], psa=[psa_item(APPT, psa_side)],
                 items=[ours(APPT, moved(visit()), change_key="ck2")])  # fmt: skip
    assert kinds(result) == ["UpdatePsa", "UpdateInExchange"]
    to_psa, to_exchange = result.ops
    assert to_psa.fields == TIMES and to_psa.record.start == moved(visit()).start
    assert to_exchange.fields == DETAILS and to_exchange.record.subject == "Visit Acme"
    # Should the Exchange write fail, the PSA's subject change must still look pending.
    assert to_psa.link.psa_digest.details != digest_record(psa_side).details


def test_both_sides_changed_to_the_same_value_is_not_a_conflict() -> None:
    same = moved(visit())
    result = run(links=[linked(APPT, visit())], psa=[psa_item(APPT, same)],
                 items=[ours(APPT, same, change_key="ck2")])  # fmt: skip
    op = only(result, o.Relink)
    assert op.link.psa_digest == op.link.exchange_digest == digest_record(same)


# --- identity, echoes, adoption ---------------------------------------------------------------


def test_tagged_item_without_link_is_adopted_not_duplicated() -> None:
    result = run(psa=[psa_item(APPT, visit())], items=[ours(APPT, visit())], full=True)
    op = only(result, o.LinkItems)
    assert (op.link.exchange_id, op.link.psa_digest) == ("ex1", digest_record(visit()))


def test_adopted_item_that_is_stale_is_brought_up_to_date() -> None:
    edited = dataclasses.replace(visit(), body="Edited after the crash")
    result = run(psa=[psa_item(APPT, edited)], items=[ours(APPT, visit())], full=True)
    assert kinds(result) == ["LinkItems", "UpdateInExchange"]
    assert result.ops[1].record == edited


def test_tagged_item_of_another_installation_is_treated_as_foreign() -> None:
    other = ExchangeItem("ex5", "ck5", visit(), psa_tag=PsaTag("inst-2", APPT))
    assert kinds(run(psa=[psa_item(APPT, visit())], items=[other])) == [
        "CreateInExchange",
        "CreateInPsa",
    ]


def test_duplicate_tagged_copies_are_reduced_to_one() -> None:
    result = run(links=[linked(APPT, visit())], psa=[psa_item(APPT, visit())],
                 items=[ours(APPT, visit()), ours(APPT, visit(), exchange_id="ex2")])  # fmt: skip
    op = only(result, o.DeleteInExchange)
    assert op.exchange_id == "ex2"


def test_our_tagged_item_whose_psa_item_is_gone_is_deleted() -> None:
    op = only(run(items=[ours(APPT, visit())]), o.DeleteInExchange)
    assert op.exchange_id == "ex1"


def test_item_moved_to_another_folder_is_relinked_by_its_tag() -> None:
    twin = ours(APPT, visit(), exchange_id="ex2", change_key="ck7")
    result = run(
        links=[linked(APPT, visit())], psa=[psa_item(APPT, visit())], items=[twin], deleted=["ex1"]
    )
    op = only(result, o.Relink)
    assert (op.link.exchange_id, op.link.change_key) == ("ex2", "ck7")


def test_lost_link_of_an_imported_appointment_is_refound_by_content() -> None:
    _, item = imported_link()
    op = only(run(psa=[item], items=[foreign(lunch())], full=True), o.LinkItems)
    assert op.link.exchange_id == "ex9" and op.link.origin is Side.EXCHANGE


def test_echo_of_our_own_write_plans_nothing() -> None:
    result = run(
        links=[linked(APPT, visit())], psa=[psa_item(APPT, visit())], items=[ours(APPT, visit())]
    )
    assert result.ops == ()


def test_change_key_bump_without_content_change_only_refreshes_the_baseline() -> None:
    result = run(links=[linked(APPT, visit())], psa=[psa_item(APPT, visit())],
                 items=[ours(APPT, visit(), change_key="ck2")])  # fmt: skip
    assert only(result, o.Relink).link.change_key == "ck2"


def test_an_item_replayed_by_the_feed_counts_once_in_its_latest_version() -> None:
    older, newer = (
        foreign(calendar("Draft"), change_key="ck1"),
        foreign(calendar("Final"), change_key="ck2"),
    )
    op = only(run(items=[older, newer]), o.CreateInPsa)
    assert (op.record.subject, op.link.change_key) == ("Final", "ck2")


def test_delete_of_an_unknown_id_is_a_no_op() -> None:
    assert run(deleted=["never-seen"]).ops == ()


def test_disabled_kind_stops_syncing_and_leaves_exchange_items_alone() -> None:
    options = dataclasses.replace(OPTIONS, export_kinds=frozenset({ItemKind.CONTACT}))
    result = run(links=[linked(APPT, visit())], psa=[psa_item(key(2), visit())], options=options)
    assert result.ops == ()


def test_all_day_items_stay_all_day() -> None:
    day = calendar("Holiday", is_all_day=True, hours=24)
    assert only(run(psa=[psa_item(APPT, day)]), o.CreateInExchange).record.is_all_day


# --- mass-delete guard ------------------------------------------------------------------------


def many(count: int) -> tuple[list[Link], list[PsaItem]]:
    keys = [key(n) for n in range(1, count + 1)]
    links = [linked(k, visit(), exchange_id=f"ex{k.psa_id}") for k in keys]
    return links, [psa_item(k, visit()) for k in keys]


def test_mass_delete_guard_stops_destructive_ops() -> None:
    links, _ = many(30)
    result = run(links=links, psa=[psa_item(key(99), visit())])  # the PSA looks empty
    assert result.guard_tripped
    assert kinds(result) == ["CreateInExchange"]  # the safe ops still go ahead
    assert len(result.withheld) == 30


def test_mass_delete_guard_also_watches_an_exchange_that_looks_empty() -> None:
    links, items = many(30)
    result = run(links=links, psa=items, full=True)  # a full read that found nothing
    assert result.guard_tripped and result.ops == ()


def test_mass_delete_guard_lets_ordinary_deletes_through() -> None:
    links, items = many(30)
    result = run(links=links, psa=items[:10])  # 20 deletes: not more than 20
    assert not result.guard_tripped
    assert kinds(result) == ["DeleteInExchange"] * 20


def test_mass_delete_guard_can_be_overridden_by_an_admin() -> None:
    links, _ = many(30)
    options = dataclasses.replace(OPTIONS, guard_overridden=True)
    assert kinds(run(links=links, options=options)) == ["DeleteInExchange"] * 30
