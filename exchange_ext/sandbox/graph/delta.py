"""Delta rounds for ``calendarView/delta`` and ``contacts/delta``.

A round compares what the client was last told (the snapshot behind its ``$deltatoken``:
item id → change key) with the items now in scope (events: singles, occurrences and
exceptions overlapping the token's window; contacts: the folder's contacts). New or changed
items come back in full, vanished ones as ``{"id", "@removed": {"reason": "deleted"}}`` (also
an event that moved out of the window — Graph does the same). Pages hold ``Prefer:
odata.maxpagesize`` entries (at most 1,000; 200 for contacts); every page but the last carries
``@odata.nextLink`` (``$skiptoken``), the last one ``@odata.deltaLink`` (``$deltatoken``).
Changes made while a client pages through a round land in the next round.
https://learn.microsoft.com/graph/delta-query-events
https://learn.microsoft.com/graph/api/event-delta
https://learn.microsoft.com/graph/api/contact-delta

Tokens name server-side states held in a bounded LRU cache (like Exchange's own delta token
cache: "token lifetime ... is dependent on the size of the internal delta token cache",
https://learn.microsoft.com/graph/delta-query-overview#token-duration). An unknown, evicted or
forgotten token is 410 Gone ``syncStateNotFound``.
"""

from __future__ import annotations

import collections
import datetime as dt
import secrets
import threading
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from . import ids, json_items
from .errors import GraphError

if TYPE_CHECKING:
    from .request import GraphRequest, GraphResponse

MAX_STATES = 20_000
DEFAULT_PAGE = 10
# The most entries a page holds whatever odata.maxpagesize asks (a larger preference is capped,
# never refused): Outlook collections page at most 1,000 items; contacts/delta at most 200
# (Microsoft's answer, https://learn.microsoft.com/en-us/answers/a/2052165).
MAX_PAGE = 1000
MAX_CONTACTS_PAGE = 200


@dataclass(frozen=True)
class Scope:
    """What a delta token covers: one mailbox folder and, for events, a window."""

    mailbox: str
    kind: str  # "events" | "contacts"
    folder_id: str
    start: dt.datetime | None = None
    end: dt.datetime | None = None


@dataclass
class DeltaState:
    """A ``$deltatoken`` (``pending`` empty) or a round in progress (``$skiptoken``)."""

    scope: Scope
    snapshot: dict[str, str]  # id → change key the client will know at the end of the round
    pending: list[tuple[str, bool]] = field(default_factory=list)  # (id, removed)
    position: int = 0


def sync_state_not_found(location: str | None = None) -> GraphError:
    # https://learn.microsoft.com/graph/errors ("syncStateNotFound") and the 410 reset in
    # https://learn.microsoft.com/graph/delta-query-overview#synchronization-reset
    headers = {"Location": location} if location else {}
    return GraphError(
        410, "syncStateNotFound",
        "The sync state generation is not found. The delta token is expired and data must be "
        "synchronized again.",
        headers,
    )  # fmt: skip


def resync_required(location: str | None = None) -> GraphError:
    headers = {"Location": location} if location else {}
    return GraphError(
        410, "resyncRequired",
        "The delta token is no longer valid, and the app must reset the sync state.", headers,
    )  # fmt: skip


