"""Store items ⇄ Microsoft Graph JSON (``event``, ``contact``), time zones, extended properties.

Items stay in the store as EWS elements (see ``store``); this module renders them as Graph
resources (under Graph ids of their own, see ``ids``) and turns Graph request bodies into the
backdoor field dicts of ``items_xml.fields_to_elements``, so both protocols write the same
elements.

Extended properties: a Graph single-value property id ``"String {guid} Name PsaItemKey"`` is the
EWS ``t:ExtendedFieldURI PropertySetId="guid" PropertyName="PsaItemKey" PropertyType="String"``
(``"Integer {guid} Id 0x8005"`` ⇄ ``PropertyId``, ``"String 0x0037"`` ⇄ ``PropertyTag``). Both
sides key the store by ``items_xml.path_key`` of that path, so a tag written over one protocol
is read and filtered over the other.
https://learn.microsoft.com/graph/api/resources/singlevaluelegacyextendedproperty
https://learn.microsoft.com/graph/api/resources/event
https://learn.microsoft.com/graph/api/resources/contact
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from exchangelib.winzone import IANA_TO_MS_TIMEZONE_MAP, MS_TIMEZONE_TO_IANA_MAP
from lxml import etree

from exchange_ext.sandbox import items_xml, recurrence, restrictions
from exchange_ext.sandbox.contract import EwsError
from exchange_ext.sandbox.items_xml import ItemView, element_text

from . import ids
from .errors import GraphError, bad_request

T = items_xml.T
# Where Graph's transactionId lives: a private named property, invisible to EWS unless asked.
TRANSACTION_SET = "b3e7f5a4-5a9c-4c5e-9c43-5a4d0c7b7a11"
TRANSACTION_NAME = "SandboxGraphTransactionId"
TRANSACTION_KEY = items_xml.path_key(
    restrictions.PropertyPath.extended(
        "String", property_set_id=TRANSACTION_SET, property_name=TRANSACTION_NAME
    )
)
SHOW_AS = {
    "free": "Free", "tentative": "Tentative", "busy": "Busy", "oof": "OOF",
    "workingElsewhere": "WorkingElsewhere", "unknown": "NoData",
}  # fmt: skip
SENSITIVITY = {
    "normal": "Normal", "personal": "Personal", "private": "Private",
    "confidential": "Confidential",
}  # fmt: skip
IMPORTANCE = {"low": "Low", "normal": "Normal", "high": "High"}
EVENT_TYPES = {
    "Single": "singleInstance", "RecurringMaster": "seriesMaster",
    "Occurrence": "occurrence", "Exception": "exception",
}  # fmt: skip
RESPONSES = {
    "Unknown": "none", "Organizer": "organizer", "Tentative": "tentativelyAccepted",
    "Accept": "accepted", "Decline": "declined", "NoResponseReceived": "notResponded",
}  # fmt: skip
NO_TIME = "0001-01-01T00:00:00Z"
_EXT_NAMED = re.compile(r"^(\w+) \{([0-9A-Fa-f-]{36})\} (Name|Id) (.+)$")
_EXT_TAGGED = re.compile(r"^(\w+) (0x[0-9A-Fa-f]{1,4})$")
SINGLE_TYPES = {"String", "Integer", "Boolean", "SystemTime", "Double", "Long", "Short",
                "Float", "Currency", "CLSID", "Binary", "ApplicationTime"}  # fmt: skip


# ---------------------------------------------------------------------------- time zones


def zone(name: str) -> ZoneInfo:
    """A Windows (``W. Europe Standard Time``) or IANA (``Europe/Berlin``) zone name.

    Graph accepts both in ``dateTimeTimeZone.timeZone`` and ``Prefer: outlook.timezone``;
    anything else is 400 TimeZoneNotSupportedException.
    https://learn.microsoft.com/graph/api/resources/datetimetimezone
    """
    iana = MS_TIMEZONE_TO_IANA_MAP.get(name, name)
    if name.upper() in ("UTC", "Z", "ETC/UTC"):
        iana = "UTC"
    try:
        return ZoneInfo(iana)
    except (ZoneInfoNotFoundError, ValueError):
        raise GraphError(
            400, "TimeZoneNotSupportedException",
            f"A valid TimeZone value must be specified. The following TimeZone value is not "
            f"supported: '{name}'.",
        ) from None  # fmt: skip


def windows_zone_id(name: str) -> str:
    """The Windows id EWS stores for a zone name (Windows names are kept as they are)."""
    if name in MS_TIMEZONE_TO_IANA_MAP or name == "UTC":
        return name
    return IANA_TO_MS_TIMEZONE_MAP.get(name, "UTC")


def graph_datetime(moment: dt.datetime, tz: ZoneInfo) -> str:
    """``2026-11-23T09:00:00.0000000``: Graph's local date-time with seven fraction digits."""
    local = moment.astimezone(tz)
    return local.strftime("%Y-%m-%dT%H:%M:%S.") + f"{local.microsecond:06d}0"


