"""GetItem, CreateItem, UpdateItem and DeleteItem for CalendarItem, Contact and Task.

Meeting messages are never sent: when a request asks Exchange to send invitations, updates or
cancellations for an item with attendees, the message is recorded in ``sandbox.outbox``.
"""

from __future__ import annotations

import uuid
from typing import Any

from lxml import etree

from exchange_ext.sandbox import items_xml
from exchange_ext.sandbox.contract import EwsError
from exchange_ext.sandbox.items_xml import ItemView, Properties
from exchange_ext.sandbox.operations import calendar
from exchange_ext.sandbox.operations.common import (
    Context,
    T,
    Target,
    children,
    default_folder,
    each_input,
    m,
    resolve_folder,
    resolve_item,
    response,
    t,
    target_changekey,
)
from exchange_ext.sandbox.store import Item

ITEM_ID_TAGS = {t("ItemId"), t("OccurrenceItemId"), t("RecurringMasterItemId")}


def target_view(ctx: Context, target: Target) -> ItemView:
    if target.original_start is not None:
        return calendar.occurrence_view(ctx.store, target.item, target.original_start)
    return calendar.item_view(ctx.store, target.item)


def items_payload(*elements: etree._Element) -> etree._Element:
    container = etree.Element(m("Items"))
    container.extend(elements)
    return container


def id_only(view: ItemView) -> etree._Element:
    return items_xml.render_item(view, items_xml.Shape(base="IdOnly"))


# ------------------------------------------------------------------------- GetItem


def get_item(ctx: Context) -> etree._Element:
    """https://learn.microsoft.com/exchange/client-developer/web-service-reference/getitem-operation"""
    shape = items_xml.parse_shape(ctx.body.find(m("ItemShape")))

    def handle(ref: etree._Element) -> list[etree._Element]:
        target = resolve_item(ctx, ref)
        if target.item.id in ctx.store.unreadable:
            raise EwsError("ErrorItemCorrupt", "The item is corrupt and cannot be read.")
        view = target_view(ctx, target)
        return [items_payload(items_xml.render_item(view, shape))]

    ids = children(ctx.body.find(m("ItemIds")))
    return response("GetItem", each_input("GetItem", ids, handle))


# ------------------------------------------------------------------------- CreateItem


def create_item(ctx: Context) -> etree._Element:
    """https://learn.microsoft.com/exchange/client-developer/web-service-reference/createitem-operation"""
    saved = children(ctx.body.find(m("SavedItemFolderId")))
    send = ctx.body.get("SendMeetingInvitations", "SendToNone")

    def handle(spec: etree._Element) -> list[etree._Element]:
        kind, elements, extended = items_xml.parse_item(spec)
        folder = resolve_folder(ctx, saved[0]) if saved else default_folder(ctx, kind)
        if kind == "CalendarItem":
            elements.setdefault("UID", items_xml.to_string(text_element_uid()))
            calendar.recurrence_of_elements(elements)  # validates the pattern up front
        item = ctx.store.create_item(folder.id, kind, elements, extended)
        record_meeting_message(ctx, item, send, "MeetingRequest")
        return [items_payload(id_only(calendar.item_view(ctx.store, item)))]

    specs = children(ctx.body.find(m("Items")))
    return response("CreateItem", each_input("CreateItem", specs, handle))


def text_element_uid() -> etree._Element:
    # Exchange generates an iCalendar UID for every new calendar item.
    return items_xml.text_element("UID", uuid.uuid4().hex.upper())


def attendee_addresses(elements: dict[str, str]) -> list[str]:
    addresses = []
    for name in ("RequiredAttendees", "OptionalAttendees", "Resources"):
        raw = elements.get(name)
        if raw:
            container = items_xml.from_string(raw)
            addresses += [a.findtext(f"{T}Mailbox/{T}EmailAddress") or "" for a in container]
    return addresses


def record_meeting_message(
    ctx: Context, item: Item, send: str, kind: str, elements: dict[str, str] | None = None
) -> None:
    """Record the meeting message Exchange would send (never sent) when asked to and useful."""
    # https://learn.microsoft.com/exchange/client-developer/web-service-reference/createitem
    elements = item.elements if elements is None else elements
    recipients = attendee_addresses(elements)
    if item.kind != "CalendarItem" or send in ("SendToNone", "") or not recipients:
        return
    message: dict[str, Any] = {
        "type": kind,
        "mailbox": item.mailbox,
        "item_id": item.id,
        "uid": items_xml.element_text(item.elements, "UID"),
        "subject": items_xml.element_text(elements, "Subject"),
        "start": items_xml.element_text(elements, "Start"),
        "end": items_xml.element_text(elements, "End"),
        "to": recipients,
        "disposition": send,
        "operation": ctx.request.name,
        "at": items_xml.format_datetime(ctx.sandbox.now()),
    }
    ctx.sandbox.outbox.messages.append(message)


