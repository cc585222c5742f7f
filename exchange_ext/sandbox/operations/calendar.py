"""Calendar logic on top of the store: item views with computed calendar properties, recurring
masters, occurrences and exceptions, and CalendarView expansion (via ``recurrence``).

Occurrence semantics follow Microsoft's "Recurrence patterns and time zones" and CalendarView
pages: a master's occurrences are computed, a modified occurrence is an exception overriding
the master's properties, deleted ones are listed in DeletedOccurrences.
https://learn.microsoft.com/exchange/client-developer/exchange-web-services/how-to-access-a-recurring-series-by-using-ews-in-exchange
"""

from __future__ import annotations

import base64
import datetime as dt
from zoneinfo import ZoneInfo

from exchangelib.winzone import MS_TIMEZONE_TO_IANA_MAP
from lxml import etree

from exchange_ext.sandbox import items_xml, recurrence
from exchange_ext.sandbox.contract import NS_T, EwsError
from exchange_ext.sandbox.items_xml import ItemView, element_datetime, text_element
from exchange_ext.sandbox.store import Item, Store


def t(name: str) -> str:
    return f"{{{NS_T}}}{name}"


MAX_EXPANSION = 10_000  # occurrences per master per view: bounds every expansion loop
MAX_VIEW_DAYS = 731  # ErrorCalendarViewRangeTooBig beyond two years


def occurrence_id(master_id: str, original_start: str) -> str:
    """The stable ItemId of an occurrence (or exception) of a recurring master."""
    raw = f"{master_id}|{original_start}".encode()
    return "OCC" + base64.urlsafe_b64encode(raw).decode()


def parse_occurrence_id(item_id: str) -> tuple[str, str] | None:
    if not item_id.startswith("OCC"):
        return None
    try:
        master_id, _, start = base64.urlsafe_b64decode(item_id[3:].encode()).decode().partition("|")
    except (ValueError, UnicodeError):
        return None
    return master_id, start


def tz_of(item: Item) -> ZoneInfo:
    """The series' zone: StartTimeZone's Windows id mapped to IANA (UTC when unknown)."""
    raw = item.elements.get("StartTimeZone") or item.elements.get("MeetingTimeZone")
    zone_id = items_xml.from_string(raw).get("Id") if raw else None
    name = MS_TIMEZONE_TO_IANA_MAP.get(zone_id or "", "UTC")
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


def recurrence_of(item: Item) -> recurrence.Recurrence | None:
    """The series pattern of a calendar item (None for singles and non-calendar items)."""
    return recurrence_of_elements(item.elements) if item.kind == "CalendarItem" else None


def recurrence_of_elements(elements: dict[str, str]) -> recurrence.Recurrence | None:
    """Parse (and so validate: ErrorCalendarInvalidRecurrence) a stored t:Recurrence."""
    raw = elements.get("Recurrence")
    return None if raw is None else recurrence.parse_recurrence(items_xml.from_string(raw))


def _series(master: Item) -> dict:
    start = element_datetime(master.elements, "Start") or dt.datetime.now(dt.UTC)
    end = element_datetime(master.elements, "End") or start
    modified = {}
    for key, exc in master.exceptions.items():
        original = items_xml.parse_datetime(key)
        duration = end - start
        new_start = element_datetime(exc.elements, "Start") or original
        new_end = element_datetime(exc.elements, "End") or new_start + duration
        modified[original] = (new_start, new_end)
    return {
        "start": start,
        "end": end,
        "tz": tz_of(master),
        "deleted": [items_xml.parse_datetime(d) for d in master.deleted_occurrences],
        "modified": modified,
    }


def original_start_by_index(master: Item, index: str | None) -> str:
    """The original start (ISO UTC) of occurrence number ``index`` (OccurrenceItemId)."""
    rec = recurrence_of(master)
    if rec is None or not (index or "").isdigit():
        raise EwsError("ErrorCalendarOccurrenceIndexIsOutOfRecurrenceRange", "Not a series.")
    occ = recurrence.occurrence_by_index(rec, index=int(index or 0), **_series(master))
    return items_xml.format_datetime(occ.original_start)