def graph_instant(stamp: str) -> str:
    """A stored ``...Z`` instant as Graph renders DateTimeOffset values (``...0000000Z``)."""
    moment = items_xml.parse_datetime(stamp)
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + "0000000Z"


def parse_graph_datetime(value: Any, what: str) -> dt.datetime:
    """A ``dateTimeTimeZone`` object → an aware UTC datetime."""
    if not isinstance(value, dict) or not isinstance(value.get("dateTime"), str):
        raise bad_request(f"{what} must be a dateTimeTimeZone object", "ErrorInvalidRequest")
    text = value["dateTime"].strip()
    match = re.match(r"^(.*T\d\d:\d\d(?::\d\d)?)(\.\d+)?(Z|[+-]\d\d:\d\d)?$", text)
    if match is None:
        raise bad_request(f"Cannot convert the literal '{text}' to a date-time.")
    # Python reads at most six fraction digits; Graph sends seven.
    fraction = (match.group(2) or "")[:7]
    try:
        local = dt.datetime.fromisoformat(match.group(1) + fraction[:7])
    except ValueError:
        try:
            local = dt.datetime.fromisoformat(match.group(1) + fraction[: 7 - 1])
        except ValueError:
            raise bad_request(f"Cannot convert the literal '{text}' to a date-time.") from None
    if match.group(3):
        offset = dt.datetime.fromisoformat(
            "2000-01-01T00:00:00" + match.group(3).replace("Z", "+00:00")
        )
        return local.replace(tzinfo=offset.tzinfo).astimezone(dt.UTC)
    tz = zone(str(value.get("timeZone") or "UTC"))
    return local.replace(tzinfo=tz).astimezone(dt.UTC)


def parse_query_datetime(value: str | None, name: str) -> dt.datetime:
    """``startDateTime``/``endDateTime`` query values (ISO 8601; no offset means UTC)."""
    # https://learn.microsoft.com/graph/api/user-list-calendarview
    if not value:
        raise bad_request(
            "This request requires a time window specified by the query string parameters "
            "StartDateTime and EndDateTime.",
            "ErrorInvalidParameter",
        )
    try:
        moment = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00")[:32])
    except ValueError:
        raise bad_request(f"The value '{value}' of parameter '{name}' is invalid.") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


# ---------------------------------------------------------------------------- extended props


def ext_spec_from_graph_id(prop_id: str) -> dict[str, Any]:
    """The backdoor spec (``items_xml`` form) of a Graph extended property id; 400 if bad."""
    named = _EXT_NAMED.match(prop_id.strip())
    if named:
        ptype, guid, how, name = named.groups()
        spec: dict[str, Any] = {"property_type": ptype, "property_set_id": guid.lower()}
        if how == "Name":
            spec["property_name"] = name
        else:
            spec["property_id"] = int(name, 16) if name.lower().startswith("0x") else int(name)
    else:
        tagged = _EXT_TAGGED.match(prop_id.strip())
        if tagged is None:
            raise bad_request(f"The extended property id '{prop_id}' is not valid.")
        spec = {"property_type": tagged.group(1), "property_tag": tagged.group(2)}
    if spec["property_type"] not in SINGLE_TYPES:
        raise bad_request(f"The extended property type '{spec['property_type']}' is not valid.")
    return spec


def ext_key(prop_id: str) -> str:
    """The store key of a Graph extended property id (same key as EWS's ExtendedFieldURI)."""
    spec = ext_spec_from_graph_id(prop_id)
    path = restrictions.PropertyPath.extended(
        spec["property_type"],
        property_set_id=spec.get("property_set_id"),
        property_name=spec.get("property_name"),
        property_id=spec.get("property_id"),
        property_tag=spec.get("property_tag"),
    )
    return items_xml.path_key(path)


def graph_ext_id(prop_xml: str) -> str | None:
    """The Graph id of a stored ``t:ExtendedProperty`` (None for array types)."""
    uri = items_xml.from_string(prop_xml).find(f"{T}ExtendedFieldURI")
    if uri is None:
        return None
    path = restrictions.path_from_element(uri)
    if path.is_array:
        return None
    if path.property_tag is not None:
        return f"{path.property_type} 0x{path.property_tag:04x}"
    if path.property_name is not None:
        return f"{path.property_type} {{{path.property_set_id}}} Name {path.property_name}"
    return f"{path.property_type} {{{path.property_set_id}}} Id 0x{path.property_id:x}"


def ext_properties(view: ItemView, wanted: str | None) -> list[dict[str, str]]:
    """``singleValueExtendedProperties`` of an item: all (``wanted`` ``"*"``) or one key."""
    out = []
    for key, raw in view.extended.items():
        if key == TRANSACTION_KEY or (wanted != "*" and key != wanted):
            continue
        prop_id = graph_ext_id(raw)
        value = items_xml.extended_value(raw)
        if prop_id is not None and isinstance(value, str):
            out.append({"id": prop_id, "value": value})
    return out


