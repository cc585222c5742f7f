"""What every operation handler shares: the request context, response skeletons, id resolution.

Response skeleton (messages.xsd): ``m:<Op>Response/m:ResponseMessages/m:<Op>ResponseMessage``,
one message per input in input order; a failed input gets ``soap.render_error_message``.
Access rule: a caller may touch the effective mailbox (``request.mailbox``) and the public
folders; another mailbox's folder or item is ``ErrorAccessDenied`` (as Exchange answers a
caller without delegate rights).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from lxml import etree

from exchange_ext.sandbox import items_xml
from exchange_ext.sandbox.contract import NS_M, NS_T, EwsError, OperationRequest, SandboxState
from exchange_ext.sandbox.operations import calendar
from exchange_ext.sandbox.operations.calendar import parse_occurrence_id
from exchange_ext.sandbox.soap import render_error_message
from exchange_ext.sandbox.store import Folder, Item, Store

M = f"{{{NS_M}}}"
T = f"{{{NS_T}}}"
MAX_INPUTS = 1000  # bound on inputs per request (exchangelib sends chunks of 100)


def m(name: str) -> str:
    return M + name


def t(name: str) -> str:
    return T + name


@dataclass
class Context:
    """One request as handlers see it."""

    request: OperationRequest
    sandbox: SandboxState

    @property
    def store(self) -> Store:
        return self.sandbox.store

    @property
    def mailbox(self) -> str:
        return self.request.mailbox.lower()

    @property
    def body(self) -> etree._Element:
        return self.request.body


def response(op: str, messages: Iterable[etree._Element]) -> etree._Element:
    """``m:<op>Response`` holding ``messages`` in order."""
    root = etree.Element(m(f"{op}Response"), nsmap={"m": NS_M, "t": NS_T})
    container = etree.SubElement(root, m("ResponseMessages"))
    container.extend(messages)
    return root


def success(op: str, response_class: str = "Success", code: str = "NoError") -> etree._Element:
    """An ``m:<op>ResponseMessage`` with its ResponseCode; callers append the payload."""
    message = etree.Element(m(f"{op}ResponseMessage"), ResponseClass=response_class)
    etree.SubElement(message, m("ResponseCode")).text = code
    return message


def each_input(
    op: str,
    inputs: Iterable[etree._Element],
    handle: Callable[[etree._Element], list[etree._Element]],
) -> list[etree._Element]:
    """One ResponseMessage per input: ``handle``'s payload, or the EwsError it raised."""
    messages = []
    for count, elem in enumerate(inputs):
        if count >= MAX_INPUTS:
            raise EwsError("ErrorExceededFindCountLimit", "Too many inputs in one request.")
        try:
            payload = handle(elem)
        except EwsError as err:
            messages.append(error_message(op, err))
            continue
        message = success(op)
        message.extend(payload)
        messages.append(message)
    return messages


# Operations whose message type (ItemInfoResponseMessageType) requires m:Items even on error,
# as in Microsoft's GetItem error sample.
REQUIRED_ON_ERROR = {"GetItem": "Items", "CreateItem": "Items", "UpdateItem": "Items"}


def error_message(op: str, err: EwsError) -> etree._Element:
    """The error ResponseMessage of one input, with the payload the schema requires."""
    message = render_error_message(op, err)
    if op in REQUIRED_ON_ERROR:
        etree.SubElement(message, m(REQUIRED_ON_ERROR[op]))
    return message


def children(parent: etree._Element | None) -> list[etree._Element]:
    return [] if parent is None else [c for c in parent if isinstance(c.tag, str)]


# ------------------------------------------------------------------------- folders


def resolve_folder(ctx: Context, ref: etree._Element) -> Folder:
    """The folder named by a ``t:FolderId`` or ``t:DistinguishedFolderId`` (with t:Mailbox),
    if the caller may use it."""
    folder = find_folder(ctx, ref)
    check_folder_access(ctx, folder)
    return folder


