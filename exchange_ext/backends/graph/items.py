"""Records ⇄ Microsoft Graph JSON (``event``, ``contact``), and the PSA tag property.

https://learn.microsoft.com/graph/api/resources/event
https://learn.microsoft.com/graph/api/resources/contact
https://learn.microsoft.com/graph/api/resources/datetimetimezone
https://learn.microsoft.com/graph/api/resources/extended-properties-overview

Calendar items are written in the record's own zone (a Windows zone id when one is known,
else the IANA name; Graph accepts both), all-day items as midnight-to-midnight dates in that
zone. Reads ask for UTC (``Prefer: outlook.timezone="UTC"``): records hold instants; all-day
events float (Graph returns their dates at midnight whatever zone is asked for), so their
dates are placed at midnight in the event's ``originalStartTimeZone``. Privacy is
``sensitivity: private``; show-as is ``showAs`` including ``workingElsewhere``. Events carry
no attendees, so Graph never sends an invitation for them. The tag is the single-value
extended property ``String {GUID} Name PsaItemKey`` (the same MAPI named property EWS writes,
see :mod:`.tag_property`).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from exchange_ext.backends.ews.zones import iana_zone_name, windows_zone_id
from exchange_ext.backends.tag_property import PSA_TAG_PROPERTY_SET_ID, graph_property_id
from exchange_ext.sync.digest import digest_record
from exchange_ext.sync.records import (
    CalendarItemType,
    CalendarRecord,
    ContactRecord,
    ExchangeItem,
    FieldGroup,
    PsaTag,
    Record,
    ShowAs,
    occurrence_id,
    parse_tag,
)

TAG_PROPERTY_ID = graph_property_id()
#: ``$expand`` that returns the tag property alone with an item.
TAG_EXPAND = f"singleValueExtendedProperties($filter=id eq '{TAG_PROPERTY_ID}')"

_SHOW_AS = {
    ShowAs.BUSY: "busy",
    ShowAs.FREE: "free",
    ShowAs.TENTATIVE: "tentative",
    ShowAs.OOF: "oof",
    ShowAs.WORKING_ELSEWHERE: "workingElsewhere",
}
_SHOW_AS_READ = {value.lower(): key for key, value in _SHOW_AS.items()}
_ITEM_TYPES = {
    "singleInstance": CalendarItemType.SINGLE,
    "occurrence": CalendarItemType.OCCURRENCE,
    "exception": CalendarItemType.EXCEPTION,
    "seriesMaster": CalendarItemType.RECURRING_MASTER,
}
_TRANSACTION_NAMESPACE = uuid.UUID(PSA_TAG_PROPERTY_SET_ID)


# --- tag and transaction id -------------------------------------------------------------------


def tag_property(tag: PsaTag) -> list[dict[str, str]]:
    return [{"id": TAG_PROPERTY_ID, "value": str(tag)}]


def tag_filter(tag: PsaTag) -> str:
    """``$filter`` for the items carrying ``tag`` (quotes doubled per OData)."""
    value = str(tag).replace("'", "''")
    return (
        "singleValueExtendedProperties/Any(ep: ep/id eq "
        f"'{TAG_PROPERTY_ID}' and ep/value eq '{value}')"
    )


def transaction_id(tag: PsaTag, record: Record) -> str:
    """The create's ``transactionId``: the same tag and content give the same id.

    A create retried after a lost response or a crash (same plan, same record) is
    de-duplicated by Graph; a deliberate re-export after a delete in Outlook carries changed
    content (the planner re-exports only after a PSA change), so it is a new create.
    """
    return str(uuid.uuid5(_TRANSACTION_NAMESPACE, f"{tag}|{digest_record(record)}"))


def read_tag(data: dict[str, Any]) -> PsaTag | None:
    for prop in data.get("singleValueExtendedProperties") or ():
        if isinstance(prop, dict) and str(prop.get("id", "")).lower() == TAG_PROPERTY_ID.lower():
            return parse_tag(str(prop.get("value") or ""))
    return None


# --- time zones -------------------------------------------------------------------------------


_UTC_NAMES = frozenset({"UTC", "ETC/UTC", "ETC/GMT", "GMT", "Z", "COORDINATED UNIVERSAL TIME"})


def graph_zone_name(iana: str) -> str:
    """The zone name written to Graph: the Windows id when one is known, else the IANA name."""
    if iana.upper() in _UTC_NAMES:
        return "UTC"
    return windows_zone_id(iana) or iana


def zone_of(name: str | None) -> ZoneInfo:
    """A ZoneInfo for a Windows or IANA name; UTC for anything unknown (custom zones)."""
    if not name or name.upper() in _UTC_NAMES:
        return ZoneInfo("UTC")
    iana = iana_zone_name(name) or name
    if iana.upper() in _UTC_NAMES:
        return ZoneInfo("UTC")
    try:
        return ZoneInfo(iana)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _local(moment: dt.datetime, zone_name: str, *, all_day: bool) -> dict[str, str]:
    local = moment.astimezone(zone_of(zone_name))
    if all_day:
        local = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return {"dateTime": local.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": graph_zone_name(zone_name)}


def parse_when(value: Any, *, all_day: bool = False, zone: str | None = None) -> dt.datetime:
    """A ``dateTimeTimeZone`` as an aware UTC instant (all-day: midnight in ``zone``)."""
    if not isinstance(value, dict) or not value.get("dateTime"):
        raise ValueError("missing dateTime")
    text = str(value["dateTime"])
    day, _, clock = text.partition("T")
    clock = clock.rstrip("Z").split(".")[0] or "00:00:00"
    naive = dt.datetime.fromisoformat(f"{day}T{clock}")
    if all_day:
        naive = naive.replace(hour=0, minute=0, second=0)
        return naive.replace(tzinfo=zone_of(zone)).astimezone(dt.UTC)
    return naive.replace(tzinfo=zone_of(str(value.get("timeZone") or "UTC"))).astimezone(dt.UTC)


def parse_instant(text: str) -> dt.datetime:
    """An ``Edm.DateTimeOffset`` (``2030-05-06T09:00:00Z``, up to 7 fraction digits)."""
    main, _, rest = text.partition(".")
    offset = ""
    if rest:
        digits = rest.rstrip("Z")
        for sign in ("+", "-"):
            if sign in digits:
                offset = sign + digits.split(sign, 1)[1]
        main = main + offset
    elif main.endswith("Z"):
        main = main[:-1]
    moment = dt.datetime.fromisoformat(main.rstrip("Z"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


# --- record → JSON ----------------------------------------------------------------------------


def event_body(record: CalendarRecord, groups: frozenset[FieldGroup]) -> dict[str, Any]:
    """The event properties of ``groups`` (create: both). Never ``attendees``."""
    body: dict[str, Any] = {}
    if FieldGroup.TIMES in groups:
        body.update(
            start=_local(record.start, record.time_zone, all_day=record.is_all_day),
            end=_local(record.end, record.time_zone, all_day=record.is_all_day),
            isAllDay=record.is_all_day,
        )
    if FieldGroup.DETAILS in groups:
        body.update(
            subject=record.subject,
            body={"contentType": "text", "content": record.body},
            location={"displayName": record.location},
            showAs=_SHOW_AS[record.show_as],
            sensitivity="private" if record.is_private else "normal",
        )
    return body


def contact_body(record: ContactRecord) -> dict[str, Any]:
    address_parts = (record.street, record.city, record.state, record.postal_code, record.country)
    return {
        "displayName": record.display_name or record.company_name or "-",
        "givenName": record.given_name,
        "surname": record.surname,
        "jobTitle": record.job_title,
        "companyName": record.company_name,
        "emailAddresses": [
            {"address": email, "name": email} for email in record.emails[:3] if email
        ],
        "businessPhones": [record.business_phone] if record.business_phone else [],
        "mobilePhone": record.mobile_phone,
        "businessAddress": {
            "street": record.street,
            "city": record.city,
            "state": record.state,
            "postalCode": record.postal_code,
            "countryOrRegion": record.country,
        }
        if any(address_parts)
        else {},
    }


def create_body(record: Record, tag: PsaTag) -> dict[str, Any]:
    """A POST body: the record, the tag (same request: tag before send), a transactionId."""
    if isinstance(record, ContactRecord):
        # Contacts have no transactionId; a lost create is adopted by its tag later.
        return {**contact_body(record), "singleValueExtendedProperties": tag_property(tag)}
    return {
        **event_body(record, frozenset(FieldGroup)),
        "singleValueExtendedProperties": tag_property(tag),
        "transactionId": transaction_id(tag, record),
    }


def update_body(record: Record, groups: frozenset[FieldGroup]) -> dict[str, Any]:
    if isinstance(record, ContactRecord):
        return contact_body(record) if FieldGroup.DETAILS in groups else {}
    return event_body(record, groups)


# --- JSON → record ----------------------------------------------------------------------------


def event_item(data: dict[str, Any], mailbox: str) -> ExchangeItem:
    """The neutral view of an event (occurrences under their occurrence id)."""
    item_type = _ITEM_TYPES.get(str(data.get("type") or ""), CalendarItemType.SINGLE)
    exchange_id = str(data["id"])
    is_instance = item_type in (CalendarItemType.OCCURRENCE, CalendarItemType.EXCEPTION)
    original_start = parse_instant(str(data["originalStart"])) if is_instance else None
    if original_start is not None:
        exchange_id = occurrence_id(str(data["seriesMasterId"]), original_start)
    attendees = tuple(
        str(a["emailAddress"]["address"]).lower()
        for a in data.get("attendees") or ()
        if isinstance(a, dict) and (a.get("emailAddress") or {}).get("address")
    )
    return ExchangeItem(
        exchange_id=exchange_id,
        change_key=str(data.get("changeKey") or ""),
        record=calendar_record(data),
        psa_tag=read_tag(data),
        is_organizer=_is_organizer(data, mailbox),
        has_attendees=bool(attendees),
        attendees=attendees,
        calendar_item_type=item_type,
        ical_uid=ical_uid(data, is_instance=is_instance),
        original_start=original_start,
    )


def ical_uid(data: dict[str, Any], *, is_instance: bool) -> str:
    """The event's iCalendar UID, the same EWS reads as ``UID``: Graph's ``uid`` (shared by a
    series and its occurrences). ``iCalUId`` is per occurrence, so it stands in only for a
    single event or a series master (https://learn.microsoft.com/graph/api/resources/event)."""
    uid = str(data.get("uid") or "")
    if uid or is_instance:
        return uid
    return str(data.get("iCalUId") or "")


def _is_organizer(data: dict[str, Any], mailbox: str) -> bool:
    if "isOrganizer" in data and data["isOrganizer"] is not None:
        return bool(data["isOrganizer"])
    address = ((data.get("organizer") or {}).get("emailAddress") or {}).get("address")
    return not address or str(address).lower() == mailbox.lower()


def calendar_record(data: dict[str, Any]) -> CalendarRecord:
    all_day = bool(data.get("isAllDay"))
    zone_name = str(data.get("originalStartTimeZone") or "UTC")
    zone = zone_of(zone_name)
    show_as = _SHOW_AS_READ.get(str(data.get("showAs") or "busy").lower(), ShowAs.BUSY)
    return CalendarRecord(
        subject=str(data.get("subject") or ""),
        body=_text(data.get("body")),
        start=parse_when(data.get("start"), all_day=all_day, zone=zone_name),
        end=parse_when(data.get("end"), all_day=all_day, zone=zone_name),
        is_all_day=all_day,
        location=str((data.get("location") or {}).get("displayName") or ""),
        show_as=show_as,
        is_private=str(data.get("sensitivity") or "").lower() == "private",
        time_zone=zone.key,
    )


def _text(body: Any) -> str:
    if not isinstance(body, dict):
        return ""
    content = str(body.get("content") or "")
    # Reads ask for text bodies; Outlook ends them with a newline it added itself.
    return content.replace("\r\n", "\n")


def contact_item(data: dict[str, Any]) -> ExchangeItem:
    return ExchangeItem(
        exchange_id=str(data["id"]),
        change_key=str(data.get("changeKey") or ""),
        record=contact_record(data),
        psa_tag=read_tag(data),
    )


def contact_record(data: dict[str, Any]) -> ContactRecord:
    address = data.get("businessAddress") or {}
    phones = [p for p in data.get("businessPhones") or () if p]
    return ContactRecord(
        given_name=str(data.get("givenName") or ""),
        surname=str(data.get("surname") or ""),
        job_title=str(data.get("jobTitle") or ""),
        company_name=str(data.get("companyName") or ""),
        emails=tuple(
            str(e["address"])
            for e in data.get("emailAddresses") or ()
            if isinstance(e, dict) and e.get("address")
        )[:3],
        business_phone=str(phones[0]) if phones else "",
        mobile_phone=str(data.get("mobilePhone") or ""),
        street=str(address.get("street") or ""),
        city=str(address.get("city") or ""),
        state=str(address.get("state") or ""),
        postal_code=str(address.get("postalCode") or ""),
        country=str(address.get("countryOrRegion") or ""),
    )