def ext_fields(value: Any) -> list[dict[str, Any]]:
    """``singleValueExtendedProperties`` of a request body → backdoor specs."""
    if not isinstance(value, list):
        raise bad_request("singleValueExtendedProperties must be an array")
    specs = []
    for entry in value:
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
            raise bad_request("each singleValueExtendedProperties entry needs an id")
        spec = ext_spec_from_graph_id(entry["id"])
        spec["value"] = "" if entry.get("value") is None else str(entry["value"])
        specs.append(spec)
    return specs


def transaction_id(extended: dict[str, str]) -> str | None:
    raw = extended.get(TRANSACTION_KEY)
    value = items_xml.extended_value(raw) if raw else None
    return value if isinstance(value, str) else None


def transaction_spec(value: str) -> dict[str, Any]:
    return {
        "property_type": "String", "property_set_id": TRANSACTION_SET,
        "property_name": TRANSACTION_NAME, "value": value,
    }  # fmt: skip


# ---------------------------------------------------------------------------- rendering options


@dataclass
class RenderOptions:
    """How to render items for one request (from its Prefer header and query)."""

    tz: ZoneInfo
    tz_label: str = "UTC"
    body_type: str = "html"  # Prefer: outlook.body-content-type
    expand: str | None = None  # None: no singleValueExtendedProperties; "*": all; else a key
    select: frozenset[str] | None = None


def _select(data: dict[str, Any], opts: RenderOptions) -> dict[str, Any]:
    if opts.select is None:
        return data
    keep = opts.select | {"id", "@odata.etag", "singleValueExtendedProperties"}
    return {k: v for k, v in data.items() if k in keep}


def _body(elements: dict[str, str], opts: RenderOptions) -> dict[str, str]:
    raw = elements.get("Body")
    elem = items_xml.from_string(raw) if raw else None
    content = (elem.text or "") if elem is not None else ""
    is_html = elem is not None and elem.get("BodyType") == "HTML"
    if opts.body_type == "text":
        return {"contentType": "text", "content": _html_to_text(content) if is_html else content}
    if is_html:
        return {"contentType": "html", "content": content}
    # Graph returns bodies as HTML unless told otherwise, converting plain text.
    escaped = html.escape(content).replace("\n", "<br>\r\n")
    wrapped = (
        '<html>\r\n<head>\r\n<meta http-equiv="Content-Type" content="text/html; '
        'charset=utf-8">\r\n</head>\r\n<body>\r\n'
        f"<div>{escaped}</div>\r\n</body>\r\n</html>\r\n"
    )
    return {"contentType": "html", "content": wrapped if content else ""}


def _html_to_text(content: str) -> str:
    if not content.strip():
        return ""
    tree = etree.fromstring(f"<x>{content}</x>", etree.HTMLParser())
    return "" if tree is None else str(tree.xpath("string()")).strip()


def _preview(elements: dict[str, str]) -> str:
    text = _body(elements, RenderOptions(ZoneInfo("UTC"), body_type="text"))["content"]
    return " ".join(text.split())[:255]


def _email(mailbox: etree._Element | None) -> dict[str, str]:
    if mailbox is None:
        return {"name": "", "address": ""}
    address = mailbox.findtext(f"{T}EmailAddress") or ""
    return {"name": mailbox.findtext(f"{T}Name") or address, "address": address}


def _attendees(elements: dict[str, str]) -> list[dict[str, Any]]:
    out = []
    for name, kind in (("RequiredAttendees", "required"), ("OptionalAttendees", "optional"),
                       ("Resources", "resource")):  # fmt: skip
        raw = elements.get(name)
        for attendee in items_xml.from_string(raw) if raw else ():
            response = attendee.findtext(f"{T}ResponseType") or "Unknown"
            out.append({
                "type": kind,
                "status": {"response": RESPONSES.get(response, "none"), "time": NO_TIME},
                "emailAddress": _email(attendee.find(f"{T}Mailbox")),
            })  # fmt: skip
    return out


def _zone_of_view(view: ItemView) -> ZoneInfo:
    raw = view.elements.get("StartTimeZone")
    zone_id = items_xml.from_string(raw).get("Id") if raw else "UTC"
    try:
        return zone(zone_id or "UTC")
    except GraphError:
        return ZoneInfo("UTC")


def _when(view: ItemView, name: str, opts: RenderOptions, all_day: bool) -> dict[str, str]:
    moment = items_xml.element_datetime(view.elements, name) or dt.datetime.now(dt.UTC)
    if all_day:
        # All-day events float: midnight of their own dates, whatever zone is asked for.
        day = moment.astimezone(_zone_of_view(view)).date()
        return {"dateTime": f"{day.isoformat()}T00:00:00.0000000", "timeZone": opts.tz_label}
    return {"dateTime": graph_datetime(moment, opts.tz), "timeZone": opts.tz_label}


