"""PSA values ⇄ records: every import mode, private and free time, show-as, bodies, contacts."""

from __future__ import annotations

import dataclasses

import pytest

from exchange_ext.sync.mapping import (
    AccountValues,
    AppointmentValues,
    ContactValues,
    ServiceCallValues,
    TicketValues,
    TodoValues,
    appointment_record,
    appointment_values,
    contact_record,
    exchange_details,
    import_record,
    is_importable,
    service_call_record,
    show_as_from_psa,
    show_as_to_psa,
    todo_record,
)
from exchange_ext.sync.records import CalendarRecord, ImportMode, ShowAs
from tests.unit.sync.factories import OPTIONS, at, calendar, foreign

ACME = AccountValues("Acme Ltd", "1 Main St, 1000 Springfield", "+1 555 0100")


@pytest.mark.parametrize(
    ("psa_value", "exchange_value"),
    [
        ("busy", ShowAs.BUSY),
        ("free", ShowAs.FREE),
        ("tentative", ShowAs.TENTATIVE),
        ("oof", ShowAs.OOF),
    ],
)
def test_show_as_maps_both_ways(psa_value: str, exchange_value: ShowAs) -> None:
    assert show_as_from_psa(psa_value) is exchange_value
    assert show_as_to_psa(exchange_value) == psa_value


def test_working_elsewhere_arrives_in_the_psa_as_free() -> None:
    assert show_as_to_psa(ShowAs.WORKING_ELSEWHERE) == "free"


def test_appointment_values_round_trip_through_the_record() -> None:
    values = AppointmentValues(
        "Visit", "Bring cables", at(1), at(1, 2), False, "Site", "tentative", True, "Europe/Paris"
    )
    assert appointment_values(appointment_record(values)) == values


def test_service_call_body_has_account_tickets_description_and_deep_link() -> None:
    values = ServiceCallValues(
        psa_id=42,
        account=ACME,
        description="Replace the firewall.\r\n",
        start=at(1),
        end=at(1, 2),
        tickets=(TicketValues("T-1", "Firewall down"), TicketValues("T-2", "VPN")),
    )
    record = service_call_record(values, "https://psa.example/")
    assert record.body.splitlines() == [
        "Account: Acme Ltd",
        "Phone: +1 555 0100",
        "Ticket T-1: Firewall down",
        "Ticket T-2: VPN",
        "",
        "Replace the firewall.",
        "",
        "Open in PSA: https://psa.example/calendar/service-calls/42/",
    ]
    assert record.location == "1 Main St, 1000 Springfield"
    assert record.show_as is ShowAs.BUSY


def test_service_call_location_override_wins_over_account_address() -> None:
    values = ServiceCallValues(1, ACME, "x", at(1), at(1, 1), location_override="Remote")
    assert service_call_record(values, "https://psa.example").location == "Remote"


@pytest.mark.parametrize(
    ("status", "show_as"),
    [
        ("new", ShowAs.BUSY),
        ("scheduled", ShowAs.BUSY),
        ("complete", ShowAs.FREE),
        ("cancelled", ShowAs.FREE),
    ],
)
def test_completed_or_cancelled_service_call_shows_as_free(status: str, show_as: ShowAs) -> None:
    values = ServiceCallValues(1, ACME, "x", at(1), at(1, 1), status=status)
    assert service_call_record(values, "https://psa.example").show_as is show_as


def test_todo_body_has_account_contact_and_deep_link() -> None:
    values = TodoValues(
        psa_id=7,
        account=ACME,
        action_type="Phone call",
        description="Call back about renewal\nmore",
        start=at(1),
        end=at(1, 0.5),
        contact_name="Jane Doe",
        contact_phone="+1 555 0101",
    )
    record = todo_record(values, "https://psa.example")
    assert record.subject == "Phone call: Call back about renewal"
    assert "Account: Acme Ltd" in record.body
    assert "Contact: Jane Doe, +1 555 0101" in record.body
    assert record.body.endswith("Open in PSA: https://psa.example/calendar/todos/7/")


