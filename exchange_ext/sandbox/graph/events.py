"""Calendars and events: list/create/get/update/delete, instances, calendarView, and the item
enumeration ``delta`` uses for ``calendarView/delta``.

Handlers work on store ids: an item's own id for single instances and series masters, the
``operations.calendar.occurrence_id`` for occurrences and exceptions. On the wire they are
Graph ids (``ids``): ``routes`` maps them back before a handler runs, rendering maps them out.
https://learn.microsoft.com/graph/api/resources/event
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any

from exchange_ext.sandbox import items_xml
from exchange_ext.sandbox.contract import EwsError
from exchange_ext.sandbox.items_xml import ItemView
from exchange_ext.sandbox.operations import calendar
from exchange_ext.sandbox.store import Folder, Item

from . import ids, json_items
from .errors import GraphError, bad_request, item_not_found
from .request import MAX_TOP, GraphRequest, GraphResponse, if_match

MAX_WINDOW_DAYS = 1825  # Graph's calendarView range limit
_EXT_FILTER = re.compile(
    r"^\s*singleValueExtendedProperties/any\(\s*(\w+)\s*:\s*\1/id\s+eq\s+'((?:[^']|'')*)'\s+"
    r"and\s+\1/value\s+eq\s+'((?:[^']|'')*)'\s*\)\s*$",
    re.IGNORECASE,
)


# ---------------------------------------------------------------------------- folders


def calendar_folder(request: GraphRequest, ref: str | None) -> Folder:
    """The default calendar (``ref`` None) or the calendar folder with id ``ref``."""
    store = request.sandbox.store
    folder = (
        store.distinguished_folder(request.mailbox, "calendar")
        if ref is None
        else store.folder(ref)
    )
    if (
        folder is None
        or folder.mailbox != request.mailbox
        or folder.folder_class != "IPF.Appointment"
    ):
        raise item_not_found()
    return folder


def _calendar_json(request: GraphRequest, folder: Folder) -> dict[str, Any]:
    owner = request.sandbox.store.display_name(request.mailbox)
    return {
        "id": folder.id,
        "name": folder.display_name,
        "color": "auto",
        "hexColor": "",
        "isDefaultCalendar": folder.distinguished == "calendar",
        "changeKey": folder.changekey,
        "canShare": True,
        "canViewPrivateItems": True,
        "canEdit": True,
        "allowedOnlineMeetingProviders": ["teamsForBusiness"],
        "defaultOnlineMeetingProvider": "teamsForBusiness",
        "isTallyingResponses": True,
        "isRemovable": folder.distinguished != "calendar",
        "owner": {"name": owner, "address": request.mailbox},
    }


def get_calendar(request: GraphRequest, ref: str | None = None) -> GraphResponse:
    """GET /users/{id}/calendar — https://learn.microsoft.com/graph/api/calendar-get"""
    folder = calendar_folder(request, ref)
    body = {"@odata.context": request.context(f"users('{request.mailbox}')/calendar/$entity")}
    return GraphResponse(200, body | _calendar_json(request, folder))


def list_calendars(request: GraphRequest) -> GraphResponse:
    """GET /users/{id}/calendars — https://learn.microsoft.com/graph/api/user-list-calendars"""
    store = request.sandbox.store
    root = store.distinguished_folder(request.mailbox, "msgfolderroot")
    folders = [
        f for f in store.child_folders(root.id, deep=True) if f.folder_class == "IPF.Appointment"
    ]
    return GraphResponse(
        200,
        {
            "@odata.context": request.context(f"users('{request.mailbox}')/calendars"),
            "value": [_calendar_json(request, f) for f in folders],
        },
    )


# ---------------------------------------------------------------------------- lookups


def _item(request: GraphRequest, event_id: str) -> Item:
    item = request.sandbox.store.item(event_id)
    if item is None or item.mailbox != request.mailbox or item.kind != "CalendarItem":
        raise item_not_found()
    return item