def event_json(view: ItemView, mailbox: str, opts: RenderOptions) -> dict[str, Any]:
    """The Graph ``event`` for an item view from ``operations.calendar`` (item/occurrence)."""
    from exchange_ext.sandbox.operations import calendar

    el = view.elements
    computed = view.computed
    item_type = computed["CalendarItemType"].text if "CalendarItemType" in computed else "Single"
    organizer_raw = el.get("Organizer")
    organizer_elem = (
        items_xml.from_string(organizer_raw) if organizer_raw else computed.get("Organizer")
    )
    organizer = _email(organizer_elem.find(f"{T}Mailbox") if organizer_elem is not None else None)
    is_organizer = organizer["address"].lower() == mailbox.lower()
    all_day = items_xml.parse_bool(element_text(el, "IsAllDayEvent"))
    location = element_text(el, "Location") or ""
    zone_id = (items_xml.from_string(el["StartTimeZone"]).get("Id") if "StartTimeZone" in el
               else "UTC")  # fmt: skip
    end_zone = (items_xml.from_string(el["EndTimeZone"]).get("Id") if "EndTimeZone" in el
                else zone_id)  # fmt: skip
    occurrence = calendar.parse_occurrence_id(view.id)
    reminder = element_text(el, "ReminderMinutesBeforeStart")
    categories_raw = el.get("Categories")
    uid = element_text(el, "UID") or _ical_uid(occurrence[0] if occurrence else view.id)
    data: dict[str, Any] = {
        "@odata.etag": f'W/"{view.changekey}"',
        "id": ids.graph_id(view.id),
        "createdDateTime": graph_instant(view.created),
        "lastModifiedDateTime": graph_instant(view.modified),
        "changeKey": view.changekey,
        "categories": [c.text or "" for c in items_xml.from_string(categories_raw)]
        if categories_raw
        else [],
        "transactionId": transaction_id(view.extended),
        "originalStartTimeZone": zone_id,
        "originalEndTimeZone": end_zone,
        # ``uid`` is the series' for every occurrence (EWS ``UID``); ``iCalUId`` is per
        # occurrence (https://learn.microsoft.com/graph/api/resources/event).
        "iCalUId": _ical_uid(view.id) if occurrence else uid,
        "uid": uid,
        "reminderMinutesBeforeStart": int(reminder) if (reminder or "").isdigit() else 15,
        "isReminderOn": items_xml.parse_bool(element_text(el, "ReminderIsSet") or "true"),
        "hasAttachments": False,
        "subject": element_text(el, "Subject") or "",
        "bodyPreview": _preview(el),
        "importance": _inverse(IMPORTANCE, element_text(el, "Importance"), "normal"),
        "sensitivity": _inverse(SENSITIVITY, element_text(el, "Sensitivity"), "normal"),
        "isAllDay": all_day,
        "isCancelled": False,
        "isOrganizer": is_organizer,
        "responseRequested": True,
        "seriesMasterId": ids.graph_id(occurrence[0]) if occurrence else None,
        "showAs": _inverse(SHOW_AS, element_text(el, "LegacyFreeBusyStatus"), "busy"),
        "type": EVENT_TYPES.get(item_type or "Single", "singleInstance"),
        "webLink": "https://outlook.office365.com/owa/?itemid="
        + quote(ids.graph_id(view.id), safe="")
        + "&exvsurl=1&path=/calendar/item",
        "onlineMeetingUrl": None,
        "isOnlineMeeting": False,
        "onlineMeetingProvider": "unknown",
        "allowNewTimeProposals": True,
        "isDraft": False,
        "hideAttendees": False,
        "responseStatus": {"response": "organizer" if is_organizer else "none", "time": NO_TIME},
        "body": _body(el, opts),
        "start": _when(view, "Start", opts, all_day),
        "end": _when(view, "End", opts, all_day),
        "location": _location(location),
        "locations": [_location(location)] if location else [],
        "recurrence": _recurrence_json(el) if item_type == "RecurringMaster" else None,
        "attendees": _attendees(el),
        "organizer": {"emailAddress": organizer},
    }
    if occurrence:
        data["originalStart"] = graph_instant(occurrence[1]).replace(".0000000Z", "Z")
    if opts.expand is not None:
        props = ext_properties(view, opts.expand)
        if props:  # Graph leaves the property out when nothing matches the expand filter
            data["singleValueExtendedProperties"] = props
    return _select(data, opts)


def _location(display_name: str) -> dict[str, Any]:
    if not display_name:
        return {"displayName": "", "locationType": "default", "uniqueIdType": "unknown",
                "address": {}, "coordinates": {}}  # fmt: skip
    return {
        "displayName": display_name, "locationType": "default", "uniqueId": display_name,
        "uniqueIdType": "private",
    }  # fmt: skip


def _inverse(table: dict[str, str], ews_value: str | None, default: str) -> str:
    for graph_value, ews in table.items():
        if ews == ews_value:
            return graph_value
    return default


def _ical_uid(item_id: str) -> str:
    # Outlook's global object id prefix followed by a stable hash of the item (the fallback
    # for items stored without a UID; per occurrence for an occurrence id).
    digest = hashlib.sha256(item_id.split("|")[0].encode()).hexdigest().upper()[:56]
    return "040000008200E00074C5B7101A82E00800000000" + digest


