"""Records ⇄ exchangelib items: which EWS fields carry a record, and how they are written.

Calendar items are written in the record's own time zone (``StartTimeZone``/``EndTimeZone``),
so Outlook shows them at the wall-clock time the PSA meant and DST moves with the zone; all-day
items are written as all-day (midnight to midnight in that zone). Privacy is
``Sensitivity=Private`` (EWS has no "is private"); show-as is ``LegacyFreeBusyStatus``.
Contacts carry names, job, company, three e-mail addresses, three phone numbers and the
business address.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterable

from exchangelib import CalendarItem, Contact, EWSDateTime, EWSTimeZone
from exchangelib.extended_properties import ExtendedProperty
from exchangelib.fields import FieldPath
from exchangelib.indexed_properties import EmailAddress, PhoneNumber, PhysicalAddress
from exchangelib.items import Item
from exchangelib.properties import Body, Mailbox

from exchange_ext.backends.tag_property import (
    PSA_TAG_PROPERTY_NAME,
    PSA_TAG_PROPERTY_SET_ID,
    PSA_TAG_PROPERTY_TYPE,
)
from exchange_ext.sync.records import (
    CalendarItemType,
    CalendarRecord,
    ContactRecord,
    ExchangeItem,
    FieldGroup,
    PsaTag,
    Record,
    ShowAs,
    parse_tag,
)

_UTC = EWSTimeZone("UTC")

#: The attribute name under which the tag property is registered on item classes.
TAG_ATTRIBUTE = "psa_tag"


class PsaTagProperty(ExtendedProperty):
    """The tag as exchangelib addresses it (see :mod:`exchange_ext.backends.tag_property`)."""

    property_set_id = PSA_TAG_PROPERTY_SET_ID
    property_name = PSA_TAG_PROPERTY_NAME
    property_type = PSA_TAG_PROPERTY_TYPE


_register_lock = threading.Lock()


def register_tag_property() -> None:
    """Register the tag on CalendarItem and Contact once per process (idempotent, thread-safe).

    exchangelib's registration is class-global and raises on a second ``register``.
    """
    with _register_lock:
        for item_class in (CalendarItem, Contact):
            if not any(f.name == TAG_ATTRIBUTE for f in item_class.FIELDS):
                item_class.register(TAG_ATTRIBUTE, PsaTagProperty)


# --- which fields are read and written --------------------------------------------------------

_CALENDAR_TIMES = ("start", "end", "is_all_day")
_SUBJECT_MAX = 255  # exchangelib's CharField limit for item:Subject
_CALENDAR_DETAILS = ("subject", "body", "location", "legacy_free_busy_status", "sensitivity")
_CALENDAR_FACTS = (
    "type", "original_start", "uid", "my_response_type", "organizer", "required_attendees",
    "optional_attendees", "_start_timezone", "_end_timezone",
)  # fmt: skip
_CONTACT_DETAILS = (
    "display_name", "given_name", "surname", "job_title", "company_name", "email_addresses",
    "phone_numbers", "physical_addresses",
)  # fmt: skip


def read_field_paths(item_class: type[Item]) -> set[FieldPath]:
    """The fields a full read of ``item_class`` asks for (GetItem AdditionalProperties)."""
    names = _read_names(item_class)
    return {FieldPath(field=item_class.get_field_by_fieldname(name)) for name in names}


def _read_names(item_class: type[Item]) -> tuple[str, ...]:
    if item_class is Contact:
        return (*_CONTACT_DETAILS, TAG_ATTRIBUTE)
    return (*_CALENDAR_TIMES, *_CALENDAR_DETAILS, *_CALENDAR_FACTS, TAG_ATTRIBUTE)


def update_field_names(record: Record, groups: Iterable[FieldGroup]) -> list[str]:
    """The item fields an update of ``groups`` writes (exchangelib adds the time zone fields).

    A subject too long for EWS to write (:func:`keeps_its_subject`) is left as it is.
    """
    if isinstance(record, ContactRecord):
        return list(_CONTACT_DETAILS) if FieldGroup.DETAILS in groups else []
    names: list[str] = []
    if FieldGroup.TIMES in groups:
        names += _CALENDAR_TIMES
    if FieldGroup.DETAILS in groups:
        names += [n for n in _CALENDAR_DETAILS if n != "subject" or not keeps_its_subject(record)]
    return names


def keeps_its_subject(record: CalendarRecord) -> bool:
    """Whether an update leaves the item's subject alone: exchangelib writes at most 255
    characters, and a longer subject in an update is the item's own, which the PSA keeps
    shortened and hands back in full (docs/sync-rules.md, "Items the PSA cannot store as they
    are"), so Exchange already holds it."""
    return len(record.subject) > _SUBJECT_MAX


def item_for_update(record: Record) -> Item:
    """The item an update of ``record`` sends its fields from (see :func:`update_field_names`)."""
    item = item_for(record)
    if isinstance(record, CalendarRecord) and keeps_its_subject(record):
        item.subject = None  # not sent; exchangelib would refuse the whole item
    return item


# --- record → item ----------------------------------------------------------------------------


def item_for(record: Record, tag: PsaTag | None = None) -> Item:
    """A new exchangelib item holding ``record`` (and ``tag``, when given)."""
    item = _calendar_item(record) if isinstance(record, CalendarRecord) else _contact(record)
    if tag is not None:
        setattr(item, TAG_ATTRIBUTE, str(tag))
    return item


def _text(value: str) -> str | None:
    # An empty value is "no value": exchangelib then sends DeleteItemField on update.
    return value or None


def _calendar_item(record: CalendarRecord) -> CalendarItem:
    zone = EWSTimeZone(record.time_zone)
    start, end = ews_datetime(record.start, zone), ews_datetime(record.end, zone)
    if record.is_all_day:
        start, end = _midnight(start), _midnight(end)
    item = CalendarItem(
        subject=record.subject,
        body=Body(record.body) if record.body else None,
        start=start,
        end=end,
        is_all_day=record.is_all_day,
        location=_text(record.location),
        legacy_free_busy_status=record.show_as.value,
        sensitivity="Private" if record.is_private else "Normal",
    )
    # Explicit zones: exchangelib would otherwise use the account's default zone for all-day items.
    item._start_timezone = zone
    item._end_timezone = zone
    return item


def ews_datetime(value: dt.datetime, zone: EWSTimeZone) -> EWSDateTime:
    """``value`` as an EWSDateTime in ``zone`` (exchangelib insists on its own types)."""
    local = value.astimezone(zone)
    return local if isinstance(local, EWSDateTime) else EWSDateTime.from_datetime(local)


def _midnight(value: EWSDateTime) -> EWSDateTime:
    return value.replace(hour=0, minute=0, second=0, microsecond=0)


def _contact(record: ContactRecord) -> Contact:
    emails = [
        EmailAddress(email=email, label=f"EmailAddress{number}")
        for number, email in enumerate(record.emails[:3], start=1)
        if email
    ]
    phones = [
        PhoneNumber(phone_number=number, label=label)
        for label, number in (
            ("BusinessPhone", record.business_phone),
            ("MobilePhone", record.mobile_phone),
            ("BusinessFax", record.business_fax),
        )
        if number
    ]
    address_parts = (record.street, record.city, record.state, record.postal_code, record.country)
    addresses = (
        [
            PhysicalAddress(
                label="Business", street=_text(record.street), city=_text(record.city),
                state=_text(record.state), zipcode=_text(record.postal_code),
                country=_text(record.country),
            )
        ]
        if any(address_parts)
        else []
    )  # fmt: skip
    return Contact(
        display_name=record.display_name or record.company_name or "-",
        given_name=_text(record.given_name),
        surname=_text(record.surname),
        job_title=_text(record.job_title),
        company_name=_text(record.company_name),
        email_addresses=emails or None,
        phone_numbers=phones or None,
        physical_addresses=addresses or None,
    )


# --- item → record ----------------------------------------------------------------------------


def exchange_item(item: Item, mailbox: str, exchange_id: str | None = None) -> ExchangeItem:
    """The neutral view of an item read with :func:`read_field_paths`.

    ``exchange_id`` overrides the item's own id (occurrences are reported under
    :func:`~exchange_ext.sync.records.occurrence_id`).
    """
    tag_value = getattr(item, TAG_ATTRIBUTE, None)
    common = {
        "exchange_id": exchange_id or item.id,
        "change_key": item.changekey or "",
        "psa_tag": parse_tag(tag_value) if tag_value else None,
    }
    if isinstance(item, Contact):
        return ExchangeItem(record=contact_record(item), **common)
    attendees = _attendee_addresses(item)
    item_type = CalendarItemType(item.type or CalendarItemType.SINGLE.value)
    is_instance = item_type in (CalendarItemType.OCCURRENCE, CalendarItemType.EXCEPTION)
    return ExchangeItem(
        record=calendar_record(item),
        is_organizer=_is_organizer(item, mailbox),
        has_attendees=bool(attendees),
        attendees=attendees,
        calendar_item_type=item_type,
        # UID is the series' for its occurrences; with OriginalStart it names one occurrence
        # whatever its ItemId (docs/sync-rules.md, "Re-identification").
        ical_uid=item.uid or "",
        original_start=(
            plain_utc(item.original_start) if is_instance and item.original_start else None
        ),
        **common,
    )


def calendar_record(item: CalendarItem) -> CalendarRecord:
    zone = item._start_timezone or EWSTimeZone("UTC")
    start, end = item.start, item.end
    if item.is_all_day:
        # exchangelib turns all-day values into dates (end = last day); give back the instants.
        start = _at_midnight(start, zone)
        end = _at_midnight(end, zone) + dt.timedelta(days=1)
    return CalendarRecord(
        subject=item.subject or "",
        body=str(item.body or ""),
        start=plain_utc(start),
        end=plain_utc(end),
        is_all_day=bool(item.is_all_day),
        location=item.location or "",
        show_as=_show_as(item.legacy_free_busy_status),
        is_private=item.sensitivity == "Private",
        time_zone=_zone_name(zone),
    )


# Exchange names zones by Windows id; exchangelib maps "UTC" back to "Etc/UTC". The records
# default to "UTC", so its aliases read back under that name.
_UTC_ALIASES = frozenset({"Etc/UTC", "Etc/UCT", "Etc/Universal", "Etc/Zulu", "UCT", "Zulu"})


def _zone_name(zone: object) -> str:
    """The IANA name of the zone Exchange holds the item in (Windows ids map to one of them)."""
    name = str(getattr(zone, "key", "") or "UTC")
    return "UTC" if name in _UTC_ALIASES else name


def _at_midnight(value: dt.date | dt.datetime, zone: EWSTimeZone) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    return dt.datetime.combine(value, dt.time(0, 0), tzinfo=zone)


def plain_utc(value: dt.datetime) -> dt.datetime:
    """An aware stdlib datetime in UTC (records hold instants, not exchangelib types)."""
    utc = value.astimezone(_UTC)
    return dt.datetime(
        utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second, utc.microsecond, dt.UTC
    )


def _show_as(value: str | None) -> ShowAs:
    try:
        return ShowAs(value or ShowAs.BUSY.value)
    except ValueError:  # NoData and anything newer: treat as busy, the safe reading
        return ShowAs.BUSY


def _attendee_addresses(item: CalendarItem) -> tuple[str, ...]:
    attendees = [*(item.required_attendees or ()), *(item.optional_attendees or ())]
    return tuple(
        a.mailbox.email_address.lower()
        for a in attendees
        if isinstance(getattr(a, "mailbox", None), Mailbox) and a.mailbox.email_address
    )


def _is_organizer(item: CalendarItem, mailbox: str) -> bool:
    if item.my_response_type:
        return item.my_response_type == "Organizer"
    organizer = getattr(item.organizer, "email_address", None)
    return not organizer or organizer.lower() == mailbox.lower()


def contact_record(item: Contact) -> ContactRecord:
    emails = sorted(item.email_addresses or (), key=lambda e: e.label or "")
    phones = {p.label: p.phone_number or "" for p in item.phone_numbers or ()}
    business = next((a for a in item.physical_addresses or () if a.label == "Business"), None)
    return ContactRecord(
        given_name=item.given_name or "",
        surname=item.surname or "",
        job_title=item.job_title or "",
        company_name=item.company_name or "",
        emails=tuple(e.email for e in emails if e.email),
        business_phone=phones.get("BusinessPhone", ""),
        mobile_phone=phones.get("MobilePhone", ""),
        business_fax=phones.get("BusinessFax", ""),
        street=(business.street or "") if business else "",
        city=(business.city or "") if business else "",
        state=(business.state or "") if business else "",
        postal_code=(business.zipcode or "") if business else "",
        country=(business.country or "") if business else "",
    )