def event_view(request: GraphRequest, event_id: str) -> ItemView:
    """The view of an event id (item or occurrence); 404 ErrorItemNotFound when there is none."""
    store = request.sandbox.store
    occurrence = calendar.parse_occurrence_id(event_id)
    if occurrence is None:
        return calendar.item_view(store, _item(request, event_id))
    master = _item(request, occurrence[0])
    try:
        return calendar.occurrence_view(store, master, occurrence[1])
    except EwsError:
        raise item_not_found() from None


def view_or_none(request: GraphRequest, event_id: str) -> ItemView | None:
    try:
        return event_view(request, event_id)
    except GraphError:
        return None


def _render(request: GraphRequest, view: ItemView) -> dict[str, Any]:
    return json_items.event_json(view, request.mailbox, request.render_options())


# ---------------------------------------------------------------------------- list / filter


def _filter(request: GraphRequest) -> tuple[str, str] | None:
    raw = request.query.get("$filter")
    if raw is None:
        return None
    match = _EXT_FILTER.match(raw)
    if match is None:
        raise bad_request(
            "The sandbox supports $filter=singleValueExtendedProperties/Any(ep: ep/id eq '...' "
            f"and ep/value eq '...') only, not {raw!r}.",
            "ErrorInvalidUrlQueryFilter",
        )
    return json_items.ext_key(match.group(2).replace("''", "'")), match.group(3).replace("''", "'")


def matches(item_extended: dict[str, str], wanted: tuple[str, str] | None) -> bool:
    """Whether an item carries the extended property value (values compare case-insensitive)."""
    if wanted is None:
        return True
    raw = item_extended.get(wanted[0])
    value = items_xml.extended_value(raw) if raw else None
    return isinstance(value, str) and value.lower() == wanted[1].lower()


def _page(request: GraphRequest, rendered: list[Any], context: str, total: int) -> GraphResponse:
    body: dict[str, Any] = {"@odata.context": context, "value": rendered}
    skip = request.int_param("$skip", 0, 10**9)
    top = request.int_param("$top", request.page_size(), MAX_TOP)
    if skip + top < total:
        params = {k: v for k, v in request.query.items() if k not in ("$skip", "$top")}
        body["@odata.nextLink"] = request.link(**params, **{"$top": str(top)}, **{
            "$skip": str(skip + top)})  # fmt: skip
    return GraphResponse(200, body)


def _window_slice(request: GraphRequest, items: list[Any]) -> list[Any]:
    skip = request.int_param("$skip", 0, 10**9)
    top = request.int_param("$top", request.page_size(), MAX_TOP)
    return items[skip : skip + top]


def list_events(request: GraphRequest, ref: str | None = None) -> GraphResponse:
    """GET /users/{id}/events (singles and series masters) with $filter/$top/$skip/$expand.

    https://learn.microsoft.com/graph/api/user-list-events
    https://learn.microsoft.com/graph/api/singlevaluelegacyextendedproperty-get
    """
    store = request.sandbox.store
    wanted = _filter(request)
    with store.lock:
        folder = calendar_folder(request, ref)
        items = [i for i in store.items_in(folder.id) if matches(i.extended, wanted)]
        chosen = _window_slice(request, items)
        rendered = [_render(request, calendar.item_view(store, i)) for i in chosen]
    context = request.context(f"users('{request.mailbox}')/events")
    return _page(request, rendered, context, len(items))


# ---------------------------------------------------------------------------- create


def _transactions(request: GraphRequest) -> dict[str, str]:
    """transactionId → item id for the request's mailbox (indexed once, then kept up to date)."""
    index = request.graph.transactions.get(request.mailbox)
    if index is None:
        index = {}
        store = request.sandbox.store
        root = store.distinguished_folder(request.mailbox, "root")
        for folder in [root, *store.child_folders(root.id, deep=True)]:
            for item in store.items_in(folder.id):
                if json_items.TRANSACTION_KEY in item.extended:
                    index[json_items.transaction_id(item.extended) or ""] = item.id
        request.graph.transactions[request.mailbox] = index
    return index


def _find_transaction(request: GraphRequest, transaction: str) -> Item | None:
    item_id = _transactions(request).get(transaction)
    item = request.sandbox.store.item(item_id) if item_id else None
    if item is None or item.mailbox != request.mailbox:
        return None
    return item