# ---------------------------------------------------------------------------- recurrence

_GRAPH_DAYS = [d.lower() for d in recurrence.WEEKDAY_NAMES]
_INDEXES = {"first": "First", "second": "Second", "third": "Third", "fourth": "Fourth",
            "last": "Last"}  # fmt: skip


def _recurrence_json(elements: dict[str, str]) -> dict[str, Any] | None:
    """``patternedRecurrence`` of a stored ``t:Recurrence``."""
    # https://learn.microsoft.com/graph/api/resources/patternedrecurrence
    raw = elements.get("Recurrence")
    if raw is None:
        return None
    try:
        rec = recurrence.parse_recurrence(items_xml.from_string(raw))
    except EwsError:
        return None
    p = rec.pattern
    pattern: dict[str, Any] = {"type": "daily", "interval": getattr(p, "interval", 1),
                               "month": 0, "dayOfMonth": 0, "firstDayOfWeek": "sunday",
                               "index": "first"}  # fmt: skip
    if isinstance(p, recurrence.WeeklyPattern):
        pattern.update(type="weekly", daysOfWeek=[d.lower() for d in p.days_of_week],
                       firstDayOfWeek=p.first_day_of_week.lower())  # fmt: skip
    elif isinstance(p, recurrence.AbsoluteMonthlyPattern):
        pattern.update(type="absoluteMonthly", dayOfMonth=p.day_of_month)
    elif isinstance(p, recurrence.RelativeMonthlyPattern):
        pattern.update(type="relativeMonthly", daysOfWeek=_days_json(p.days_of_week),
                       index=p.day_of_week_index.lower())  # fmt: skip
    elif isinstance(p, recurrence.AbsoluteYearlyPattern):
        pattern.update(type="absoluteYearly", interval=1, dayOfMonth=p.day_of_month,
                       month=recurrence.MONTH_NAMES.index(p.month) + 1)  # fmt: skip
    elif isinstance(p, recurrence.RelativeYearlyPattern):
        pattern.update(type="relativeYearly", interval=1, daysOfWeek=_days_json(p.days_of_week),
                       index=p.day_of_week_index.lower(),
                       month=recurrence.MONTH_NAMES.index(p.month) + 1)  # fmt: skip
    r = rec.range
    zone_raw = elements.get("StartTimeZone")
    zone_id = items_xml.from_string(zone_raw).get("Id") if zone_raw else "UTC"
    rng: dict[str, Any] = {"type": "noEnd", "startDate": r.start_date.isoformat(),
                           "endDate": "0001-01-01", "recurrenceTimeZone": zone_id,
                           "numberOfOccurrences": 0}  # fmt: skip
    if isinstance(r, recurrence.EndDateRange):
        rng.update(type="endDate", endDate=r.end_date.isoformat())
    elif isinstance(r, recurrence.NumberedRange):
        rng.update(type="numbered", numberOfOccurrences=r.number_of_occurrences)
    return {"pattern": pattern, "range": rng}


def _days_json(days: str) -> list[str]:
    group = recurrence.DAY_GROUPS.get(days)
    if group is not None:
        return [_GRAPH_DAYS[i] for i in group]
    return [days.lower()]


def _days_model(days: Any, single: bool) -> Any:
    if not isinstance(days, list) or not days or not all(d in _GRAPH_DAYS for d in days):
        raise bad_request("recurrence pattern daysOfWeek must list day names")
    names = tuple(recurrence.WEEKDAY_NAMES[_GRAPH_DAYS.index(d)] for d in days)
    if not single:
        return names
    indexes = tuple(sorted(_GRAPH_DAYS.index(d) for d in set(days)))
    for group, members in recurrence.DAY_GROUPS.items():
        if indexes == members:
            return group
    return names[0]


