"""Calendar items through real exchangelib against the sandbox: CRUD, conflicts, recurring series,
extended properties, meeting messages and bulk writes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from exchangelib import (
    Account,
    Attendee,
    CalendarItem,
    EWSDateTime,
    EWSTimeZone,
    ExtendedProperty,
    HTMLBody,
    Mailbox,
)
from exchangelib.errors import ErrorIrresolvableConflict, ErrorItemNotFound
from exchangelib.items import NEVER_OVERWRITE, SEND_ONLY_TO_ALL, SEND_TO_ALL_AND_SAVE_COPY
from exchangelib.recurrence import DailyPattern, NumberedPattern, Recurrence, WeeklyPattern

BERLIN = EWSTimeZone("Europe/Berlin")
UTC = dt.UTC


class PsaTag(ExtendedProperty):
    property_set_id = "3f2c1e6a-8b7d-4c5e-9a1b-2d3e4f5a6b7c"
    property_name = "PsaItemKey"
    property_type = "String"


@pytest.fixture
def psa_tag() -> Iterator[None]:
    CalendarItem.register("sandbox_tag", PsaTag)
    yield
    CalendarItem.deregister("sandbox_tag")


def berlin(day: int, hour: int, month: int = 3) -> EWSDateTime:
    return EWSDateTime(2025, month, day, hour, tzinfo=BERLIN)


def new_item(
    account: Account, subject: str, day: int = 3, month: int = 3, **fields: object
) -> CalendarItem:
    return CalendarItem(
        account=account, folder=account.calendar, subject=subject, start=berlin(day, 9, month),
        end=berlin(day, 10, month), **fields,
    )  # fmt: skip


def test_calendar_item_round_trips_every_synced_field(service_account: Account) -> None:
    item = new_item(
        service_account, "Kick-off", body=HTMLBody("<p>Agenda</p>"), categories=["PSA", "Blue"],
        location="Room 1", sensitivity="Private", legacy_free_busy_status="WorkingElsewhere",
        reminder_is_set=True, reminder_minutes_before_start=30,
    )  # fmt: skip
    item.save()

    got = service_account.calendar.get(id=item.id)

    assert (got.subject, got.location, got.sensitivity) == ("Kick-off", "Room 1", "Private")
    assert got.body == "<p>Agenda</p>" and isinstance(got.body, HTMLBody)
    assert got.categories == ["PSA", "Blue"]
    assert got.legacy_free_busy_status == "WorkingElsewhere"
    assert (got.reminder_is_set, got.reminder_minutes_before_start) == (True, 30)
    assert got.start == berlin(3, 9) and got.end == berlin(3, 10)
    assert got._start_timezone == BERLIN
    assert got.type == "Single" and got.uid
    assert got.changekey == item.changekey


def test_update_assigns_a_new_changekey_and_delete_removes_the_item(
    service_account: Account,
) -> None:
    item = new_item(service_account, "Draft")
    item.save()
    first_key = item.changekey

    item.subject, item.start, item.end = "Final", berlin(4, 11), berlin(4, 12)
    item.save(update_fields=["subject", "start", "end"])
    got = service_account.calendar.get(id=item.id)

    assert item.changekey != first_key
    assert (got.subject, got.start) == ("Final", berlin(4, 11))
    item.delete()
    with pytest.raises(ErrorItemNotFound):
        service_account.calendar.get(id=got.id)


def test_stale_changekey_with_never_overwrite_is_an_irresolvable_conflict(
    service_account: Account,
) -> None:
    item = new_item(service_account, "Original")
    item.save()
    stale = service_account.calendar.get(id=item.id)
    item.subject = "Changed in Outlook"
    item.save(update_fields=["subject"])

    stale.subject = "Changed by the PSA"
    with pytest.raises(ErrorIrresolvableConflict):
        stale.save(update_fields=["subject"], conflict_resolution=NEVER_OVERWRITE)
    stale.save(update_fields=["subject"])  # AutoResolve overwrites

    assert service_account.calendar.get(id=item.id).subject == "Changed by the PSA"


def test_recurring_series_shows_modified_and_deleted_occurrences_in_calendar_view(
    service_account: Account,
) -> None:
    master = new_item(
        service_account, "Daily stand-up", day=3,
        recurrence=Recurrence(pattern=DailyPattern(interval=1), start=dt.date(2025, 3, 3),
                              number=5),
    )  # fmt: skip
    master.save()
    window = (berlin(1, 0), berlin(15, 0))
    occurrences = list(service_account.calendar.view(*window))
    assert [o.type for o in occurrences] == ["Occurrence"] * 5

    moved = occurrences[1]
    moved.subject, moved.start, moved.end = "Moved stand-up", berlin(4, 14), berlin(4, 15)
    moved.save(update_fields=["subject", "start", "end"])
    occurrences[3].delete()

    view = list(service_account.calendar.view(*window))
    assert [(o.type, o.start.astimezone(BERLIN).day) for o in view] == [
        ("Occurrence", 3), ("Exception", 4), ("Occurrence", 5), ("Occurrence", 7),
    ]  # fmt: skip
    assert view[1].subject == "Moved stand-up" and view[1].start == berlin(4, 14)
    got = service_account.calendar.get(id=master.id)
    assert got.type == "RecurringMaster"
    assert [o.start for o in got.deleted_occurrences] == [berlin(6, 9)]
    assert [o.start for o in got.modified_occurrences] == [berlin(4, 14)]


def test_weekly_series_keeps_wall_clock_time_across_daylight_saving(
    service_account: Account,
) -> None:
    master = new_item(
        service_account, "Weekly review", day=24, month=3,
        recurrence=Recurrence(pattern=WeeklyPattern(interval=1, weekdays=[1]),
                              boundary=NumberedPattern(start=dt.date(2025, 3, 24), number=3)),
    )  # fmt: skip
    master.save()

    view = service_account.calendar.view(berlin(20, 0), berlin(15, 0, month=4))

    assert [o.start.astimezone(BERLIN).hour for o in view] == [9, 9, 9]


def test_occurrence_is_addressable_from_its_master_by_index(service_account: Account) -> None:
    master = new_item(
        service_account, "Series",
        recurrence=Recurrence(pattern=DailyPattern(interval=2), start=dt.date(2025, 3, 3),
                              number=3),
    )  # fmt: skip
    master.save()

    third = master.occurrence(index=3)
    third.refresh()

    assert third.start == berlin(7, 9) and third.type == "Occurrence"
    assert third.recurring_master().refresh().subject == "Series"


def test_calendar_view_longer_than_two_years_is_refused(service_account: Account) -> None:
    from exchangelib.errors import ErrorCalendarViewRangeTooBig

    with pytest.raises(ErrorCalendarViewRangeTooBig):
        list(service_account.calendar.view(berlin(1, 0), berlin(1, 0).replace(year=2028)))


def test_extended_property_tags_round_trip_and_filter(
    service_account: Account, psa_tag: None
) -> None:
    for key in ("psa:appt:1", "psa:appt:2"):
        new_item(service_account, f"Tagged {key}", sandbox_tag=key).save()
    new_item(service_account, "Untagged").save()

    found = list(
        service_account.calendar.filter(sandbox_tag="psa:appt:2").only("subject", "sandbox_tag")
    )

    assert [(i.subject, i.sandbox_tag) for i in found] == [("Tagged psa:appt:2", "psa:appt:2")]


def test_meeting_invitations_and_cancellations_are_recorded_not_sent(
    sandbox, service_account: Account
) -> None:
    item = new_item(
        service_account, "Site visit",
        required_attendees=[Attendee(mailbox=Mailbox(email_address="tech2@northwind.example"))],
    )  # fmt: skip
    item.save(send_meeting_invitations=SEND_TO_ALL_AND_SAVE_COPY)
    new_item(service_account, "No invitations").save()
    item.delete(send_meeting_cancellations=SEND_ONLY_TO_ALL)

    messages = sandbox.state.outbox.messages
    assert [(m["type"], m["subject"], m["to"]) for m in messages] == [
        ("MeetingRequest", "Site visit", ["tech2@northwind.example"]),
        ("MeetingCancellation", "Site visit", ["tech2@northwind.example"]),
    ]


def test_bulk_create_of_a_thousand_items_pages_back_completely(service_account: Account) -> None:
    items = [
        CalendarItem(subject=f"Bulk {n}", start=berlin(10, 8) + dt.timedelta(minutes=n),
                     end=berlin(10, 8) + dt.timedelta(minutes=n + 30))
        for n in range(1000)
    ]  # fmt: skip

    results = service_account.bulk_create(folder=service_account.calendar, items=items)

    assert len(results) == 1000 and all(r.id for r in results)
    assert service_account.calendar.all().count() == 1000
    subjects = {i.subject for i in service_account.calendar.all().only("subject")}
    assert len(subjects) == 1000


def test_filters_on_common_fields_sort_and_page(service_account: Account) -> None:
    for day, subject, categories in [(5, "Beta", ["Red"]), (3, "Alpha", ["Blue"]),
                                     (4, "Gamma", ["Red", "Blue"])]:  # fmt: skip
        new_item(service_account, subject, day=day, categories=categories).save()
    calendar = service_account.calendar

    by_start = [i.subject for i in calendar.filter(start__gte=berlin(4, 0)).order_by("start")]
    red = [i.subject for i in calendar.filter(categories__contains=["Red"]).order_by("-subject")]
    paged = [i.subject for i in calendar.all().order_by("subject")[1:3]]

    assert by_start == ["Gamma", "Beta"]
    assert red == ["Gamma", "Beta"]
    assert paged == ["Beta", "Gamma"]


def test_update_without_changekey_requires_one(service_account: Account) -> None:
    from exchangelib.errors import ErrorChangeKeyRequired

    item = new_item(service_account, "Keyless")
    item.save()
    item._id = type(item._id)(id=item.id, changekey=None)
    item.subject = "Still keyless"

    with pytest.raises(ErrorChangeKeyRequired):
        service_account.bulk_update([(item, ["subject"])])
