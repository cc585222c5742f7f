"""SyncFolderItems: Create/Update/Delete since an opaque sync state (see ``store.sync_changes``)."""

from __future__ import annotations

from lxml import etree

from exchange_ext.sandbox import items_xml
from exchange_ext.sandbox.contract import EwsError
from exchange_ext.sandbox.operations import calendar
from exchange_ext.sandbox.operations.common import (
    Context,
    check_folder_access,
    children,
    m,
    resolve_folder,
    response,
    success,
    t,
)
from exchange_ext.sandbox.soap import render_error_message
from exchange_ext.sandbox.store import MAX_SYNC_CHANGES

OP = "SyncFolderItems"


def sync_folder_items(ctx: Context) -> etree._Element:
    """https://learn.microsoft.com/exchange/client-developer/web-service-reference/syncfolderitems-operation"""
    try:
        message = _synced(ctx)
    except EwsError as err:
        # exchangelib reads SyncState and IncludesLastItemInRange before ResponseClass, and
        # Microsoft's own error sample carries both (empty state, true).
        message = render_error_message(OP, err)
        etree.SubElement(message, m("SyncState"))
        etree.SubElement(message, m("IncludesLastItemInRange")).text = "true"
    return response(OP, [message])


def _synced(ctx: Context) -> etree._Element:
    body = ctx.body
    refs = children(body.find(m("SyncFolderId")))
    if not refs:
        raise EwsError("ErrorSyncFolderNotFound", "No SyncFolderId.")
    try:
        folder = resolve_folder(ctx, refs[0])
    except EwsError as err:
        if err.code == "ErrorFolderNotFound":
            raise EwsError("ErrorSyncFolderNotFound", "The sync folder was not found.") from err
        raise
    check_folder_access(ctx, folder)
    if folder.mailbox is None:
        raise EwsError(
            "ErrorInvalidOperation", "SyncFolderItems is not supported on public folders."
        )
    shape = items_xml.parse_shape(body.find(m("ItemShape")))
    ignore = {ref.get("Id", "") for ref in children(body.find(m("Ignore")))}
    limit = int(body.findtext(m("MaxChangesReturned")) or MAX_SYNC_CHANGES)
    state = (body.findtext(m("SyncState")) or "").strip() or None
    changes, new_state, last = ctx.store.sync_changes(folder.id, state, limit, ignore)
    message = success(OP)
    etree.SubElement(message, m("SyncState")).text = new_state
    etree.SubElement(message, m("IncludesLastItemInRange")).text = "true" if last else "false"
    container = etree.SubElement(message, m("Changes"))
    for change, subject in changes:
        wrapper = etree.SubElement(container, t(change))
        if change == "Delete":
            etree.SubElement(wrapper, t("ItemId"), Id=subject)
        else:
            wrapper.append(items_xml.render_item(calendar.item_view(ctx.store, subject), shape))
    return message