def recurrence_xml(value: Any) -> str:
    """A Graph ``patternedRecurrence`` → stored ``t:Recurrence`` XML; 400 when invalid."""
    if not isinstance(value, dict):
        raise bad_request("recurrence must be a patternedRecurrence object")
    p, r = value.get("pattern") or {}, value.get("range") or {}
    try:
        interval = int(p.get("interval") or 1)
        kind = p.get("type")
        index = _INDEXES.get(str(p.get("index") or "first"), "First")
        month = recurrence.MONTH_NAMES[int(p.get("month") or 1) - 1]
        model: Any
        if kind == "daily":
            model = recurrence.DailyPattern(interval)
        elif kind == "weekly":
            first = str(p.get("firstDayOfWeek") or "sunday").capitalize()
            model = recurrence.WeeklyPattern(interval, _days_model(p.get("daysOfWeek"), False),
                                             first)  # fmt: skip
        elif kind == "absoluteMonthly":
            model = recurrence.AbsoluteMonthlyPattern(interval, int(p.get("dayOfMonth")))
        elif kind == "relativeMonthly":
            model = recurrence.RelativeMonthlyPattern(
                interval, _days_model(p.get("daysOfWeek"), True), index
            )
        elif kind == "absoluteYearly":
            model = recurrence.AbsoluteYearlyPattern(int(p.get("dayOfMonth")), month)
        elif kind == "relativeYearly":
            model = recurrence.RelativeYearlyPattern(
                _days_model(p.get("daysOfWeek"), True), index, month
            )
        else:
            raise bad_request(f"unknown recurrence pattern type {kind!r}")
        start = dt.date.fromisoformat(str(r.get("startDate")))
        rng: Any
        if r.get("type") == "endDate":
            rng = recurrence.EndDateRange(start, dt.date.fromisoformat(str(r.get("endDate"))))
        elif r.get("type") == "numbered":
            rng = recurrence.NumberedRange(start, int(r.get("numberOfOccurrences")))
        elif r.get("type") == "noEnd":
            rng = recurrence.NoEndRange(start)
        else:
            raise bad_request(f"unknown recurrence range type {r.get('type')!r}")
        elem = recurrence.recurrence_to_xml(recurrence.Recurrence(model, rng))
        recurrence.parse_recurrence(elem)  # validates bounds like EWS does
    except (TypeError, ValueError, IndexError) as exc:
        raise bad_request(f"invalid recurrence: {exc}") from None
    except EwsError as exc:
        raise bad_request(f"invalid recurrence: {exc.message}") from None
    return items_xml.to_string(elem)


# ---------------------------------------------------------------------------- event input

EVENT_READ_ONLY = {
    "id", "@odata.etag", "@odata.type", "@odata.context", "createdDateTime",
    "lastModifiedDateTime", "changeKey", "originalStartTimeZone", "originalEndTimeZone",
    "iCalUId", "uid", "hasAttachments", "bodyPreview", "isCancelled", "isOrganizer",
    "seriesMasterId", "type", "webLink", "onlineMeetingUrl", "isOnlineMeeting",
    "onlineMeetingProvider", "allowNewTimeProposals", "isDraft", "hideAttendees",
    "responseStatus", "responseRequested", "organizer", "locations", "originalStart",
    "onlineMeeting", "cancelledOccurrences", "exceptionOccurrences",
}  # fmt: skip
EVENT_WRITABLE = {
    "subject", "body", "start", "end", "isAllDay", "location", "showAs", "sensitivity",
    "importance", "categories", "isReminderOn", "reminderMinutesBeforeStart", "attendees",
    "recurrence", "singleValueExtendedProperties", "transactionId",
}  # fmt: skip


def _string(body: dict[str, Any], key: str) -> str:
    value = body[key]
    if not isinstance(value, str):
        raise bad_request(f"{key} must be a string")
    return value


def _enum(body: dict[str, Any], key: str, table: dict[str, str]) -> str:
    value = body[key]
    if value not in table:
        raise bad_request(
            f"Cannot convert the literal '{value}' to the expected type for {key}: one of "
            + ", ".join(table)
        )
    return table[value]


@dataclass
class Changes:
    """What a POST/PATCH body asks for: backdoor fields plus elements to remove."""

    fields: dict[str, Any]
    cleared: list[str]


def event_changes(body: Any, *, creating: bool) -> Changes:
    """Graph event JSON → ``Changes`` (400 for unknown properties or bad values)."""
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.")
    for key in body:
        if key not in EVENT_WRITABLE and key not in EVENT_READ_ONLY and not key.startswith("@"):
            raise bad_request(
                f"The property '{key}' does not exist on type 'microsoft.graph.event'. Make "
                "sure to only use property names that are defined by the type."
            )
    fields: dict[str, Any] = {}
    cleared: list[str] = []
    if "subject" in body:
        fields["subject"] = _string(body, "subject") if body["subject"] is not None else ""
    if body.get("body") is not None:
        b = body["body"]
        if not isinstance(b, dict):
            raise bad_request("body must be an itemBody object")
        fields["body"] = str(b.get("content") or "")
        fields["body_type"] = (
            "HTML" if str(b.get("contentType", "text")).lower() == "html" else "Text"
        )
    for key in ("start", "end"):
        if body.get(key) is not None:
            fields[key] = parse_graph_datetime(body[key], key).isoformat()
            tz_name = str(body[key].get("timeZone") or "UTC")
            zone(tz_name)
            fields[f"{key}_timezone"] = windows_zone_id(tz_name)
    if creating and ("start" not in fields or "end" not in fields):
        raise bad_request("An event needs start and end.", "ErrorInvalidRequest")
    if "isAllDay" in body:
        fields["is_all_day"] = bool(body["isAllDay"])
    if "location" in body:
        loc = body["location"]
        name = loc.get("displayName") if isinstance(loc, dict) else None
        if name:
            fields["location"] = str(name)
        else:
            cleared.append("Location")
    if body.get("showAs") is not None:
        fields["legacy_free_busy_status"] = _enum(body, "showAs", SHOW_AS)
    if body.get("sensitivity") is not None:
        fields["sensitivity"] = _enum(body, "sensitivity", SENSITIVITY)
    if body.get("importance") is not None:
        fields["importance"] = _enum(body, "importance", IMPORTANCE)
    if "categories" in body:
        cats = body["categories"] or []
        if not isinstance(cats, list) or not all(isinstance(c, str) for c in cats):
            raise bad_request("categories must be an array of strings")
        if cats:
            fields["categories"] = cats
        else:
            cleared.append("Categories")
    if "isReminderOn" in body:
        fields["reminder_is_set"] = bool(body["isReminderOn"])
    if body.get("reminderMinutesBeforeStart") is not None:
        fields["reminder_minutes_before_start"] = int(body["reminderMinutesBeforeStart"])
    if "attendees" in body:
        required, optional = _attendee_lists(body["attendees"] or [])
        for key, element, values in (
            ("required_attendees", "RequiredAttendees", required),
            ("optional_attendees", "OptionalAttendees", optional),
        ):
            if values:
                fields[key] = values
            else:
                cleared.append(element)
    if "recurrence" in body:
        if body["recurrence"] is None:
            cleared.append("Recurrence")
        else:
            fields["recurrence"] = recurrence_xml(body["recurrence"])
    if body.get("singleValueExtendedProperties") is not None:
        fields["extended_properties"] = ext_fields(body["singleValueExtendedProperties"])
    return Changes(fields, cleared)


