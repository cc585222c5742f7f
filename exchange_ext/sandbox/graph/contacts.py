"""Contacts and contact folders: list/create/get/update/delete.

https://learn.microsoft.com/graph/api/resources/contact
https://learn.microsoft.com/graph/api/user-list-contacts
"""

from __future__ import annotations

from typing import Any

from exchange_ext.sandbox import items_xml
from exchange_ext.sandbox.contract import EwsError
from exchange_ext.sandbox.store import Folder, Item

from . import json_items
from .errors import bad_request, item_not_found
from .events import _filter, _page, _window_slice, matches
from .request import GraphRequest, GraphResponse, if_match


def contact_folder(request: GraphRequest, ref: str | None) -> Folder:
    """The default Contacts folder (``ref`` None or ``contacts``) or a contact folder by id."""
    store = request.sandbox.store
    if ref is None or ref.lower() == "contacts":
        folder = store.distinguished_folder(request.mailbox, "contacts")
    else:
        folder = store.folder(ref)
    if folder is None or folder.mailbox != request.mailbox or folder.folder_class != "IPF.Contact":
        raise item_not_found()
    return folder


def list_contact_folders(request: GraphRequest) -> GraphResponse:
    """GET /users/{id}/contactFolders: the folders below the default Contacts folder.

    https://learn.microsoft.com/graph/api/user-list-contactfolders
    """
    store = request.sandbox.store
    root = contact_folder(request, None)
    value = [
        {"id": f.id, "parentFolderId": f.parent_id, "displayName": f.display_name}
        for f in store.child_folders(root.id)
        if f.folder_class == "IPF.Contact"
    ]
    context = request.context(f"users('{request.mailbox}')/contactFolders")
    return GraphResponse(200, {"@odata.context": context, "value": value})


def _item(request: GraphRequest, contact_id: str) -> Item:
    item = request.sandbox.store.item(contact_id)
    if item is None or item.mailbox != request.mailbox or item.kind != "Contact":
        raise item_not_found()
    return item


def render(request: GraphRequest, item: Item) -> dict[str, Any]:
    return json_items.contact_json(items_xml.view_of(item), request.render_options())


def list_contacts(request: GraphRequest, ref: str | None = None) -> GraphResponse:
    """GET /users/{id}/contacts with $filter (extended property)/$top/$skip/$expand."""
    store = request.sandbox.store
    wanted = _filter(request)
    with store.lock:
        folder = contact_folder(request, ref)
        items = [i for i in store.items_in(folder.id) if matches(i.extended, wanted)]
        rendered = [render(request, i) for i in _window_slice(request, items)]
    context = request.context(f"users('{request.mailbox}')/contacts")
    return _page(request, rendered, context, len(items))


def _elements(fields: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    try:
        return items_xml.fields_to_elements("Contact", fields)
    except EwsError as exc:
        raise bad_request(exc.message) from None


def create_contact(request: GraphRequest, ref: str | None = None) -> GraphResponse:
    """POST /users/{id}/contacts — https://learn.microsoft.com/graph/api/user-post-contacts"""
    changes = json_items.contact_changes(request.json_body(), None)
    store = request.sandbox.store
    with store.lock:
        folder = contact_folder(request, ref)
        fields = dict(changes.fields)
        if "display_name" not in fields:
            # Outlook composes the display name from the name parts when none is given.
            parts = [fields.get(k) for k in ("given_name", "middle_name", "surname")]
            fields["display_name"] = " ".join(p for p in parts if p)
        elements, extended = _elements(fields)
        item = store.create_item(folder.id, "Contact", elements, extended)
        rendered = render(request, item)
    request.sandbox.save()
    context = request.context(f"users('{request.mailbox}')/contacts/$entity")
    return GraphResponse(201, {"@odata.context": context} | rendered)


def get_contact(request: GraphRequest, contact_id: str) -> GraphResponse:
    """GET /users/{id}/contacts/{id} — https://learn.microsoft.com/graph/api/contact-get"""
    with request.sandbox.store.lock:
        rendered = render(request, _item(request, contact_id))
    context = request.context(f"users('{request.mailbox}')/contacts/$entity")
    return GraphResponse(200, {"@odata.context": context} | rendered)


def update_contact(request: GraphRequest, contact_id: str) -> GraphResponse:
    """PATCH /users/{id}/contacts/{id} — https://learn.microsoft.com/graph/api/contact-update"""
    store = request.sandbox.store
    with store.lock:
        item = _item(request, contact_id)
        if_match(request, item.changekey)
        changes = json_items.contact_changes(request.json_body(), item.elements)
        elements, extended = _elements(changes.fields)
        store.update_item(item, elements, changes.cleared, extended)
        rendered = render(request, item)
    request.sandbox.save()
    context = request.context(f"users('{request.mailbox}')/contacts/$entity")
    return GraphResponse(200, {"@odata.context": context} | rendered)


def delete_contact(request: GraphRequest, contact_id: str) -> GraphResponse:
    """DELETE /users/{id}/contacts/{id} → 204 — https://learn.microsoft.com/graph/api/contact-delete"""
    store = request.sandbox.store
    with store.lock:
        item = _item(request, contact_id)
        if_match(request, item.changekey)
        store.delete_item(item.id)
    request.sandbox.save()
    return GraphResponse(204)
