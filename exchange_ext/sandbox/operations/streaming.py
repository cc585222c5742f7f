"""EWS streaming notifications: ``Subscribe`` (StreamingSubscriptionRequest), ``GetStreamingEvents``
and ``Unsubscribe``, and the hub that turns store changes into events for open streams.

Contract (docs/sandbox.md, "EWS streaming", has the protocol side):

- One ``StreamingHub`` per sandbox (``Sandbox.streaming``), created on first use. It hears every
  store change (``Store.add_listener``) and appends an event to the queue of each subscription
  the change matches: the listener only records and notifies, it never calls the store.
- A subscription belongs to the account that created it (``owner``: only that login may stream
  or unsubscribe it) and watches one mailbox (the effective one: impersonated, else the
  caller's) or the public folders: some folders, or all of the mailbox. Its queue outlives
  connections: events that happen while no stream is open arrive with the next one.
- ``get_streaming_events`` returns an ``EventStream``, not an element, when the connection
  opens: the server sends its ``payloads`` as a chunked response of complete envelopes. The
  stream runs outside the store lock, on the server's thread for that connection.
- Time: ``StreamingSettings.minute_seconds`` is the length of a protocol minute (60 s; tests
  shrink it). Connection timeouts, keep-alives and the expiry of idle subscriptions count in
  those minutes, on the monotonic clock; event time stamps come from the sandbox clock.
- Lock order: the store's lock, then the hub's. The hub's lock is never held while the store
  is called (the listener runs under the store's lock and takes the hub's).
- Streaming subscriptions are not persisted (``--state``): as Exchange loses them when its EWS
  process restarts, a client must subscribe again after a sandbox restart.
"""

from __future__ import annotations

import base64
import collections
import copy
import datetime as dt
import itertools
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from lxml import etree

from exchange_ext.sandbox.contract import EwsError, SandboxState, SoapFault
from exchange_ext.sandbox.operations.common import (
    Context,
    bool_attr,
    children,
    error_message,
    find_folder,
    m,
    response,
    success,
    t,
)
from exchange_ext.sandbox.soap import render_error_message
from exchange_ext.sandbox.store import Change, Folder, Store

SUBSCRIBE = "Subscribe"
UNSUBSCRIBE = "Unsubscribe"
GET_STREAMING_EVENTS = "GetStreamingEvents"
# Exchange puts at most 50 events into one notification (getstreamingevents-operation, remarks).
EVENTS_PER_NOTIFICATION = 50
# "The maximum number of SubscriptionId values to include in a request is 200."
# https://learn.microsoft.com/exchange/client-developer/exchange-web-services/how-to-maintain-affinity-between-group-of-subscriptions-and-mailbox-server
MAX_IDS_PER_CONNECTION = 200
MAX_QUEUED_EVENTS = 10_000  # a subscription nobody reads that piles up more is expired
POLL_SECONDS = 0.2  # a waiting stream looks at its client and its deadline this often
EVENT_TYPES = frozenset(
    {"CopiedEvent", "CreatedEvent", "DeletedEvent", "ModifiedEvent", "MovedEvent",
     "NewMailEvent", "FreeBusyChangedEvent"}
)  # fmt: skip
EVENT_FOR_OP = {"create": "CreatedEvent", "update": "ModifiedEvent", "delete": "DeletedEvent"}
NOT_FOUND = "The specified subscription was not found."


# ---------------------------------------------------------------------------- settings