def _attendee_lists(value: Any) -> tuple[list[str], list[str]]:
    if not isinstance(value, list):
        raise bad_request("attendees must be an array")
    required: list[str] = []
    optional: list[str] = []
    for attendee in value:
        address = (attendee.get("emailAddress") or {}).get("address") if isinstance(
            attendee, dict) else None  # fmt: skip
        if not isinstance(address, str) or "@" not in address:
            raise bad_request("each attendee needs emailAddress.address")
        (optional if attendee.get("type") == "optional" else required).append(address)
    return required, optional


# ---------------------------------------------------------------------------- contacts

CONTACT_SIMPLE = {
    "displayName": "display_name", "givenName": "given_name", "middleName": "middle_name",
    "surname": "surname", "companyName": "company_name", "jobTitle": "job_title",
    "department": "department", "fileAs": "file_as",
}  # fmt: skip
ADDRESS_KEYS = {"businessAddress": "Business", "homeAddress": "Home", "otherAddress": "Other"}
ADDRESS_PARTS = {
    "street": "Street", "city": "City", "state": "State", "countryOrRegion": "CountryOrRegion",
    "postalCode": "PostalCode",
}  # fmt: skip
PHONES = {"businessPhones": ("BusinessPhone", "BusinessPhone2"),
          "homePhones": ("HomePhone", "HomePhone2")}  # fmt: skip
CONTACT_READ_ONLY = {
    "id", "@odata.etag", "@odata.context", "createdDateTime", "lastModifiedDateTime",
    "changeKey", "parentFolderId", "initials", "title", "generation", "imAddresses",
    "officeLocation", "profession", "businessHomePage", "assistantName", "manager",
    "spouseName", "children", "nickName", "yomiGivenName", "yomiSurname", "yomiCompanyName",
    "birthday",
}  # fmt: skip
CONTACT_WRITABLE = {
    *CONTACT_SIMPLE, *ADDRESS_KEYS, *PHONES, "mobilePhone", "emailAddresses", "personalNotes",
    "categories", "singleValueExtendedProperties",
}  # fmt: skip


def _entries(elements: dict[str, str], name: str) -> dict[str, etree._Element]:
    raw = elements.get(name)
    return {e.get("Key") or "": e for e in items_xml.from_string(raw)} if raw else {}


def contact_json(view: ItemView, opts: RenderOptions) -> dict[str, Any]:
    """The Graph ``contact`` of a stored contact item."""
    el = view.elements
    emails = _entries(el, "EmailAddresses")
    phones = {k: e.text or "" for k, e in _entries(el, "PhoneNumbers").items()}
    addresses = _entries(el, "PhysicalAddresses")
    categories_raw = el.get("Categories")
    data: dict[str, Any] = {
        "@odata.etag": f'W/"{view.changekey}"',
        "id": ids.graph_id(view.id),
        "createdDateTime": graph_instant(view.created),
        "lastModifiedDateTime": graph_instant(view.modified),
        "changeKey": view.changekey,
        "categories": [c.text or "" for c in items_xml.from_string(categories_raw)]
        if categories_raw else [],
        "parentFolderId": view.folder_id,
        "birthday": None,
        "fileAs": element_text(el, "FileAs") or "",
        "displayName": element_text(el, "DisplayName") or "",
        "givenName": element_text(el, "GivenName"),
        "initials": None,
        "middleName": element_text(el, "MiddleName"),
        "nickName": None,
        "surname": element_text(el, "Surname"),
        "title": None,
        "generation": None,
        "imAddresses": [],
        "jobTitle": element_text(el, "JobTitle"),
        "companyName": element_text(el, "CompanyName"),
        "department": element_text(el, "Department"),
        "officeLocation": None,
        "profession": None,
        "businessHomePage": None,
        "assistantName": None,
        "manager": None,
        "homePhones": [phones[k] for k in PHONES["homePhones"] if phones.get(k)],
        "mobilePhone": phones.get("MobilePhone"),
        "businessPhones": [phones[k] for k in PHONES["businessPhones"] if phones.get(k)],
        "spouseName": None,
        "personalNotes": _body(el, RenderOptions(opts.tz, body_type="text"))["content"],
        "children": [],
        "emailAddresses": [
            {"name": emails[k].get("Name") or emails[k].text or "", "address": emails[k].text or ""}
            for k in ("EmailAddress1", "EmailAddress2", "EmailAddress3") if k in emails
        ],
    }  # fmt: skip
    for key, ews in ADDRESS_KEYS.items():
        entry = addresses.get(ews)
        data[key] = (
            {} if entry is None
            else {g: entry.findtext(f"{T}{e}") or "" for g, e in ADDRESS_PARTS.items()}
        )  # fmt: skip
    if opts.expand is not None:
        props = ext_properties(view, opts.expand)
        if props:
            data["singleValueExtendedProperties"] = props
    return _select(data, opts)


