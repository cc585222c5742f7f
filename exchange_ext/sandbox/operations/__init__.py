"""One handler per EWS operation, dispatched by name (``dispatch`` is ``contract.Dispatcher``).

Families: ``folders`` (GetFolder, FindFolder, CreateFolder), ``items`` (GetItem, CreateItem,
UpdateItem, DeleteItem), ``finding`` (FindItem), ``sync`` (SyncFolderItems), ``names``
(ResolveNames, ConvertId), ``streaming`` (Subscribe, GetStreamingEvents, Unsubscribe: EWS
streaming notifications); ``calendar`` holds recurring-series logic and ``common`` the shared
response skeletons and id resolution.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lxml import etree

from exchange_ext.sandbox.contract import EwsError, OperationRequest, SandboxState, SoapFault
from exchange_ext.sandbox.operations import finding, folders, items, names, streaming, sync
from exchange_ext.sandbox.operations.common import Context, children, error_message, m, response

# A handler returns the response element; GetStreamingEvents may return a
# ``streaming.EventStream`` instead, which the server sends as a chunked stream of envelopes.
Handler = Callable[[Context], Any]

HANDLERS: dict[str, Handler] = {
    "GetFolder": folders.get_folder,
    "FindFolder": folders.find_folder,
    "CreateFolder": folders.create_folder,
    "FindItem": finding.find_item,
    "GetItem": items.get_item,
    "CreateItem": items.create_item,
    "UpdateItem": items.update_item,
    "DeleteItem": items.delete_item,
    "SyncFolderItems": sync.sync_folder_items,
    "ResolveNames": names.resolve_names,
    "ConvertId": names.convert_id,
    "Subscribe": streaming.subscribe,
    "Unsubscribe": streaming.unsubscribe,
    "GetStreamingEvents": streaming.get_streaming_events,
}
# Where each operation lists its inputs, to render a request-wide EwsError once per input.
INPUT_CONTAINERS = {
    "GetFolder": "FolderIds", "FindFolder": "ParentFolderIds", "CreateFolder": "Folders",
    "FindItem": "ParentFolderIds", "GetItem": "ItemIds", "CreateItem": "Items",
    "UpdateItem": "ItemChanges", "DeleteItem": "ItemIds",
}  # fmt: skip


def dispatch(
    request: OperationRequest, sandbox: SandboxState
) -> etree._Element | streaming.EventStream:
    """The ``m:<Op>Response`` for one request; unknown operations are a SOAP fault.

    The whole request runs under the store's lock, so every response is one consistent
    snapshot and concurrent writers are serialized (as Exchange serializes per item). An
    ``EventStream`` (GetStreamingEvents) is only opened under it: it runs after, unlocked.
    """
    handler = HANDLERS.get(request.name)
    if handler is None:
        raise SoapFault("ErrorInvalidRequest", f"The operation {request.name} is not supported.")
    with sandbox.store.lock:
        try:
            return handler(Context(request, sandbox))
        except EwsError as err:
            return _error_for_all(request, err)


def _error_for_all(request: OperationRequest, err: EwsError) -> etree._Element:
    container = request.body.find(m(INPUT_CONTAINERS.get(request.name, "-")))
    count = max(1, len(children(container)))
    return response(request.name, [error_message(request.name, err) for _ in range(count)])