@dataclass
class StreamingSettings:
    """Tunable limits (config ``streaming`` section, ``start_sandbox(streaming=...)``, control API).

    Defaults are Exchange 2016/2019's: HangingConnectionLimit 10 streaming connections per
    budget, subscriptions without an open connection expire after 30 minutes, EWSMaxSubscriptions
    5000 on premises (https://learn.microsoft.com/exchange/client-developer/exchange-web-services/ews-throttling-in-exchange).
    Exchange's keep-alive interval is not documented; the sandbox sends one after half a
    minute without any envelope.
    """

    minute_seconds: float = 60.0
    keepalive_minutes: float = 0.5
    connection_limit: int = 10
    subscription_idle_minutes: float = 30.0
    max_subscriptions: int = 5000

    BOUNDS: ClassVar[dict[str, tuple[float, float]]] = {
        "minute_seconds": (0.01, 3600.0),
        "keepalive_minutes": (0.01, 30.0),
        "connection_limit": (1, 1000),
        "subscription_idle_minutes": (0.01, 10_080.0),
        "max_subscriptions": (1, 1_000_000),
    }

    @classmethod
    def from_json(cls, data: Any) -> StreamingSettings:
        settings = cls()
        settings.update(data or {})
        return settings

    def update(self, data: Any) -> None:
        """Apply ``{name: value}``; ValueError (nothing applied) on an unknown name or value."""
        if not isinstance(data, dict):
            raise ValueError("streaming settings must be a JSON object")
        checked = {name: self._checked(name, value) for name, value in data.items()}
        for name, value in checked.items():
            setattr(self, name, value)

    def _checked(self, name: str, value: Any) -> float | int:
        if name not in self.BOUNDS:
            raise ValueError(f"unknown streaming setting {name!r}; known: {', '.join(self.BOUNDS)}")
        low, high = self.BOUNDS[name]
        whole = isinstance(low, int)
        kinds = (int,) if whole else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds) or not low <= value <= high:
            kind = "an integer" if whole else "a number"
            raise ValueError(f"{name} must be {kind} from {low} to {high}")
        return int(value) if whole else float(value)

    def seconds(self, minutes: float) -> float:
        return minutes * self.minute_seconds

    def to_public(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


# ---------------------------------------------------------------------------- state


@dataclass(frozen=True)
class PendingEvent:
    """One event waiting in a subscription's queue (resolved into XML when it is sent)."""

    name: str  # CreatedEvent / ModifiedEvent / DeletedEvent / FreeBusyChangedEvent
    item_id: str
    folder_id: str
    timestamp: str  # ISO 8601 UTC, from the sandbox clock when the change happened


@dataclass
class Subscription:
    id: str
    owner: str  # the creating login, lower-case
    budget: str  # whose EWSMaxSubscriptions budget it counts against
    mailbox: str | None  # None: public folders
    folder_ids: frozenset[str] | None  # None: every folder of the mailbox
    event_types: frozenset[str]
    idle_since: float  # monotonic; meaningful while ``connection`` is None
    queue: collections.deque[PendingEvent] = field(default_factory=collections.deque)
    connection: Connection | None = None

    def wants(self, change: Change) -> bool:
        if change.mailbox != self.mailbox:
            return False
        return self.folder_ids is None or change.folder_id in self.folder_ids

    def to_public(self, now: float) -> dict[str, Any]:
        return {
            "id": self.id,
            "owner": self.owner,
            "mailbox": self.mailbox,
            "folders": "all" if self.folder_ids is None else sorted(self.folder_ids),
            "event_types": sorted(self.event_types),
            "queued": len(self.queue),
            "connection": self.connection.id if self.connection else None,
            "idle_seconds": None if self.connection else round(now - self.idle_since, 3),
        }


@dataclass(eq=False)
class Connection:
    """One open GetStreamingEvents response."""

    id: int
    caller: str
    budget: str
    mailbox: str
    subscription_ids: list[str]
    opened: float  # monotonic
    deadline: float  # monotonic
    opened_at: str  # ISO, for the control API
    timeout_minutes: int
    condition: threading.Condition
    dropped: bool = False  # closed abruptly by the control API (or a sandbox stop)

    def to_public(self, now: float) -> dict[str, Any]:
        return {
            "id": self.id,
            "caller": self.caller,
            "budget": self.budget,
            "mailbox": self.mailbox,
            "subscriptions": list(self.subscription_ids),
            "opened_at": self.opened_at,
            "timeout_minutes": self.timeout_minutes,
            "seconds_left": round(max(0.0, self.deadline - now), 3),
        }


class StreamRefused(EwsError):
    """A GetStreamingEvents request answered with one error message (no stream)."""

    def __init__(self, code: str, message: str, subscription_ids: list[str] | None = None):
        super().__init__(code, message)
        self.subscription_ids = subscription_ids or []


def new_subscription_id() -> str:
    # Opaque and unguessable (256 random bits), base64 like Exchange's.
    return base64.b64encode(secrets.token_bytes(32)).decode()


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class StreamingHub:
    """Subscriptions, open connections and the events between them (thread-safe)."""

    def __init__(
        self,
        store: Store,
        clock: Callable[[], dt.datetime],
        settings: Any = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lock = threading.Lock()
        self.settings = StreamingSettings.from_json(settings)
        self._clock = clock
        self._monotonic = monotonic
        self._subscriptions: dict[str, Subscription] = {}
        self._connections: dict[int, Connection] = {}
        self._connection_ids = itertools.count(1)
        store.add_listener(self.hear)

    # ----------------------------------------------------------------- the store's listener

    def hear(self, change: Change) -> None:
        """Queue the events ``change`` means for each matching subscription (store lock held)."""
        with self.lock:
            matching = [s for s in self._subscriptions.values() if s.wants(change)]
            if not matching:
                return
            stamp = _iso(self._clock())
            for subscription in matching:
                self._queue(subscription, change, stamp)

    def _queue(self, subscription: Subscription, change: Change, stamp: str) -> None:
        names = [EVENT_FOR_OP[change.op]]
        if change.kind == "CalendarItem":
            names.append("FreeBusyChangedEvent")  # a calendar change changes free/busy
        for name in names:
            if name in subscription.event_types:
                event = PendingEvent(name, change.item_id, change.folder_id, stamp)
                subscription.queue.append(event)
        if len(subscription.queue) > MAX_QUEUED_EVENTS:
            self._forget(subscription)
        elif subscription.connection is not None:
            subscription.connection.condition.notify_all()

    # ----------------------------------------------------------------- subscriptions

    def subscribe(
        self,
        owner: str,
        budget: str,
        mailbox: str | None,
        folder_ids: frozenset[str] | None,
        event_types: frozenset[str],
    ) -> Subscription:
        """A new subscription; ErrorExceededSubscriptionCount when the budget is spent."""
        with self.lock:
            self._expire_idle()
            used = sum(1 for s in self._subscriptions.values() if s.budget == budget)
            if used >= self.settings.max_subscriptions:
                raise EwsError(
                    "ErrorExceededSubscriptionCount",
                    "You have exceeded the maximum number of subscriptions.",
                )
            subscription = Subscription(
                new_subscription_id(), owner.lower(), budget, mailbox, folder_ids, event_types,
                idle_since=self._monotonic(),
            )  # fmt: skip
            self._subscriptions[subscription.id] = subscription
            return subscription

    def unsubscribe(self, caller: str, subscription_id: str) -> None:
        """Forget a subscription; a stream that carried only it ends with ``Closed``."""
        with self.lock:
            self._expire_idle()
            subscription = self._subscriptions.get(subscription_id)
            if subscription is None:
                raise EwsError("ErrorSubscriptionNotFound", NOT_FOUND)
            if subscription.owner != caller.lower():
                raise EwsError(
                    "ErrorSubscriptionAccessDenied",
                    "The subscription belongs to another account.",
                )
            self._forget(subscription)

    def _forget(self, subscription: Subscription) -> None:
        self._subscriptions.pop(subscription.id, None)
        connection = subscription.connection
        if connection is not None:
            if subscription.id in connection.subscription_ids:
                connection.subscription_ids.remove(subscription.id)
            connection.condition.notify_all()
        subscription.connection = None

    def _expire_idle(self) -> None:
        """Drop subscriptions that had no open connection for ``subscription_idle_minutes``."""
        limit = self.settings.seconds(self.settings.subscription_idle_minutes)
        now = self._monotonic()
        for subscription in list(self._subscriptions.values()):
            if subscription.connection is None and now - subscription.idle_since >= limit:
                self._forget(subscription)

    # ----------------------------------------------------------------- connections

    def open(
        self, caller: str, budget: str, mailbox: str, ids: list[str], minutes: int
    ) -> Connection:
        """Open a connection for ``ids`` (unique, in order) or raise ``StreamRefused``.

        A subscription already on another connection moves to this one (that connection ends
        with ``Closed`` when it has none left).
        """
        with self.lock:
            self._expire_idle()
            self._check_ids(caller, ids)
            used = sum(1 for c in self._connections.values() if c.budget == budget)
            if used >= self.settings.connection_limit:
                raise StreamRefused(
                    "ErrorExceededConnectionCount",
                    "You have exceeded the available concurrent connections for your account. "
                    "Try again once your other requests have completed.",
                )
            now = self._monotonic()
            connection = Connection(
                next(self._connection_ids), caller, budget, mailbox, list(ids), now,
                now + self.settings.seconds(minutes), _iso(self._clock()), minutes,
                threading.Condition(self.lock),
            )  # fmt: skip
            for subscription_id in ids:
                self._attach(self._subscriptions[subscription_id], connection)
            self._connections[connection.id] = connection
            return connection

    def _check_ids(self, caller: str, ids: list[str]) -> None:
        if len(ids) > MAX_IDS_PER_CONNECTION:
            raise StreamRefused(
                "ErrorInvalidArgument",
                f"At most {MAX_IDS_PER_CONNECTION} subscriptions can share one connection.",
            )
        missing = [i for i in ids if i not in self._subscriptions]
        if missing:
            raise StreamRefused("ErrorSubscriptionNotFound", NOT_FOUND, missing)
        foreign = [i for i in ids if self._subscriptions[i].owner != caller.lower()]
        if foreign:
            raise StreamRefused(
                "ErrorSubscriptionAccessDenied",
                "The subscription belongs to another account.",
                foreign,
            )

    def _attach(self, subscription: Subscription, connection: Connection) -> None:
        previous = subscription.connection
        if previous is not None and subscription.id in previous.subscription_ids:
            previous.subscription_ids.remove(subscription.id)
            previous.condition.notify_all()
        subscription.connection = connection

    def take(self, connection: Connection) -> tuple[str, list[tuple[str, list[PendingEvent]]]]:
        """``(state, batch)``: state ``dropped``, ``closed`` (no subscription left) or ``open``;
        batch: up to 50 queued events per subscription, taken off the queues."""
        with self.lock:
            if connection.dropped:
                return "dropped", []
            batch = []
            for subscription_id in connection.subscription_ids:
                queue = self._queue_of(subscription_id)
                events = [queue.popleft() for _ in range(min(len(queue), EVENTS_PER_NOTIFICATION))]
                if events:
                    batch.append((subscription_id, events))
            state = "open" if connection.subscription_ids else "closed"
            return state, batch

    def wait(self, connection: Connection, seconds: float) -> None:
        """Sleep up to ``seconds`` unless something for ``connection`` is already waiting."""
        with self.lock:
            if connection.dropped or not connection.subscription_ids:
                return
            if any(self._queue_of(i) for i in connection.subscription_ids):
                return
            connection.condition.wait(max(0.0, seconds))

    def _queue_of(self, subscription_id: str) -> collections.deque[PendingEvent]:
        subscription = self._subscriptions.get(subscription_id)
        return subscription.queue if subscription is not None else collections.deque()

    def release(self, connection: Connection) -> None:
        """The connection has ended: its subscriptions start their idle time (idempotent)."""
        with self.lock:
            self._release(connection)

    def _release(self, connection: Connection) -> None:
        self._connections.pop(connection.id, None)
        now = self._monotonic()
        for subscription_id in connection.subscription_ids:
            subscription = self._subscriptions.get(subscription_id)
            if subscription is not None and subscription.connection is connection:
                subscription.connection = None
                subscription.idle_since = now

    # ----------------------------------------------------------------- control API

    def snapshot(self) -> dict[str, Any]:
        """Settings, subscriptions and open connections (``GET /_sandbox/streaming``)."""
        with self.lock:
            self._expire_idle()
            now = self._monotonic()
            return {
                "settings": self.settings.to_public(),
                "subscriptions": [s.to_public(now) for s in self._subscriptions.values()],
                "connections": [c.to_public(now) for c in self._connections.values()],
            }

    def configure(self, data: Any) -> dict[str, Any]:
        """Change settings (they apply to connections and expiries from now on)."""
        with self.lock:
            self.settings.update(data)
            return self.settings.to_public()

    def drop(self, forget: bool = False) -> dict[str, int]:
        """Close every open stream abruptly (a restart or network drop); with ``forget``, also
        lose every subscription, as a restarted EWS process has."""
        with self.lock:
            connections = list(self._connections.values())
            for connection in connections:
                connection.dropped = True
                self._release(connection)
                connection.condition.notify_all()
            forgotten = len(self._subscriptions) if forget else 0
            if forget:
                self._subscriptions.clear()
            return {"dropped": len(connections), "forgotten": forgotten}

    def reset(self, settings: Any = None) -> None:
        """Back to the config: streams dropped, subscriptions forgotten, settings reloaded."""
        self.drop(forget=True)
        with self.lock:
            self.settings = StreamingSettings.from_json(settings)


def hub_for(sandbox: SandboxState) -> StreamingHub:
    hub = getattr(sandbox, "streaming", None)
    if not isinstance(hub, StreamingHub):
        raise SoapFault("ErrorInvalidRequest", "Streaming notifications are not available here.")
    return hub


def budget_of(ctx: Context) -> str:
    """Whose throttling budget a subscription or connection is charged to: the impersonated
    mailbox's (a copy of it, per Microsoft), else the caller's own."""
    # https://learn.microsoft.com/exchange/client-developer/exchange-web-services/how-to-maintain-affinity-between-group-of-subscriptions-and-mailbox-server#bk_throttling
    if ctx.request.impersonating:
        return f"mailbox:{ctx.mailbox}"
    return f"account:{ctx.request.caller.lower()}"


# ---------------------------------------------------------------------------- Subscribe


def subscribe(ctx: Context) -> etree._Element:
    """https://learn.microsoft.com/exchange/client-developer/web-service-reference/subscribe-operation

    Streaming only: a pull or push request is answered ErrorInvalidSubscriptionRequest.
    """
    try:
        message = _subscribed(ctx)
    except EwsError as err:
        message = error_message(SUBSCRIBE, err)
    return response(SUBSCRIBE, [message])


def _subscribed(ctx: Context) -> etree._Element:
    request = ctx.body.find(m("StreamingSubscriptionRequest"))
    if request is None:
        raise EwsError(
            "ErrorInvalidSubscriptionRequest",
            "The sandbox serves streaming subscriptions only (StreamingSubscriptionRequest); "
            "pull and push subscriptions are not supported.",
        )
    mailbox, folder_ids = _watched_folders(ctx, request)
    event_types = frozenset((e.text or "").strip() for e in request.iter(t("EventType")))
    hub = hub_for(ctx.sandbox)
    subscription = hub.subscribe(
        ctx.request.caller, budget_of(ctx), mailbox, folder_ids, event_types & EVENT_TYPES
    )
    message = success(SUBSCRIBE)
    etree.SubElement(message, m("SubscriptionId")).text = subscription.id
    return message


def _watched_folders(
    ctx: Context, request: etree._Element
) -> tuple[str | None, frozenset[str] | None]:
    """The mailbox and folders a subscription watches (None: all folders of the mailbox)."""
    refs = children(request.find(t("FolderIds")))
    if bool_attr(request, "SubscribeToAllFolders"):
        if refs:
            raise EwsError(
                "ErrorInvalidSubscriptionRequest",
                "Give either FolderIds or SubscribeToAllFolders, not both.",
            )
        return ctx.mailbox, None
    if not refs:
        raise EwsError("ErrorInvalidSubscriptionRequest", "FolderIds or SubscribeToAllFolders.")
    folders = [_subscribable_folder(ctx, ref) for ref in refs]
    owners = {folder.mailbox for folder in folders}
    if len(owners) > 1:
        # Microsoft: one subscription per mailbox (or public folders) and request.
        raise EwsError(
            "ErrorInvalidSubscriptionRequest",
            "A subscription covers the folders of one mailbox or the public folders.",
        )
    return owners.pop(), frozenset(folder.id for folder in folders)


def _subscribable_folder(ctx: Context, ref: etree._Element) -> Folder:
    folder = find_folder(ctx, ref)
    if folder.mailbox not in (None, ctx.mailbox):
        # Exchange refuses subscriptions through delegate access, whatever the folder rights
        # (subscribe-operation, error example); impersonation is the way to other mailboxes.
        raise EwsError(
            "ErrorSubscriptionDelegateAccessNotSupported",
            "Subscriptions are not supported for delegate user access.",
        )
    return folder


# ---------------------------------------------------------------------------- Unsubscribe


def unsubscribe(ctx: Context) -> etree._Element:
    """https://learn.microsoft.com/exchange/client-developer/web-service-reference/unsubscribe-operation"""
    subscription_id = (ctx.body.findtext(m("SubscriptionId")) or "").strip()
    try:
        hub_for(ctx.sandbox).unsubscribe(ctx.request.caller, subscription_id)
    except EwsError as err:
        return response(UNSUBSCRIBE, [error_message(UNSUBSCRIBE, err)])
    return response(UNSUBSCRIBE, [success(UNSUBSCRIBE)])


# ---------------------------------------------------------------------------- GetStreamingEvents


def get_streaming_events(ctx: Context) -> etree._Element | EventStream:
    """https://learn.microsoft.com/exchange/client-developer/web-service-reference/getstreamingevents-operation

    An ``EventStream`` when the connection opens; otherwise the one error response message
    (with the failing ids in ``ErrorSubscriptionIds`` and ``ConnectionStatus`` Closed), sent as
    a normal response. One bad id fails the whole request, as Exchange does.
    """
    ids = list(dict.fromkeys((e.text or "").strip() for e in ctx.body.iter(t("SubscriptionId"))))
    hub = hub_for(ctx.sandbox)
    try:
        minutes = _connection_timeout(ctx.body.findtext(m("ConnectionTimeout")))
        connection = hub.open(ctx.request.caller, budget_of(ctx), ctx.mailbox, ids, minutes)
    except StreamRefused as err:
        return refusal(err)
    return EventStream(hub, ctx.store, connection)


def _connection_timeout(text: str | None) -> int:
    # The schema allows 1–30; this matters only for a sandbox running unvalidated.
    try:
        minutes = int((text or "").strip())
    except ValueError:
        minutes = 0
    if not 1 <= minutes <= 30:
        raise StreamRefused("ErrorInvalidArgument", "ConnectionTimeout must be 1 to 30 minutes.")
    return minutes


def refusal(err: StreamRefused) -> etree._Element:
    message = render_error_message(GET_STREAMING_EVENTS, err)
    if err.subscription_ids:
        # Exchange's form, as exchangelib and the EWS Managed API read it (m:, not the t: of
        # types.xsd): see ``schema_form``.
        container = etree.SubElement(message, m("ErrorSubscriptionIds"))
        for subscription_id in err.subscription_ids:
            etree.SubElement(container, m("SubscriptionId")).text = subscription_id
    etree.SubElement(message, m("ConnectionStatus")).text = "Closed"
    return response(GET_STREAMING_EVENTS, [message])


def schema_form(payload: etree._Element) -> etree._Element:
    """A copy of a GetStreamingEvents response in the form Microsoft's schema declares.

    Exchange writes ``m:Notification`` (and ``m:SubscriptionId`` in ``m:ErrorSubscriptionIds``)
    although types.xsd declares them in the types namespace, and clients read the ``m:`` form
    (exchangelib's ``Notification.NAMESPACE = MNS``). The sandbox sends Exchange's form and
    validates this one.
    """
    checked = copy.deepcopy(payload)
    for element in checked.iter(m("Notification")):
        element.tag = t("Notification")
    for element in checked.iterfind(f".//{m('ErrorSubscriptionIds')}/{m('SubscriptionId')}"):
        element.tag = t("SubscriptionId")
    return checked


class EventStream:
    """One open GetStreamingEvents connection, as the server sends it.

    ``payloads(client_gone)`` yields each ``m:GetStreamingEventsResponse`` to send as one
    envelope: ``ConnectionStatus`` OK at once (the client sees the stream is open), the queued
    events as they come (up to 50 per subscription and envelope), OK again after
    ``keepalive_minutes`` without an envelope, and ``Closed`` at the connection timeout or when
    no subscription is left (Unsubscribe). It ends without ``Closed`` when ``client_gone()``
    says the client went away or when the control API drops the connection (then ``dropped``
    is true and the server breaks the response). ``close()`` must follow, always.
    """

    def __init__(self, hub: StreamingHub, store: Store, connection: Connection) -> None:
        self._hub = hub
        self._store = store
        self.connection = connection

    @property
    def dropped(self) -> bool:
        return self.connection.dropped

    def opening_payload(self) -> etree._Element:
        return status_payload("OK")

    def payloads(self, client_gone: Callable[[], bool]) -> Iterator[etree._Element]:
        settings = self._hub.settings
        yield self.opening_payload()
        quiet_until = self._hub_now() + settings.seconds(settings.keepalive_minutes)
        while not client_gone():
            if self._hub_now() >= self.connection.deadline:
                yield status_payload("Closed")
                return
            state, batch = self._hub.take(self.connection)
            if state == "dropped":
                return
            now = self._hub_now()
            if batch or now >= quiet_until:
                yield self._notifications(batch) if batch else status_payload("OK")
                quiet_until = self._hub_now() + settings.seconds(settings.keepalive_minutes)
            elif state == "closed":
                yield status_payload("Closed")
                return
            else:
                pause = min(POLL_SECONDS, quiet_until - now, self.connection.deadline - now)
                self._hub.wait(self.connection, pause)

    def close(self) -> None:
        self._hub.release(self.connection)

    def _hub_now(self) -> float:
        return self._hub._monotonic()

    def _notifications(self, batch: list[tuple[str, list[PendingEvent]]]) -> etree._Element:
        message = success(GET_STREAMING_EVENTS)
        container = etree.SubElement(message, m("Notifications"))
        with self._store.lock:  # never under the hub's lock (see the module contract)
            for subscription_id, events in batch:
                notification = etree.SubElement(container, m("Notification"))
                etree.SubElement(notification, t("SubscriptionId")).text = subscription_id
                notification.extend(self._event(event) for event in events)
        return response(GET_STREAMING_EVENTS, [message])

    def _event(self, event: PendingEvent) -> etree._Element:
        element = etree.Element(t(event.name))
        etree.SubElement(element, t("TimeStamp")).text = event.timestamp
        item = self._store.item(event.item_id)
        item_id = etree.SubElement(element, t("ItemId"), Id=event.item_id)
        # The change key of the item as it is now; none for a deleted (or moved) item.
        if event.name != "DeletedEvent" and item is not None and item.folder_id == event.folder_id:
            item_id.set("ChangeKey", item.changekey)
        parent = etree.SubElement(element, t("ParentFolderId"), Id=event.folder_id)
        folder = self._store.folder(event.folder_id)
        if folder is not None:
            parent.set("ChangeKey", folder.changekey)
        return element


def status_payload(status: str) -> etree._Element:
    """A keep-alive (``OK``) or the last envelope (``Closed``) of a stream."""
    message = success(GET_STREAMING_EVENTS)
    etree.SubElement(message, m("ConnectionStatus")).text = status
    return response(GET_STREAMING_EVENTS, [message])