def contact_changes(body: Any, existing: dict[str, str] | None) -> Changes:
    """Graph contact JSON → ``Changes``; phones/addresses merge into ``existing`` elements."""
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.")
    for key in body:
        if key not in CONTACT_WRITABLE and key not in CONTACT_READ_ONLY and not key.startswith("@"):
            raise bad_request(
                f"The property '{key}' does not exist on type 'microsoft.graph.contact'. Make "
                "sure to only use property names that are defined by the type."
            )
    existing = existing or {}
    fields: dict[str, Any] = {}
    cleared: list[str] = []
    for key, name in CONTACT_SIMPLE.items():
        if key in body:
            if body[key] in (None, ""):
                cleared.append(items_xml.element_for_field(name) or "")
            else:
                fields[name] = _string(body, key)
    if "personalNotes" in body:
        fields["body"], fields["body_type"] = str(body["personalNotes"] or ""), "Text"
    if "categories" in body:
        cats = body["categories"] or []
        if not isinstance(cats, list):
            raise bad_request("categories must be an array of strings")
        if cats:
            fields["categories"] = [str(c) for c in cats]
        else:
            cleared.append("Categories")
    if "emailAddresses" in body:
        emails = body["emailAddresses"] or []
        if not isinstance(emails, list) or len(emails) > 3:
            raise bad_request("emailAddresses must be an array of at most 3 emailAddress objects")
        entries = {
            f"EmailAddress{i}": str((e or {}).get("address") or "")
            for i, e in enumerate(emails, 1)
            if isinstance(e, dict) and e.get("address")
        }
        if entries:
            fields["email_addresses"] = entries
        else:
            cleared.append("EmailAddresses")
    phones = {k: e.text or "" for k, e in _entries(existing, "PhoneNumbers").items()}
    phones_changed = False
    for key, slots in PHONES.items():
        if key in body:
            values = body[key] or []
            if not isinstance(values, list):
                raise bad_request(f"{key} must be an array of strings")
            for i, slot in enumerate(slots):
                phones.pop(slot, None)
                if i < len(values) and values[i]:
                    phones[slot] = str(values[i])
            phones_changed = True
    if "mobilePhone" in body:
        phones.pop("MobilePhone", None)
        if body["mobilePhone"]:
            phones["MobilePhone"] = str(body["mobilePhone"])
        phones_changed = True
    if phones_changed:
        if phones:
            fields["phone_numbers"] = phones
        else:
            cleared.append("PhoneNumbers")
    addresses = {
        k: {_part_key(p): p.text or "" for p in e}
        for k, e in _entries(existing, "PhysicalAddresses").items()
    }
    addresses_changed = False
    for key, ews in ADDRESS_KEYS.items():
        if key in body:
            value = body[key] or {}
            if not isinstance(value, dict):
                raise bad_request(f"{key} must be a physicalAddress object")
            parts = {_ADDRESS_JSON[g]: str(v) for g, v in value.items() if g in _ADDRESS_JSON and v}
            addresses.pop(ews, None)
            if parts:
                addresses[ews] = parts
            addresses_changed = True
    if addresses_changed:
        if addresses:
            fields["physical_addresses"] = addresses
        else:
            cleared.append("PhysicalAddresses")
    if body.get("singleValueExtendedProperties") is not None:
        fields["extended_properties"] = ext_fields(body["singleValueExtendedProperties"])
    return Changes(fields, [c for c in cleared if c])


# Graph physicalAddress keys → the backdoor's address keys.
_ADDRESS_JSON = {"street": "street", "city": "city", "state": "state",
                 "countryOrRegion": "country", "postalCode": "postal_code"}  # fmt: skip
_PART_KEYS = {"Street": "street", "City": "city", "State": "state",
              "CountryOrRegion": "country", "PostalCode": "postal_code"}  # fmt: skip


def _part_key(elem: etree._Element) -> str:
    return _PART_KEYS.get(items_xml.local(elem), "street")