class DeltaStore:
    """Token → state, LRU-bounded, thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._states: collections.OrderedDict[str, DeltaState] = collections.OrderedDict()

    def clear(self) -> None:
        with self._lock:
            self._states.clear()

    def count(self) -> int:
        with self._lock:
            return len(self._states)

    def put(self, state: DeltaState) -> str:
        token = secrets.token_urlsafe(30)
        with self._lock:
            self._states[token] = state
            while len(self._states) > MAX_STATES:
                self._states.popitem(last=False)
        return token

    def get(self, token: str) -> DeltaState | None:
        with self._lock:
            state = self._states.get(token)
            if state is not None:
                self._states.move_to_end(token)
            return state

    def forget(self, token: str) -> None:
        with self._lock:
            self._states.pop(token, None)


def plan_round(anchor: DeltaState, current: dict[str, str]) -> DeltaState:
    """A new round from an anchor (the client's snapshot) and the items now in scope."""
    changed = [(i, False) for i, key in current.items() if anchor.snapshot.get(i) != key]
    removed = [(i, True) for i in anchor.snapshot if i not in current]
    return DeltaState(anchor.scope, dict(current), changed + removed, 0)


def next_page(state: DeltaState, size: int) -> tuple[list[tuple[str, bool]], DeltaState, bool]:
    """``(entries, following_state, last)``: one page of a round and what comes after it.

    When ``last`` the following state is the new anchor (nothing pending).
    """
    size = max(1, min(size, MAX_PAGE))
    entries = state.pending[state.position : state.position + size]
    position = state.position + len(entries)
    if position >= len(state.pending):
        return entries, DeltaState(state.scope, state.snapshot), True
    return entries, replace(state, position=position), False


# ---------------------------------------------------------------------------- handlers


def _current(request: GraphRequest, scope: Scope) -> dict[str, str]:
    from . import contacts, events

    store = request.sandbox.store
    if scope.kind == "events":
        folder = events.calendar_folder(request, scope.folder_id)
        assert scope.start is not None and scope.end is not None
        views = events.views_in_window(request, folder, scope.start, scope.end)
        return {v.id: v.changekey for v in views}
    folder = contacts.contact_folder(request, scope.folder_id)
    return {i.id: i.changekey for i in store.items_in(folder.id)}


def _render_entry(request: GraphRequest, kind: str, item_id: str, removed: bool) -> dict[str, Any]:
    from . import contacts, events

    odata_type = "#microsoft.graph.event" if kind == "events" else "#microsoft.graph.contact"
    if not removed:
        if kind == "events":
            view = events.view_or_none(request, item_id)
            if view is not None:
                return json_items.event_json(view, request.mailbox, request.render_options())
        else:
            item = request.sandbox.store.item(item_id)
            if item is not None and item.mailbox == request.mailbox and item.kind == "Contact":
                return contacts.render(request, item)
    removed = {"@odata.type": odata_type, "id": ids.graph_id(item_id)}
    return removed | {"@removed": {"reason": "deleted"}}


def delta(request: GraphRequest, kind: str, ref: str | None = None) -> GraphResponse:
    """One page of a delta round: ``calendarView/delta`` (``kind`` events) or contacts delta.

    https://learn.microsoft.com/graph/api/event-delta
    https://learn.microsoft.com/graph/api/contact-delta
    """
    from . import contacts, events
    from .request import GraphResponse

    deltas: DeltaStore = request.graph.deltas
    skip = request.query.get("$skiptoken")
    token = request.query.get("$deltatoken")
    store = request.sandbox.store
    with store.lock:
        if skip or token:
            state = deltas.get(skip or token or "")
            if state is None or state.scope.mailbox != request.mailbox or state.scope.kind != kind:
                raise sync_state_not_found(_restart_link(request, None))
            if token:
                state = plan_round(state, _current(request, state.scope))
        else:
            if kind == "events":
                start, end = events.window(request)
                folder = events.calendar_folder(request, ref)
                scope = Scope(request.mailbox, kind, folder.id, start, end)
            else:
                scope = Scope(request.mailbox, kind, contacts.contact_folder(request, ref).id)
            state = plan_round(DeltaState(scope, {}), _current(request, scope))
        size = request.page_size()
        if kind == "contacts":
            size = min(size, MAX_CONTACTS_PAGE)
        entries, following, last = next_page(state, size)
        value = [_render_entry(request, kind, i, removed) for i, removed in entries]
    new_token = deltas.put(following)
    context = "Collection(event)" if kind == "events" else "Collection(contact)"
    body: dict[str, Any] = {"@odata.context": request.context(context), "value": value}
    # Query options other than the window ride along (the window lives in the token).
    keep = {k: v for k, v in request.query.items() if k in ("$expand", "$select")}
    if last:
        body["@odata.deltaLink"] = request.link(**keep, **{"$deltatoken": new_token})
    else:
        body["@odata.nextLink"] = request.link(**keep, **{"$skiptoken": new_token})
    return GraphResponse(200, body)


def _restart_link(request: GraphRequest, scope: Scope | None) -> str:
    # The reset Location: the same delta request with an empty $deltatoken.
    # https://learn.microsoft.com/graph/delta-query-overview#synchronization-reset
    return request.link(**{"$deltatoken": ""})