def check_occurrence(master: Item, original_start: str) -> None:
    """Raise ErrorItemNotFound unless ``original_start`` is a live occurrence of ``master``."""
    rec = recurrence_of(master)
    series = _series(master)
    moment = items_xml.parse_datetime(original_start)
    ok = rec is not None and original_start not in master.deleted_occurrences
    if ok:
        kwargs = {k: series[k] for k in ("start", "end", "tz")}
        ok = recurrence.index_of(rec, original_start=moment, **kwargs) is not None
    if not ok:
        raise EwsError("ErrorItemNotFound", "The specified occurrence was not found.")


def _organizer(store: Store, item: Item) -> etree._Element:
    address = item.mailbox or ""
    organizer = etree.Element(t("Organizer"))
    mailbox = etree.SubElement(organizer, t("Mailbox"))
    etree.SubElement(mailbox, t("Name")).text = store.display_name(address)
    etree.SubElement(mailbox, t("EmailAddress")).text = address
    etree.SubElement(mailbox, t("RoutingType")).text = "SMTP"
    return organizer


def _calendar_computed(store: Store, item: Item, item_type: str) -> dict[str, etree._Element]:
    has_attendees = any(n in item.elements for n in ("RequiredAttendees", "OptionalAttendees"))
    computed = {
        "IsMeeting": text_element("IsMeeting", "true" if has_attendees else "false"),
        "IsCancelled": text_element("IsCancelled", "false"),
        "IsRecurring": text_element("IsRecurring", "false" if item_type == "Single" else "true"),
        "CalendarItemType": text_element("CalendarItemType", item_type),
        "MyResponseType": text_element("MyResponseType", "Organizer"),
    }
    if "Organizer" not in item.elements:
        computed["Organizer"] = _organizer(store, item)
    return computed


def item_view(store: Store, item: Item) -> ItemView:
    """The view of a stored item, with calendar properties computed for calendar items."""
    view = items_xml.view_of(item)
    if item.kind != "CalendarItem":
        return view
    rec = recurrence_of(item)
    view.computed = _calendar_computed(store, item, "Single" if rec is None else "RecurringMaster")
    if rec is not None:
        view.computed.update(_master_computed(item, rec))
    return view


def _occurrence_info(tag: str, master: Item, occ: recurrence.Occurrence) -> etree._Element:
    info = etree.Element(t(tag))
    original = items_xml.format_datetime(occ.original_start)
    etree.SubElement(info, t("ItemId"), Id=occurrence_id(master.id, original))
    etree.SubElement(info, t("Start")).text = items_xml.format_datetime(occ.start)
    etree.SubElement(info, t("End")).text = items_xml.format_datetime(occ.end)
    etree.SubElement(info, t("OriginalStart")).text = original
    return info


def _master_computed(master: Item, rec: recurrence.Recurrence) -> dict[str, etree._Element]:
    series = _series(master)
    first, last = recurrence.first_and_last(rec, **series)
    out: dict[str, etree._Element] = {}
    if first is not None:
        out["FirstOccurrence"] = _occurrence_info("FirstOccurrence", master, first)
    if last is not None:
        out["LastOccurrence"] = _occurrence_info("LastOccurrence", master, last)
    if master.exceptions:
        modified = etree.Element(t("ModifiedOccurrences"))
        for original in sorted(master.exceptions)[:MAX_EXPANSION]:
            occ = _occurrence_at(master, rec, series, original)
            if occ is not None:
                modified.append(_occurrence_info("Occurrence", master, occ))
        if len(modified):
            out["ModifiedOccurrences"] = modified
    if master.deleted_occurrences:
        deleted = etree.Element(t("DeletedOccurrences"))
        for original in sorted(master.deleted_occurrences)[:MAX_EXPANSION]:
            etree.SubElement(
                etree.SubElement(deleted, t("DeletedOccurrence")), t("Start")
            ).text = original
        out["DeletedOccurrences"] = deleted
    return out