def create_event(request: GraphRequest, ref: str | None = None) -> GraphResponse:
    """POST /users/{id}/events — https://learn.microsoft.com/graph/api/user-post-events

    A ``transactionId`` already used in this mailbox returns the event created with it (201,
    no second event): the retry-safety the property exists for.
    https://learn.microsoft.com/graph/api/resources/event (transactionId)
    """
    body = request.json_body()
    transaction = body.get("transactionId")
    if transaction is not None and not isinstance(transaction, str):
        raise bad_request("transactionId must be a string")
    changes = json_items.event_changes(body, creating=True)
    store = request.sandbox.store
    with store.lock:
        folder = calendar_folder(request, ref)
        existing = _find_transaction(request, transaction) if transaction else None
        if existing is not None:
            view = calendar.item_view(store, existing)
        else:
            fields = dict(changes.fields)
            if transaction:
                fields["extended_properties"] = [
                    *fields.get("extended_properties", []),
                    json_items.transaction_spec(transaction),
                ]
            elements, extended = _elements(fields)
            elements.setdefault(
                "UID", items_xml.to_string(items_xml.text_element("UID", _new_uid()))
            )
            item = store.create_item(folder.id, "CalendarItem", elements, extended)
            if transaction:
                _transactions(request)[transaction] = item.id
            _record_invitation(request, item, "MeetingRequest")
            view = calendar.item_view(store, item)
        rendered = _render(request, view)
    request.sandbox.save()
    rendered = {
        "@odata.context": request.context(f"users('{request.mailbox}')/events/$entity")
    } | rendered
    location = f"{request.base}/v1.0/users('{request.mailbox}')/events('{ids.graph_id(view.id)}')"
    return GraphResponse(201, rendered, {"Location": location})


def _new_uid() -> str:
    # Exchange generates an iCalendar UID for every new calendar item.
    return uuid.uuid4().hex.upper()


