"""PSA values ⇄ neutral records, per kind.

The inputs are plain frozen dataclasses (``*Values``) that the ORM adapter fills from PSA
models; nothing here knows Django. Export functions build the record written to Exchange;
:func:`import_record` builds the PSA side of an Exchange appointment per the import mode, in a
form the PSA can store (:func:`storable_in_psa`), and :func:`exchange_details` undoes that on
the way back.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

from exchange_ext.sync.labels import ENGLISH, ItemLabels
from exchange_ext.sync.records import (
    CalendarRecord,
    ContactRecord,
    ExchangeItem,
    ImportMode,
    ItemKind,
    ShowAs,
    SyncOptions,
)

# The PSA's show-as values (Appointment.ShowAs) and Exchange's, both ways.
_PSA_TO_SHOW_AS = {
    "busy": ShowAs.BUSY,
    "free": ShowAs.FREE,
    "tentative": ShowAs.TENTATIVE,
    "oof": ShowAs.OOF,
}
_SHOW_AS_TO_PSA = {value: key for key, value in _PSA_TO_SHOW_AS.items()}
# The PSA has no "working elsewhere": the resource is reachable, so it does not block time.
_SHOW_AS_TO_PSA[ShowAs.WORKING_ELSEWHERE] = "free"

# What a private or detail-less import is titled (as Autotask does). Stored in English: the PSA
# shows it in the viewer's language (psa/scheduling/models.py, Appointment.display_title).
PLACEHOLDER_SUBJECT = "Appointment"
_ATTENDEES_PREFIX = "\n\nAttendees: "

# What the PSA stores (psa/scheduling/models.py, Appointment: title and location are at most
# 255 characters, the title is required, an appointment ends after it starts; a to-do may be
# due when it starts). A test pins these to the model. docs/sync-rules.md, "Items the PSA
# cannot store as they are".
PSA_TEXT_MAX = 255
UNTITLED_SUBJECT = "(No subject)"
ELLIPSIS = "…"
SHORTEST_APPOINTMENT = dt.timedelta(minutes=1)
SHORTEST_ALL_DAY = dt.timedelta(days=1)
_FULL_SUBJECT_PREFIX = "\n\nFull subject: "
_FULL_LOCATION_PREFIX = "\n\nFull location: "


@dataclass(frozen=True)
class AppointmentValues:
    """The synced fields of a PSA Appointment (``show_as`` in the PSA's vocabulary)."""

    title: str
    description: str
    start: dt.datetime
    end: dt.datetime
    all_day: bool = False
    location: str = ""
    show_as: str = "busy"
    private: bool = False
    time_zone: str = "UTC"


@dataclass(frozen=True)
class AccountValues:
    name: str
    address_text: str = ""
    phone: str = ""


@dataclass(frozen=True)
class TicketValues:
    number: str
    title: str


@dataclass(frozen=True)
class ServiceCallValues:
    """A service call as one assigned resource's copy sees it."""

    psa_id: int
    account: AccountValues
    description: str
    start: dt.datetime
    end: dt.datetime
    status: str = "new"
    location_override: str = ""
    tickets: tuple[TicketValues, ...] = ()
    time_zone: str = "UTC"


@dataclass(frozen=True)
class TodoValues:
    psa_id: int
    account: AccountValues
    action_type: str
    description: str
    start: dt.datetime
    end: dt.datetime
    contact_name: str = ""
    contact_phone: str = ""
    contact_email: str = ""
    completed: bool = False
    time_zone: str = "UTC"


@dataclass(frozen=True)
class ContactValues:
    first_name: str
    last_name: str
    title: str = ""
    account_name: str = ""
    emails: tuple[str, ...] = ()
    business_phone: str = ""
    mobile_phone: str = ""
    fax: str = ""
    street: str = ""
    city: str = ""
    state: str = ""
    postal_code: str = ""
    country: str = ""


# --- show-as ----------------------------------------------------------------------------------


def show_as_from_psa(value: str) -> ShowAs:
    """Map a PSA show-as value; an unknown one counts as busy (the safe side for scheduling)."""
    return _PSA_TO_SHOW_AS.get(value, ShowAs.BUSY)


def show_as_to_psa(value: ShowAs) -> str:
    """Map an Exchange show-as to the PSA's; WorkingElsewhere becomes free."""
    return _SHOW_AS_TO_PSA[value]


# --- PSA → record -----------------------------------------------------------------------------


def appointment_record(values: AppointmentValues) -> CalendarRecord:
    """The record of a PSA appointment, as exported (and as compared for imported ones)."""
    return CalendarRecord(
        subject=values.title,
        body=values.description,
        start=values.start,
        end=values.end,
        is_all_day=values.all_day,
        location=values.location,
        show_as=show_as_from_psa(values.show_as),
        is_private=values.private,
        time_zone=values.time_zone,
    )


def appointment_values(record: CalendarRecord) -> AppointmentValues:
    """The PSA appointment fields holding ``record`` (inverse of :func:`appointment_record`)."""
    return AppointmentValues(
        title=record.subject,
        description=record.body,
        start=record.start,
        end=record.end,
        all_day=record.is_all_day,
        location=record.location,
        show_as=show_as_to_psa(record.show_as),
        private=record.is_private,
        time_zone=record.time_zone,
    )


def deep_link(base_url: str, path: str, labels: ItemLabels = ENGLISH) -> str:
    return labels.render("open_in_psa", url=f"{base_url.rstrip('/')}/{path.strip('/')}/")


def service_call_record(
    values: ServiceCallValues, base_url: str, labels: ItemLabels = ENGLISH
) -> CalendarRecord:
    """A service call's copy: account, tickets, description and a deep link in the body;
    located at the account unless overridden; Free once completed or cancelled. The words are
    ``labels`` (the resource's language)."""
    closed = values.status in ("complete", "cancelled")
    return CalendarRecord(
        subject=labels.render("service_call_subject", account=values.account.name),
        body=_service_call_body(values, base_url, labels),
        start=values.start,
        end=values.end,
        location=values.location_override or values.account.address_text,
        show_as=ShowAs.FREE if closed else ShowAs.BUSY,
        time_zone=values.time_zone,
    )


def _service_call_body(values: ServiceCallValues, base_url: str, labels: ItemLabels) -> str:
    lines = [labels.render("account_line", name=values.account.name)]
    if values.account.phone:
        lines.append(labels.render("phone_line", phone=values.account.phone))
    lines += [
        labels.render("ticket_line", number=ticket.number, title=ticket.title)
        for ticket in values.tickets
    ]
    lines += ["", values.description.strip(), ""]
    lines.append(deep_link(base_url, f"calendar/service-calls/{values.psa_id}", labels))
    return "\n".join(lines)


def todo_record(values: TodoValues, base_url: str, labels: ItemLabels = ENGLISH) -> CalendarRecord:
    """A to-do as a calendar appointment: account/contact in the body, a deep link; completed
    to-dos are shown as Free (they no longer take the resource's time). The words are
    ``labels`` (the resource's language)."""
    first_line = next(iter(values.description.strip().splitlines()), "")
    subject = values.action_type
    if first_line:
        subject = labels.render("todo_subject", action=values.action_type, summary=first_line)
    return CalendarRecord(
        subject=subject.rstrip(": "),
        body=_todo_body(values, base_url, labels),
        start=values.start,
        end=values.end,
        show_as=ShowAs.FREE if values.completed else ShowAs.BUSY,
        time_zone=values.time_zone,
    )


def _todo_body(values: TodoValues, base_url: str, labels: ItemLabels) -> str:
    lines = [labels.render("account_line", name=values.account.name)]
    if values.contact_name:
        contact = [values.contact_name, values.contact_phone, values.contact_email]
        lines.append(
            labels.render("contact_line", contact=", ".join(part for part in contact if part))
        )
    lines += ["", values.description.strip(), ""]
    lines.append(deep_link(base_url, f"calendar/todos/{values.psa_id}", labels))
    return "\n".join(lines)


def contact_record(values: ContactValues) -> ContactRecord:
    """A contact as exported: names, title, company, up to three emails, phones, address."""
    return ContactRecord(
        given_name=values.first_name,
        surname=values.last_name,
        job_title=values.title,
        company_name=values.account_name,
        emails=tuple(email for email in values.emails if email)[:3],
        business_phone=values.business_phone,
        mobile_phone=values.mobile_phone,
        business_fax=values.fax,
        street=values.street,
        city=values.city,
        state=values.state,
        postal_code=values.postal_code,
        country=values.country,
    )


# --- Exchange → PSA ---------------------------------------------------------------------------


def is_importable(item: ExchangeItem, options: SyncOptions) -> bool:
    """Whether an Exchange appointment nobody linked yet may be imported into the PSA."""
    record = item.record
    if options.import_mode is ImportMode.NONE or not isinstance(record, CalendarRecord):
        return False
    return options.import_free_time or show_as_to_psa(record.show_as) != "free"


def import_record(item: ExchangeItem, options: SyncOptions) -> CalendarRecord:
    """The PSA side of an Exchange appointment per the import mode.

    Private items and the "without details" mode keep only times and availability, titled
    "Appointment"; "with all details" adds the attendees to the description.
    """
    record = item.record
    assert isinstance(record, CalendarRecord)  # callers check is_importable first
    show_as = show_as_from_psa(show_as_to_psa(record.show_as))
    if record.is_private or options.import_mode is not ImportMode.ALL:
        placeholder = replace(
            record, subject=PLACEHOLDER_SUBJECT, body="", location="", show_as=show_as
        )
        return storable_in_psa(placeholder)
    imported = replace(record, body=with_attendees(record.body, item.attendees), show_as=show_as)
    return storable_in_psa(imported)


def with_attendees(body: str, attendees: tuple[str, ...]) -> str:
    return body + _ATTENDEES_PREFIX + ", ".join(attendees) if attendees else body


def without_attendees(body: str) -> str:
    """The body without the attendees line :func:`with_attendees` added (for writing back)."""
    head, separator, _ = body.rpartition(_ATTENDEES_PREFIX)
    return head if separator else body


def exchange_details(psa_record: CalendarRecord) -> CalendarRecord:
    """What to write to Exchange from the PSA side of an Exchange-origin appointment.

    The lines the import added to the description go; a subject or location the import
    shortened goes back in full and "(No subject)" as no subject, unless the PSA changed that
    field since: what the PSA could not store is never written over what Exchange holds.
    """
    body, location = _restored(psa_record.body, _FULL_LOCATION_PREFIX, psa_record.location)
    body, subject = _restored(body, _FULL_SUBJECT_PREFIX, psa_record.subject)
    subject = "" if subject == UNTITLED_SUBJECT else subject
    return replace(psa_record, subject=subject, location=location, body=without_attendees(body))


# --- what the PSA can store ---------------------------------------------------------------


def storable_in_psa(record: CalendarRecord) -> CalendarRecord:
    """``record`` as a PSA appointment can hold it (docs/sync-rules.md, "Items the PSA cannot
    store as they are").

    NUL characters are dropped (a database refuses them); a subject or location over
    :data:`PSA_TEXT_MAX` characters is shortened with an ellipsis, the full text kept at the
    end of the description; a blank subject becomes :data:`UNTITLED_SUBJECT`; the times as
    :func:`storable_times`. Idempotent; a record the PSA can store (not blank-titled) is
    returned as it is, so its digests stay what they were before these rules existed.
    """
    subject, body = _fitted(_no_nul(record.subject), _no_nul(record.body), _FULL_SUBJECT_PREFIX)
    location, body = _fitted(_no_nul(record.location), body, _FULL_LOCATION_PREFIX)
    subject = subject if subject.strip() else UNTITLED_SUBJECT
    fitted = replace(record, subject=subject, body=body, location=location)
    return storable_times(fitted, ItemKind.APPOINTMENT)


def storable_times(record: CalendarRecord, kind: ItemKind) -> CalendarRecord:
    """``record`` with times the PSA stores for ``kind``.

    An appointment must end after it starts: a zero-length or inverted one keeps its start and
    lasts :data:`SHORTEST_APPOINTMENT` (:data:`SHORTEST_ALL_DAY` when all-day). A to-do may be
    due when it starts, not before. Other kinds take no times from Exchange: unchanged.
    """
    if kind is ItemKind.TODO:
        return record if record.end >= record.start else replace(record, end=record.start)
    if kind is not ItemKind.APPOINTMENT or record.end > record.start:
        return record
    shortest = SHORTEST_ALL_DAY if record.is_all_day else SHORTEST_APPOINTMENT
    return replace(record, end=record.start + shortest)


def shortened(text: str) -> str:
    """``text`` cut to :data:`PSA_TEXT_MAX` characters, ending in an ellipsis when cut."""
    if len(text) <= PSA_TEXT_MAX:
        return text
    return text[: PSA_TEXT_MAX - len(ELLIPSIS)].rstrip() + ELLIPSIS


def _no_nul(text: str) -> str:
    return text.replace("\x00", "")


def _fitted(text: str, body: str, prefix: str) -> tuple[str, str]:
    """``text`` shortened to fit the PSA, and ``body`` with the full text added if it was."""
    if len(text) <= PSA_TEXT_MAX:
        return text, body
    return shortened(text), body + prefix + text


def _restored(body: str, prefix: str, text: str) -> tuple[str, str]:
    """``body`` without the full-text line :func:`_fitted` added, and the text to write back:
    the full one while the PSA still holds its shortened form, else the PSA's own."""
    head, separator, full = body.rpartition(prefix)
    if not separator:
        return body, text
    return head, full if text == shortened(full) else text