# ------------------------------------------------------------------------- UpdateItem


def update_item(ctx: Context) -> etree._Element:
    """https://learn.microsoft.com/exchange/client-developer/web-service-reference/updateitem-operation"""
    resolution = ctx.body.get("ConflictResolution", "AutoResolve")
    send = ctx.body.get("SendMeetingInvitationsOrCancellations", "SendToNone")

    def handle(change: etree._Element) -> list[etree._Element]:
        ref = next((c for c in change if c.tag in ITEM_ID_TAGS), None)
        if ref is None:
            raise EwsError("ErrorInvalidIdEmpty", "ItemChange without an item id.")
        target = resolve_item(ctx, ref)
        conflicts = check_changekey(ref.get("ChangeKey"), target_changekey(target), resolution)
        updates = change.find(t("Updates"))
        view = apply_change(ctx, target, updates if updates is not None else etree.Element("x"))
        record_meeting_message(ctx, target.item, send, "MeetingRequest", view.elements)
        payload = [items_payload(id_only(view))]
        if conflicts:
            results = etree.Element(m("ConflictResults"))
            etree.SubElement(results, t("Count")).text = str(conflicts)
            payload.append(results)
        return payload

    changes = children(ctx.body.find(m("ItemChanges")))
    return response("UpdateItem", each_input("UpdateItem", changes, handle))


def check_changekey(sent: str | None, current: str, resolution: str) -> int:
    """Number of conflicts resolved (0/1); raises per ConflictResolution semantics."""
    # https://learn.microsoft.com/exchange/client-developer/web-service-reference/updateitem
    if not sent:
        if resolution == "AlwaysOverwrite":
            return 0
        raise EwsError("ErrorChangeKeyRequired", "The change key is required for this operation.")
    if sent == current:
        return 0
    if resolution == "NeverOverwrite":
        raise EwsError(
            "ErrorIrresolvableConflict",
            "The send or update operation could not be performed because the change key passed "
            "in the request does not match the current change key for the item.",
        )
    return 1


def apply_change(ctx: Context, target: Target, updates: etree._Element) -> ItemView:
    """Apply t:Updates to an item or (creating an exception) to one occurrence."""
    item = target.item
    if target.original_start is not None:
        exception = item.exceptions.get(target.original_start)
        props = Properties(dict(exception.elements) if exception else {})
        items_xml.apply_updates(props, updates)
        props.elements.pop("Recurrence", None)
        ctx.store.modify_occurrence(item, target.original_start, props.elements)
        return calendar.occurrence_view(ctx.store, item, target.original_start)
    props = Properties(dict(item.elements), dict(item.extended))
    changed = items_xml.apply_updates(props, updates)
    if item.kind == "CalendarItem":
        calendar.recurrence_of_elements(props.elements)
        if changed & {"Recurrence", "Start"}:
            # A new pattern or series start invalidates exceptions, as in Exchange.
            item.exceptions.clear()
            item.deleted_occurrences.clear()
    item.elements, item.extended = props.elements, props.extended
    ctx.store.touch(item)
    return calendar.item_view(ctx.store, item)


# ------------------------------------------------------------------------- DeleteItem


def delete_item(ctx: Context) -> etree._Element:
    """https://learn.microsoft.com/exchange/client-developer/web-service-reference/deleteitem-operation"""
    delete_type = ctx.body.get("DeleteType", "HardDelete")
    send = ctx.body.get("SendMeetingCancellations", "SendToNone")

    def handle(ref: etree._Element) -> list[etree._Element]:
        target = resolve_item(ctx, ref)
        item = target.item
        if target.original_start is not None:
            ctx.store.delete_occurrence(item, target.original_start)
            return []
        record_meeting_message(ctx, item, send, "MeetingCancellation")
        trash = (
            ctx.store.distinguished_folder(item.mailbox, "deleteditems") if item.mailbox else None
        )
        if delete_type == "MoveToDeletedItems" and trash is not None and trash.id != item.folder_id:
            ctx.store.move_item(item.id, trash.id)
        else:
            ctx.store.delete_item(item.id)
        return []

    ids = children(ctx.body.find(m("ItemIds")))
    return response("DeleteItem", each_input("DeleteItem", ids, handle))
