"""GetFolder, FindFolder and CreateFolder."""

from __future__ import annotations

from lxml import etree

from exchange_ext.sandbox.contract import EwsError
from exchange_ext.sandbox.operations.common import (
    Context,
    children,
    each_input,
    m,
    resolve_folder,
    response,
    t,
)
from exchange_ext.sandbox.store import Folder

MAX_PAGE = 1000  # FindFolder page cap
CLASS_BY_ELEMENT = {
    "CalendarFolder": "IPF.Appointment",
    "ContactsFolder": "IPF.Contact",
    "TasksFolder": "IPF.Task",
    "Folder": "IPF.Note",
}


def render_folder(ctx: Context, folder: Folder) -> etree._Element:
    """A folder element in BaseFolderType order (FolderId … ChildFolderCount, UnreadCount)."""
    elem = etree.Element(t(folder.element_name))
    etree.SubElement(elem, t("FolderId"), Id=folder.id, ChangeKey=folder.changekey)
    parent = ctx.store.folder(folder.parent_id) if folder.parent_id else None
    if parent is not None:
        etree.SubElement(elem, t("ParentFolderId"), Id=parent.id, ChangeKey=parent.changekey)
    if folder.folder_class:
        etree.SubElement(elem, t("FolderClass")).text = folder.folder_class
    etree.SubElement(elem, t("DisplayName")).text = folder.display_name
    etree.SubElement(elem, t("TotalCount")).text = str(ctx.store.item_count(folder.id))
    etree.SubElement(elem, t("ChildFolderCount")).text = str(
        len(ctx.store.child_folders(folder.id))
    )
    if folder.distinguished:
        etree.SubElement(elem, t("DistinguishedFolderId")).text = folder.distinguished
    if folder.element_name in ("Folder", "TasksFolder"):
        etree.SubElement(elem, t("UnreadCount")).text = "0"
    return elem


def get_folder(ctx: Context) -> etree._Element:
    """https://learn.microsoft.com/exchange/client-developer/web-service-reference/getfolder-operation"""

    def handle(ref: etree._Element) -> list[etree._Element]:
        folders = etree.Element(m("Folders"))
        folders.append(render_folder(ctx, resolve_folder(ctx, ref)))
        return [folders]

    return response(
        "GetFolder", each_input("GetFolder", children(ctx.body.find(m("FolderIds"))), handle)
    )


def find_folder(ctx: Context) -> etree._Element:
    """https://learn.microsoft.com/exchange/client-developer/web-service-reference/findfolder-operation"""
    deep = ctx.body.get("Traversal") == "Deep"
    view = ctx.body.find(m("IndexedPageFolderView"))

    def handle(ref: etree._Element) -> list[etree._Element]:
        parent = resolve_folder(ctx, ref)
        if deep and parent.mailbox is None:
            # Public folders do not support deep traversal.
            raise EwsError("ErrorInvalidOperation", "Deep traversal of public folders.")
        found = ctx.store.child_folders(parent.id, deep=deep)
        return [_paged_folders(ctx, found, view)]

    parents = children(ctx.body.find(m("ParentFolderIds")))
    return response("FindFolder", each_input("FindFolder", parents, handle))


def _paged_folders(
    ctx: Context, found: list[Folder], view: etree._Element | None
) -> etree._Element:
    offset = int(view.get("Offset", "0")) if view is not None else 0
    limit = int(view.get("MaxEntriesReturned", MAX_PAGE)) if view is not None else MAX_PAGE
    page = found[offset : offset + min(limit, MAX_PAGE)]
    root = etree.Element(m("RootFolder"))
    root.set("IndexedPagingOffset", str(offset + len(page)))
    root.set("TotalItemsInView", str(len(found)))
    root.set("IncludesLastItemInRange", "true" if offset + len(page) >= len(found) else "false")
    folders = etree.SubElement(root, t("Folders"))
    folders.extend(render_folder(ctx, f) for f in page)
    return root


def create_folder(ctx: Context) -> etree._Element:
    """https://learn.microsoft.com/exchange/client-developer/web-service-reference/createfolder-operation"""
    parent_ref = children(ctx.body.find(m("ParentFolderId")))
    try:
        parent = resolve_folder(ctx, parent_ref[0]) if parent_ref else None
    except EwsError as err:
        parent, failure = None, err
    else:
        failure = None

    def handle(spec: etree._Element) -> list[etree._Element]:
        if parent is None:
            raise failure or EwsError("ErrorFolderNotFound", "No parent folder.")
        kind = etree.QName(spec).localname
        name = (spec.findtext(t("DisplayName")) or "").strip()
        if not name:
            raise EwsError("ErrorInvalidFolderId", "A folder needs a DisplayName.")
        folder_class = spec.findtext(t("FolderClass")) or CLASS_BY_ELEMENT.get(kind, "IPF.Note")
        created = ctx.store.create_folder(parent.id, name, folder_class)
        folders = etree.Element(m("Folders"))
        etree.SubElement(etree.SubElement(folders, t(created.element_name)), t("FolderId"),
                         Id=created.id, ChangeKey=created.changekey)  # fmt: skip
        return [folders]

    specs = children(ctx.body.find(m("Folders")))
    return response("CreateFolder", each_input("CreateFolder", specs, handle))