def _elements(fields: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    try:
        return items_xml.fields_to_elements("CalendarItem", fields)
    except EwsError as exc:
        raise bad_request(exc.message) from None


def _record_invitation(request: GraphRequest, item: Item, kind: str) -> None:
    """Graph always sends invitations to attendees; record what would be sent, never send it."""
    # https://learn.microsoft.com/graph/api/user-post-events ("When an event is sent, the
    # server sends invitations to all the attendees.")
    from exchange_ext.sandbox.operations.items import attendee_addresses

    recipients = attendee_addresses(item.elements)
    if not recipients:
        return
    request.sandbox.outbox.messages.append({
        "type": kind, "mailbox": item.mailbox, "item_id": item.id,
        "uid": items_xml.element_text(item.elements, "UID"),
        "subject": items_xml.element_text(item.elements, "Subject"),
        "start": items_xml.element_text(item.elements, "Start"),
        "end": items_xml.element_text(item.elements, "End"),
        "to": recipients, "disposition": "SendToAllAndSaveCopy",
        "operation": "graph", "at": items_xml.format_datetime(request.sandbox.now()),
    })  # fmt: skip


# ---------------------------------------------------------------------------- get / update


def get_event(request: GraphRequest, event_id: str) -> GraphResponse:
    """GET /users/{id}/events/{id} — https://learn.microsoft.com/graph/api/event-get"""
    store = request.sandbox.store
    with store.lock:
        view = event_view(request, event_id)
        if {event_id, view.id} & store.unreadable:
            raise GraphError(500, "ErrorItemCorrupt", "The item is corrupt and cannot be read.")
        rendered = _render(request, view)
    context = request.context(f"users('{request.mailbox}')/events/$entity")
    return GraphResponse(200, {"@odata.context": context} | rendered)


def update_event(request: GraphRequest, event_id: str) -> GraphResponse:
    """PATCH /users/{id}/events/{id}, honouring ``If-Match`` (412 when stale).

    https://learn.microsoft.com/graph/api/event-update
    """
    body = request.json_body()
    if "transactionId" in body:
        # "you cannot change transactionId in a subsequent update"
        raise bad_request("transactionId cannot be changed.", "ErrorInvalidPropertyUpdate")
    changes = json_items.event_changes(body, creating=False)
    store = request.sandbox.store
    with store.lock:
        view = event_view(request, event_id)
        if_match(request, view.changekey)
        elements, extended = _elements(changes.fields)
        occurrence = calendar.parse_occurrence_id(event_id)
        if occurrence is None:
            item = _item(request, event_id)
            store.update_item(item, elements, changes.cleared, extended)
        else:
            master = _item(request, occurrence[0])
            keep = {k: v for k, v in elements.items() if k != "Recurrence"}
            store.modify_occurrence(master, occurrence[1], keep)
            if extended:
                store.update_item(master, set_extended=extended)
        rendered = _render(request, event_view(request, event_id))
    request.sandbox.save()
    if "return=minimal" in (request.header("Prefer") or ""):
        request.apply("return=minimal")
        return GraphResponse(204)
    context = request.context(f"users('{request.mailbox}')/events/$entity")
    return GraphResponse(200, {"@odata.context": context} | rendered)


def delete_event(request: GraphRequest, event_id: str) -> GraphResponse:
    """DELETE /users/{id}/events/{id} (an occurrence id deletes that occurrence) → 204.

    https://learn.microsoft.com/graph/api/event-delete
    """
    store = request.sandbox.store
    with store.lock:
        view = event_view(request, event_id)
        if_match(request, view.changekey)
        occurrence = calendar.parse_occurrence_id(event_id)
        if occurrence is None:
            store.delete_item(event_id)
        else:
            store.delete_occurrence(_item(request, occurrence[0]), occurrence[1])
    request.sandbox.save()
    return GraphResponse(204)


# ---------------------------------------------------------------------------- views


def window(request: GraphRequest) -> tuple[dt.datetime, dt.datetime]:
    """``startDateTime``/``endDateTime`` of the query (both required; ≤ 1825 days)."""
    start = json_items.parse_query_datetime(request.query.get("startDateTime"), "startDateTime")
    end = json_items.parse_query_datetime(request.query.get("endDateTime"), "endDateTime")
    if end < start:
        raise bad_request("The EndDateTime is before the StartDateTime.", "ErrorInvalidParameter")
    if end - start > dt.timedelta(days=MAX_WINDOW_DAYS):
        raise bad_request(
            "The value for the EndDateTime parameter is out of range. Maximum number of days: "
            f"{MAX_WINDOW_DAYS}",
            "ErrorInvalidRequest",
        )
    return start, end


def views_in_window(
    request: GraphRequest, folder: Folder, start: dt.datetime, end: dt.datetime
) -> list[ItemView]:
    """Singles, occurrences and exceptions overlapping [start, end); deleted occurrences
    (cancelled ones) are not there."""
    store = request.sandbox.store
    try:
        return calendar.calendar_view(store, store.items_in(folder.id), start, end)
    except EwsError as exc:
        raise bad_request(exc.message) from None


def calendar_view(request: GraphRequest, ref: str | None = None) -> GraphResponse:
    """GET /users/{id}/calendarView?startDateTime=&endDateTime= with $top/$skip.

    https://learn.microsoft.com/graph/api/user-list-calendarview
    """
    start, end = window(request)
    store = request.sandbox.store
    with store.lock:
        views = views_in_window(request, calendar_folder(request, ref), start, end)
        rendered = [_render(request, v) for v in _window_slice(request, views)]
    context = request.context(f"users('{request.mailbox}')/calendarView")
    return _page(request, rendered, context, len(views))


def instances(request: GraphRequest, event_id: str) -> GraphResponse:
    """GET /users/{id}/events/{id}/instances?startDateTime=&endDateTime=

    https://learn.microsoft.com/graph/api/event-list-instances
    """
    start, end = window(request)
    store = request.sandbox.store
    with store.lock:
        master = _item(request, event_id)
        try:
            views = calendar.calendar_view(store, [master], start, end)
        except EwsError as exc:
            raise bad_request(exc.message) from None
        rendered = [_render(request, v) for v in _window_slice(request, views)]
    event = ids.graph_id(event_id)
    context = request.context(f"users('{request.mailbox}')/events('{event}')/instances")
    return _page(request, rendered, context, len(views))
