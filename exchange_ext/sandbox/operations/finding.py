"""FindItem: IndexedPageItemView paging, CalendarView expansion, Restriction and SortOrder."""

from __future__ import annotations

import datetime as dt
from typing import Any

from lxml import etree

from exchange_ext.sandbox import items_xml, restrictions
from exchange_ext.sandbox.contract import EwsError
from exchange_ext.sandbox.items_xml import ItemView
from exchange_ext.sandbox.operations import calendar
from exchange_ext.sandbox.operations.common import (
    Context,
    children,
    each_input,
    m,
    resolve_folder,
    response,
    t,
)

MAX_PAGE = 1000  # Exchange caps FindItem pages at 1000 items by default (EWSFindCountLimit)


def lookup_for(view: ItemView) -> restrictions.Lookup:
    """The property lookup ``restrictions.evaluate`` calls, over one item view."""

    def lookup(path: restrictions.PropertyPath) -> Any:
        if path.kind == "extended":
            return items_xml.property_value(view, items_xml.path_key(path))
        if path.kind == "indexed":
            return _indexed_value(view, path.field_uri or "", path.field_index or "")
        return items_xml.property_value(view, path.field_uri or "")

    return lookup


def _indexed_value(view: ItemView, uri: str, key: str) -> str | None:
    raw = view.elements.get(items_xml.field_name(uri))
    if raw is None:
        return None
    for entry in items_xml.from_string(raw):
        if entry.get("Key") == key:
            part = uri.split(":")[2] if uri.count(":") == 2 else None
            return entry.findtext(t(part)) if part else entry.text
    return None


def find_item(ctx: Context) -> etree._Element:
    """https://learn.microsoft.com/exchange/client-developer/web-service-reference/finditem-operation"""
    body = ctx.body
    shape = items_xml.parse_shape(body.find(m("ItemShape")))
    restriction = body.find(m("Restriction"))
    sort_order = body.find(m("SortOrder"))

    def handle(ref: etree._Element) -> list[etree._Element]:
        folder = resolve_folder(ctx, ref)
        items = (
            ctx.store.items_in(folder.id) if body.get("Traversal", "Shallow") == "Shallow" else []
        )
        cal_view = body.find(m("CalendarView"))
        if cal_view is not None:
            views = _calendar_views(ctx, items, cal_view)
        else:
            views = [calendar.item_view(ctx.store, item) for item in items]
        if restriction is not None:
            views = [v for v in views if restrictions.evaluate(restriction, lookup_for(v))]
        if sort_order is not None:
            views = _sorted(views, sort_order)
        return [_root_folder(views, shape, body, cal_view is not None)]

    parents = children(body.find(m("ParentFolderIds")))
    return response("FindItem", each_input("FindItem", parents, handle))


def _calendar_views(ctx: Context, items: list, cal_view: etree._Element) -> list[ItemView]:
    start = items_xml.parse_datetime(cal_view.get("StartDate", ""))
    end = items_xml.parse_datetime(cal_view.get("EndDate", ""))
    calendar.check_window(start, end)
    return calendar.calendar_view(ctx.store, items, start, end)


def _sorted(views: list[ItemView], sort_order: etree._Element) -> list[ItemView]:
    # Stable sorts applied from the least significant FieldOrder to the most significant one.
    for order in reversed(children(sort_order)):
        path = restrictions.path_from_element(order[0])
        descending = order.get("Order") == "Descending"
        views = sorted(views, key=lambda v, p=path: _sort_key(lookup_for(v)(p)), reverse=descending)
    return views


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (1, "")
    if isinstance(value, list):
        value = value[0] if value else ""
    if isinstance(value, str):
        return (0, value.casefold())
    if isinstance(value, dt.datetime):
        return (0, value.timestamp())
    return (0, value)


def _root_folder(
    views: list[ItemView], shape: items_xml.Shape, body: etree._Element, is_calendar: bool
) -> etree._Element:
    root = etree.Element(m("RootFolder"))
    total = len(views)
    if is_calendar:
        limit = _int(body.find(m("CalendarView")), "MaxEntriesReturned", MAX_PAGE)
        page, offset = views[: min(limit, MAX_PAGE)], None
        last = len(page) >= total
    else:
        page, offset, last = _indexed_page(views, body.find(m("IndexedPageItemView")))
    if offset is not None:
        root.set("IndexedPagingOffset", str(offset))
    root.set("TotalItemsInView", str(total))
    root.set("IncludesLastItemInRange", "true" if last else "false")
    items = etree.SubElement(root, t("Items"))
    items.extend(items_xml.render_item(v, shape) for v in page)
    return root


def _indexed_page(
    views: list[ItemView], view: etree._Element | None
) -> tuple[list[ItemView], int, bool]:
    """The page of an IndexedPageItemView and the next offset (counted from its BasePoint)."""
    # https://learn.microsoft.com/exchange/client-developer/web-service-reference/indexedpageitemview
    offset = max(0, _int(view, "Offset", 0))
    limit = max(1, min(_int(view, "MaxEntriesReturned", MAX_PAGE), MAX_PAGE))
    if view is not None and view.get("BasePoint") == "End":
        stop = max(0, len(views) - offset)
        page = views[max(0, stop - limit) : stop]
        return page, offset + len(page), stop - len(page) <= 0
    page = views[offset : offset + limit]
    return page, offset + len(page), offset + len(page) >= len(views)


def _int(elem: etree._Element | None, name: str, default: int) -> int:
    if elem is None or elem.get(name) is None:
        return default
    try:
        return int(elem.get(name, ""))
    except ValueError as exc:
        raise EwsError("ErrorInvalidPagingMaxRows", f"Bad {name}.") from exc