def find_folder(ctx: Context, ref: etree._Element) -> Folder:
    """The folder named by a ``t:FolderId`` or ``t:DistinguishedFolderId``, access unchecked
    (ErrorNonExistentMailbox / ErrorFolderNotFound when there is none)."""
    if ref.tag == t("DistinguishedFolderId"):
        owner = (ref.findtext(f"{T}Mailbox/{T}EmailAddress") or ctx.mailbox).lower()
        name = ref.get("Id", "")
        if name != "publicfoldersroot" and not ctx.store.has_mailbox(owner):
            raise EwsError("ErrorNonExistentMailbox", f"No mailbox with address {owner}.")
        folder = ctx.store.distinguished_folder(owner, name)
    else:
        folder = ctx.store.folder(ref.get("Id", ""))
    if folder is None:
        raise EwsError("ErrorFolderNotFound", "The specified folder could not be found.")
    return folder


def check_folder_access(ctx: Context, folder: Folder) -> None:
    if folder.mailbox not in (None, ctx.mailbox):
        raise EwsError("ErrorAccessDenied", "Access is denied. Check credentials and try again.")


def default_folder(ctx: Context, kind: str) -> Folder:
    """Where CreateItem puts an item without SavedItemFolderId (calendar/contacts/tasks)."""
    name = {"CalendarItem": "calendar", "Contact": "contacts", "Task": "tasks"}.get(kind, "inbox")
    folder = ctx.store.distinguished_folder(ctx.mailbox, name)
    if folder is None:
        raise EwsError("ErrorNonExistentMailbox", f"No mailbox with address {ctx.mailbox}.")
    return folder


def folder_id_element(folder: Folder, tag: str = "FolderId") -> etree._Element:
    return etree.Element(t(tag), Id=folder.id, ChangeKey=folder.changekey)


# ------------------------------------------------------------------------- items


@dataclass
class Target:
    """An addressed item: a stored item, or one occurrence (by original start) of a master."""

    item: Item
    original_start: str | None = None  # ISO UTC; set for occurrences


def accessible_item(ctx: Context, item_id: str) -> Item:
    item = ctx.store.item(item_id)
    if item is None:
        raise EwsError("ErrorItemNotFound", "The specified object was not found in the store.")
    if item.mailbox not in (None, ctx.mailbox):
        raise EwsError("ErrorAccessDenied", "Access is denied. Check credentials and try again.")
    return item


def resolve_item(ctx: Context, ref: etree._Element) -> Target:
    """The target of ``t:ItemId``, ``t:OccurrenceItemId`` or ``t:RecurringMasterItemId``."""
    # https://learn.microsoft.com/exchange/client-developer/web-service-reference/occurrenceitemid
    name = items_xml.local(ref)
    if name == "OccurrenceItemId":
        master = accessible_item(ctx, ref.get("RecurringMasterId", ""))
        return Target(master, calendar.original_start_by_index(master, ref.get("InstanceIndex")))
    if name == "RecurringMasterItemId":
        occurrence = parse_occurrence_id(ref.get("OccurrenceId", ""))
        master_id = occurrence[0] if occurrence else ref.get("OccurrenceId", "")
        return Target(accessible_item(ctx, master_id))
    occurrence = parse_occurrence_id(ref.get("Id", ""))
    if occurrence:
        master = accessible_item(ctx, occurrence[0])
        calendar.check_occurrence(master, occurrence[1])
        return Target(master, occurrence[1])
    return Target(accessible_item(ctx, ref.get("Id", "")))


def target_changekey(target: Target) -> str:
    if target.original_start is None:
        return target.item.changekey
    exception = target.item.exceptions.get(target.original_start)
    return exception.changekey if exception else target.item.changekey


def bool_attr(elem: etree._Element, name: str, default: bool = False) -> bool:
    value = elem.get(name)
    return default if value is None else items_xml.parse_bool(value)