def test_completed_todo_shows_as_free() -> None:
    values = TodoValues(7, ACME, "Email", "Send quote", at(1), at(1, 1), completed=True)
    assert todo_record(values, "https://psa.example").show_as is ShowAs.FREE


def test_contact_fields_are_mapped_with_at_most_three_emails() -> None:
    values = ContactValues(
        "Jane", "Doe", "CTO", "Acme Ltd", ("a@x.test", "", "b@x.test", "c@x.test", "d@x.test"),
        "+1 1", "+1 2", "+1 3", "1 Main St", "Springfield", "IL", "1000", "US",
    )  # fmt: skip
    record = contact_record(values)
    assert record.emails == ("a@x.test", "b@x.test", "c@x.test")
    assert (record.given_name, record.surname, record.job_title, record.company_name) == (
        "Jane", "Doe", "CTO", "Acme Ltd",
    )  # fmt: skip
    assert (record.business_phone, record.mobile_phone, record.business_fax) == (
        "+1 1",
        "+1 2",
        "+1 3",
    )
    assert (record.street, record.city, record.state, record.postal_code, record.country) == (
        "1 Main St", "Springfield", "IL", "1000", "US",
    )  # fmt: skip
    assert record.display_name == "Jane Doe"


def outlook() -> CalendarRecord:
    """A meeting made in Outlook, tomorrow (from the pinned clock)."""
    return calendar("Board meeting", body="Agenda", location="Room 1", show_as=ShowAs.TENTATIVE)


@pytest.mark.parametrize(
    ("mode", "private", "subject", "body", "location"),
    [
        (ImportMode.ALL, False, "Board meeting", "Agenda\n\nAttendees: ann@x.test", "Room 1"),
        (ImportMode.TIMES_ONLY, False, "Appointment", "", ""),
        (ImportMode.ALL, True, "Appointment", "", ""),
        (ImportMode.TIMES_ONLY, True, "Appointment", "", ""),
    ],
)
def test_import_record_per_import_mode_and_privacy(
    mode: ImportMode, private: bool, subject: str, body: str, location: str
) -> None:
    item = foreign(dataclasses.replace(outlook(), is_private=private), attendees=("ann@x.test",))
    record = import_record(item, dataclasses.replace(OPTIONS, import_mode=mode))
    assert (record.subject, record.body, record.location) == (subject, body, location)
    assert (record.start, record.end, record.show_as) == (
        outlook().start,
        outlook().end,
        ShowAs.TENTATIVE,
    )


def test_import_maps_working_elsewhere_to_free() -> None:
    item = foreign(dataclasses.replace(outlook(), show_as=ShowAs.WORKING_ELSEWHERE))
    assert import_record(item, OPTIONS).show_as is ShowAs.FREE


@pytest.mark.parametrize(
    ("mode", "free_time", "show_as", "importable"),
    [
        (ImportMode.ALL, True, ShowAs.FREE, True),
        (ImportMode.ALL, False, ShowAs.FREE, False),
        (ImportMode.ALL, False, ShowAs.WORKING_ELSEWHERE, False),
        (ImportMode.ALL, False, ShowAs.BUSY, True),
        (ImportMode.TIMES_ONLY, False, ShowAs.OOF, True),
        (ImportMode.NONE, True, ShowAs.BUSY, False),
    ],
)
def test_is_importable_follows_import_mode_and_free_time_filter(
    mode: ImportMode, free_time: bool, show_as: ShowAs, importable: bool
) -> None:
    options = dataclasses.replace(OPTIONS, import_mode=mode, import_free_time=free_time)
    item = foreign(dataclasses.replace(outlook(), show_as=show_as))
    assert is_importable(item, options) is importable


def test_details_written_back_leave_out_the_attendees_line() -> None:
    item = foreign(outlook(), attendees=("ann@x.test", "bob@x.test"))
    assert exchange_details(import_record(item, OPTIONS)).body == "Agenda"