def _occurrence_at(
    master: Item, rec: recurrence.Recurrence, series: dict, original: str
) -> recurrence.Occurrence | None:
    kwargs = {k: series[k] for k in ("start", "end", "tz")}
    index = recurrence.index_of(rec, original_start=items_xml.parse_datetime(original), **kwargs)
    if index is None:
        return None
    try:
        return recurrence.occurrence_by_index(rec, index=index, **series)
    except EwsError:
        return None


def occurrence_view(store: Store, master: Item, original_start: str) -> ItemView:
    """The view of one occurrence (Occurrence, or Exception when modified) of ``master``."""
    rec = recurrence_of(master)
    occ = _occurrence_at(master, rec, _series(master), original_start) if rec else None
    if occ is None:
        raise EwsError("ErrorItemNotFound", "The specified occurrence was not found.")
    return _view_for(store, master, occ)


def _view_for(store: Store, master: Item, occ: recurrence.Occurrence) -> ItemView:
    original = items_xml.format_datetime(occ.original_start)
    exception = master.exceptions.get(original)
    elements = {k: v for k, v in master.elements.items() if k != "Recurrence"}
    elements.update(exception.elements if exception else {})
    elements["Start"] = items_xml.to_string(
        text_element("Start", items_xml.format_datetime(occ.start))
    )
    elements["End"] = items_xml.to_string(text_element("End", items_xml.format_datetime(occ.end)))
    item_type = "Exception" if exception else "Occurrence"
    view = ItemView(
        "CalendarItem", occurrence_id(master.id, original),
        exception.changekey if exception else master.changekey, master.folder_id,
        master.created, exception.modified if exception else master.modified, elements,
        master.extended,
    )  # fmt: skip
    view.computed = _calendar_computed(store, master, item_type)
    view.computed["RecurrenceId"] = text_element("RecurrenceId", original)
    view.computed["OriginalStart"] = text_element("OriginalStart", original)
    return view


def check_window(start: dt.datetime, end: dt.datetime) -> None:
    if end < start:
        raise EwsError("ErrorCalendarEndDateIsEarlierThanStartDate", "EndDate is before StartDate.")
    if end - start > dt.timedelta(days=MAX_VIEW_DAYS):
        raise EwsError("ErrorCalendarViewRangeTooBig", "The calendar view range is too big.")


def calendar_view(
    store: Store, items: list[Item], start: dt.datetime, end: dt.datetime
) -> list[ItemView]:
    """Singles overlapping [start, end) plus expanded occurrences/exceptions, sorted by start."""
    # https://learn.microsoft.com/exchange/client-developer/web-service-reference/calendarview
    found: list[tuple[dt.datetime, ItemView]] = []
    for item in items:
        rec = recurrence_of(item)
        if rec is None:
            found.extend(_single_in_window(store, item, start, end))
            continue
        occurrences = recurrence.expand(
            rec, window_start=start, window_end=end, limit=MAX_EXPANSION, **_series(item)
        )
        found.extend((occ.start, _view_for(store, item, occ)) for occ in occurrences)
    found.sort(key=lambda pair: pair[0])
    return [view for _, view in found]


def _single_in_window(
    store: Store, item: Item, start: dt.datetime, end: dt.datetime
) -> list[tuple[dt.datetime, ItemView]]:
    item_start = element_datetime(item.elements, "Start")
    item_end = element_datetime(item.elements, "End") or item_start
    if item_start is None or item_end is None:
        return []
    if item_start < end and (item_end > start or item_start == item_end >= start):
        return [(item_start, item_view(store, item))]
    return []
