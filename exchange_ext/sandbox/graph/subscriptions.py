"""Graph change notifications through webhooks: ``/v1.0/subscriptions`` on the sandbox's store.

Graph API (``routes`` sends these requests here, with the usual token check, faults and log):

==========  =====================================  ==================================
POST        ``/subscriptions``                     create (handshake first) → 201
GET         ``/subscriptions``                     the calling app's subscriptions
GET         ``/subscriptions/{id}``                one (404 ResourceNotFound otherwise)
PATCH       ``/subscriptions/{id}``                renew ``expirationDateTime`` / move
                                                   ``notificationUrl`` (handshake again)
DELETE      ``/subscriptions/{id}``                → 204
POST        ``/subscriptions/{id}/reauthorize``    → 204
==========  =====================================  ==================================

Resources: ``users/{id | userPrincipalName}/events`` (the default calendar, the folder
``GET /users/{id}/events`` lists) and ``users/{…}/contacts`` (the default Contacts folder), with
or without a leading ``/``, any case, also ``users('{…}')/…``. ``me/…`` needs a delegated token,
which the sandbox does not issue (400, as Graph answers an app-only token).

Creating checks, in order: the body (unknown or missing properties, ``changeType`` a
comma-separated subset of ``created,updated,deleted``, ``clientState`` ≤ 128 characters,
``expirationDateTime`` in the future and at most 10,080 minutes ahead, the URLs: ``https``
unless the sandbox allows ``http``), the resource, the application permission
(``Calendars.Read``/``Contacts.Read`` or their ``ReadWrite``), the user, the app's mailbox scope
(as Outlook reports them through Graph: 403/404 ``ExtensionError``), then the validation
handshake with ``notificationUrl`` and, when given, ``lifecycleNotificationUrl`` (400 on
failure, and no subscription). A subscription belongs to the app that created it: another app
gets 404 for it and never sees it listed.

Delivery: the store's change listener (``hear``) matches every change of a watched folder against
the live subscriptions (change type, expiry, pause) and hands it to ``notifications.Delivery``,
which batches and posts them; ``_build`` renders each as Graph does (``resource``
``Users/{userId}/Events/{id}`` with the Graph ids of ``ids``, ``resourceData`` with the current
``@odata.etag``, none for a deletion). Changes made through the API itself notify too.
An expired subscription delivers nothing and is removed when next looked at. Subscriptions live
in memory only: a restart (``--state`` included) or a reset of the sandbox forgets them.
https://learn.microsoft.com/graph/api/resources/subscription
https://learn.microsoft.com/graph/change-notifications-delivery-webhooks
https://learn.microsoft.com/graph/change-notifications-lifecycle-events
"""

from __future__ import annotations

import datetime as dt
import http
import logging
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from . import ids, webhooks
from .errors import GraphError, bad_request, scope_denied
from .notifications import Built, Delivery, Queued
from .request import GraphRequest, GraphResponse
from .state import user_id

if TYPE_CHECKING:
    from exchange_ext.sandbox.server import Sandbox

log = logging.getLogger(__name__)

MAX_MINUTES = 10_080  # Outlook events and contacts: at most 7 days
MAX_CLIENT_STATE = 128
MAX_PER_MAILBOX = 1_000  # Outlook's limit of active subscriptions per mailbox (all apps)
CHANGE_TYPES = ("created", "updated", "deleted")
OP_CHANGE_TYPE = {"create": "created", "update": "updated", "delete": "deleted"}
TLS_VERSIONS = ("v1_0", "v1_1", "v1_2", "v1_3")
LIFECYCLE_EVENTS = ("reauthorizationRequired", "subscriptionRemoved", "missed")
# collection → (store folder, item kind, permission family, resource segment, @odata.type)
COLLECTIONS = {
    "events": ("calendar", "CalendarItem", "Calendars", "Events", "#Microsoft.Graph.Event"),
    "contacts": ("contacts", "Contact", "Contacts", "Contacts", "#Microsoft.Graph.Contact"),
}
KNOWN_PROPERTIES = frozenset({
    "@odata.type", "changeType", "notificationUrl", "lifecycleNotificationUrl", "resource",
    "expirationDateTime", "clientState", "latestSupportedTlsVersion", "includeResourceData",
    "encryptionCertificate", "encryptionCertificateId", "notificationQueryOptions",
    "notificationUrlAppId",
})  # fmt: skip
REQUIRED = ("changeType", "notificationUrl", "resource", "expirationDateTime")


def graph_time(moment: dt.datetime) -> str:
    """A UTC time as Graph writes subscription times (seven fractional digits, ``Z``)."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


@dataclass
class Subscription:
    """One subscription; ``folder_id`` is the store folder its resource covers."""

    id: str
    resource: str
    mailbox: str
    collection: str  # "events" | "contacts"
    folder_id: str
    change_types: tuple[str, ...]
    notification_url: str
    lifecycle_url: str | None
    client_state: str | None
    expiration: dt.datetime
    application_id: str
    creator_id: str
    tenant_id: str
    tls_version: str = "v1_2"
    encryption_certificate: str | None = None
    encryption_certificate_id: str | None = None
    notification_url_app_id: str | None = None
    paused: bool = False

    def expired(self, now: dt.datetime) -> bool:
        return self.expiration <= now

    def to_graph(self) -> dict[str, Any]:
        """The subscription resource as Graph v1.0 returns it."""
        return {
            "id": self.id,
            "resource": self.resource,
            "applicationId": self.application_id,
            "changeType": ",".join(self.change_types),
            "clientState": self.client_state,
            "notificationUrl": self.notification_url,
            "notificationQueryOptions": None,
            "lifecycleNotificationUrl": self.lifecycle_url,
            "expirationDateTime": graph_time(self.expiration),
            "creatorId": self.creator_id,
            "includeResourceData": False,
            "latestSupportedTlsVersion": self.tls_version,
            "encryptionCertificate": self.encryption_certificate,
            "encryptionCertificateId": self.encryption_certificate_id,
            "notificationUrlAppId": self.notification_url_app_id,
        }


class GraphSubscriptions:
    """The subscriptions of one sandbox, its store listener and its notification delivery.

    Thread-safe. Lock order: the store lock (held when ``hear`` runs) may be held while this
    registry's or the delivery's lock is taken, never the other way round: nothing here calls
    the store while holding a lock of its own. ``validation_timeout`` (seconds, default Graph's
    10) and ``delivery``'s tunables may be lowered by tests.
    """

    def __init__(self, sandbox: Sandbox) -> None:
        self._sandbox = sandbox
        self._lock = threading.Lock()
        self._subscriptions: dict[str, Subscription] = {}
        # folder id → live subscriptions watching it; replaced, never mutated, so the store
        # listener reads it without a lock.
        self._by_folder: dict[str, tuple[Subscription, ...]] = {}
        self.allow_http = False
        self.validation_timeout = webhooks.VALIDATION_TIMEOUT
        self.delivery = Delivery(self._build, sandbox.now)

    def configure(self, *, allow_http: bool, ca_files: list[Path]) -> None:
        """Whether ``http`` URLs are allowed, and the CA files subscriber TLS is checked with
        (ValueError for a file that is no CA)."""
        self.allow_http = allow_http
        self.delivery.context = webhooks.trust_context(ca_files)

    # ------------------------------------------------------------------ registry

    def _index(self) -> None:
        by_folder: dict[str, list[Subscription]] = {}
        for sub in self._subscriptions.values():
            by_folder.setdefault(sub.folder_id, []).append(sub)
        self._by_folder = {k: tuple(v) for k, v in by_folder.items()}

    def _sweep(self) -> None:
        """Drop expired subscriptions (under the lock)."""
        now = self._sandbox.now()
        gone = [k for k, s in self._subscriptions.items() if s.expired(now)]
        for key in gone:
            del self._subscriptions[key]
        if gone:
            self._index()

    def add(self, sub: Subscription) -> None:
        with self._lock:
            self._sweep()
            if self.count(sub.mailbox, locked=True) >= MAX_PER_MAILBOX:
                raise _too_many()
            self._subscriptions[sub.id] = sub
            self._index()
        self.delivery.start()

    def count(self, mailbox: str, *, locked: bool = False) -> int:
        if not locked:
            with self._lock:
                self._sweep()
                return self.count(mailbox, locked=True)
        return sum(1 for s in self._subscriptions.values() if s.mailbox == mailbox)

    def find(self, subscription_id: str) -> Subscription | None:
        """The live subscription with this id (expired ones are removed on the way)."""
        with self._lock:
            self._sweep()
            return self._subscriptions.get(subscription_id)

    def all(self) -> list[Subscription]:
        with self._lock:
            self._sweep()
            return list(self._subscriptions.values())

    def remove(self, subscription_id: str) -> bool:
        with self._lock:
            found = self._subscriptions.pop(subscription_id, None)
            self._index()
        return found is not None

    def renew(
        self, sub: Subscription, expiration: dt.datetime | None, notification_url: str | None
    ) -> bool:
        """Apply a PATCH; False when the subscription vanished meanwhile."""
        with self._lock:
            if self._subscriptions.get(sub.id) is not sub:
                return False
            if expiration is not None:
                sub.expiration = expiration
            if notification_url is not None:
                sub.notification_url = notification_url
            return True

    def clear(self) -> None:
        """Forget every subscription and the delivery queue and log (sandbox reset)."""
        with self._lock:
            self._subscriptions.clear()
            self._index()
        self.delivery.clear()

    def stop(self) -> None:
        """Stop the delivery thread (the sandbox stops)."""
        self.delivery.stop()

    # ------------------------------------------------------------------ control API

    def public(self, sub: Subscription) -> dict[str, Any]:
        """A subscription as the control API shows it: Graph's fields, its mailbox, whether it
        is paused and its delivery log."""
        return sub.to_graph() | {
            "mailbox": sub.mailbox,
            "paused": sub.paused,
            "deliveries": self.delivery.log(sub.id),
        }

    def set_paused(self, sub: Subscription, paused: bool) -> None:
        """Pause (notifications are lost, as when Graph gives up) or resume delivery."""
        sub.paused = paused

    def expire(self, sub: Subscription) -> None:
        """End the subscription now, as its expiry would: it disappears without a word."""
        with self._lock:
            sub.expiration = self._sandbox.now()
            self._subscriptions.pop(sub.id, None)
            self._index()

    def lifecycle(self, sub: Subscription, event: str) -> dict[str, Any]:
        """Send a lifecycle notification to ``sub``'s ``lifecycleNotificationUrl`` (which it
        must have); ``subscriptionRemoved`` also deletes the subscription. Returns the
        notification queued."""
        if event not in LIFECYCLE_EVENTS:
            raise ValueError(f"event must be one of {', '.join(LIFECYCLE_EVENTS)}")
        if sub.lifecycle_url is None:
            raise ValueError("the subscription has no lifecycleNotificationUrl")
        notification = {
            "subscriptionId": sub.id,
            "subscriptionExpirationDateTime": graph_time(sub.expiration),
            "tenantId": sub.tenant_id,
            "clientState": sub.client_state,
            "lifecycleEvent": event,
        }
        if event == "subscriptionRemoved":
            self.remove(sub.id)
        self.delivery.send_now(sub.lifecycle_url, [notification], sub.id, event)
        return notification

    # ------------------------------------------------------------------ delivery

    def hear(self, change: Any) -> None:
        """The store's change listener (store lock held): match and queue, nothing else.
        Never raises: a failure here must not fail the write that made the change."""
        watchers = self._by_folder.get(change.folder_id)
        if not watchers:
            return
        try:
            self._queue(change, watchers)
        except Exception:
            log.exception("Graph subscriptions could not queue a change notification")

    def _queue(self, change: Any, watchers: tuple[Subscription, ...]) -> None:
        change_type = OP_CHANGE_TYPE.get(change.op)
        now = self._sandbox.now()
        live = [
            s for s in watchers
            if change_type in s.change_types and COLLECTIONS[s.collection][1] == change.kind
            and not s.expired(now)
        ]  # fmt: skip
        paused = [s.id for s in live if s.paused]
        active = tuple(s.id for s in live if not s.paused)
        if paused:
            self.delivery.record_lost(paused, "delivery paused through the control API")
        if active:
            self.delivery.queue_change(change, active)

    def _build(self, queued: list[Queued]) -> Built:
        """Notifications for waiting changes (delivery thread; no lock of ours held)."""
        store = self._sandbox.store
        out: Built = []
        for entry in queued:
            change = entry.change
            item = store.item(change.item_id) if change.op != "delete" else None
            for subscription_id in entry.subscription_ids:
                sub = self.find(subscription_id)
                if sub is None:
                    continue  # deleted or expired since the change
                out.append((sub.notification_url, sub.id, _notification(sub, change, item)))
        return out


def _notification(sub: Subscription, change: Any, item: Any) -> dict[str, Any]:
    """One change notification as Outlook resources send it through Graph."""
    _, _, _, segment, odata_type = COLLECTIONS[sub.collection]
    graph_id = ids.graph_id(change.item_id)
    path = f"Users/{user_id(sub.mailbox)}/{segment}/{graph_id}"
    data: dict[str, Any] = {"@odata.type": odata_type, "@odata.id": path}
    if item is not None:
        data["@odata.etag"] = f'W/"{item.changekey}"'
    data["id"] = graph_id
    return {
        "subscriptionId": sub.id,
        "subscriptionExpirationDateTime": graph_time(sub.expiration),
        "changeType": OP_CHANGE_TYPE[change.op],
        "resource": path,
        "resourceData": data,
        "clientState": sub.client_state,
        "tenantId": sub.tenant_id,
    }


# ---------------------------------------------------------------------------- errors


def _extension_error(operation: str, status: int, reason: str) -> GraphError:
    # What Graph answers when the Outlook side of a subscription refuses:
    # "Operation: Create; Exception: [Status Code: Forbidden; Reason: ...]".
    phrase = "".join(http.HTTPStatus(status).phrase.split())
    return GraphError(
        status, "ExtensionError",
        f"Operation: {operation}; Exception: [Status Code: {phrase}; Reason: {reason}]",
    )  # fmt: skip


def _too_many() -> GraphError:
    return _extension_error(
        "Create", 403,
        f"The maximum number of subscriptions ({MAX_PER_MAILBOX}) for this mailbox has been "
        "reached.",
    )  # fmt: skip


def _not_found() -> GraphError:
    return GraphError(404, "ResourceNotFound", "The object was not found.")


def _invalid(message: str) -> GraphError:
    return GraphError(400, "InvalidRequest", message)


# ---------------------------------------------------------------------------- body checks


def _change_types(value: Any) -> tuple[str, ...]:
    parts = [p.strip().lower() for p in value.split(",")] if isinstance(value, str) else []
    if not parts or any(p not in CHANGE_TYPES for p in parts) or len(set(parts)) != len(parts):
        raise _invalid(
            f"'{value}' is not a valid changeType: use created, updated, deleted or a "
            "comma-separated list of them."
        )
    return tuple(parts)


def _client_state(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_CLIENT_STATE:
        raise _invalid(f"clientState must be a string of at most {MAX_CLIENT_STATE} characters.")
    return value


def _expiration(value: Any, now: dt.datetime) -> dt.datetime:
    """A requested expiry: in the future and at most ``MAX_MINUTES`` ahead."""
    try:
        moment = dt.datetime.fromisoformat(str(value).strip())
    except ValueError:
        raise bad_request(f"Invalid expirationDateTime '{value}'.") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)  # Graph reads a time without offset as UTC
    if moment <= now:
        raise GraphError(
            400, "ExtensionError", "Subscription expiration time must be in the future."
        )
    if moment > now + dt.timedelta(minutes=MAX_MINUTES):
        raise GraphError(
            400, "ExtensionError",
            f"Subscription expiration can only be {MAX_MINUTES} minutes in the future.",
        )  # fmt: skip
    return moment.astimezone(dt.UTC)


def _resource(value: Any) -> tuple[str, str]:
    """``(user as given, collection)`` of a resource path; 400 for anything else."""
    text = value.strip().lstrip("/") if isinstance(value, str) else ""
    segments = [unquote(s) for s in text.split("/")] if text else []
    collection = segments[-1].lower() if segments else ""
    user: str | None = None
    if len(segments) == 3 and segments[0].lower() == "users":
        user = segments[1]
    elif len(segments) == 2 and segments[0].lower().startswith("users(") and segments[0][-1] == ")":
        user = segments[0][6:-1].strip("'")
    elif len(segments) == 2 and segments[0].lower() == "me" and collection in COLLECTIONS:
        raise bad_request("/me request is only valid with delegated authentication flow.")
    if not user or collection not in COLLECTIONS or "?" in text:
        raise _invalid(
            f"Resource '{value}' is not supported by the sandbox: subscribe to "
            "users/{id}/events or users/{id}/contacts."
        )
    return user, collection


def _check_access(request: GraphRequest, collection: str, user: str, operation: str) -> str:
    """The mailbox of ``user`` if the caller may read ``collection`` there (permission, user,
    mailbox scope, in Graph's order); the ExtensionError Outlook answers otherwise."""
    from .routes import resolve_user

    family = COLLECTIONS[collection][2]
    roles = set(request.claims.get("roles") or [])
    if not roles & {f"{family}.Read", f"{family}.ReadWrite"}:
        raise _extension_error(operation, 403, "Access is denied. Check credentials and try again.")
    try:
        mailbox = resolve_user(request.sandbox, user)
    except GraphError as error:
        reason = error.message
        if error.code == "MailboxNotEnabledForRESTAPI":
            reason = "REST API is not yet supported for this mailbox."
        raise _extension_error(operation, error.status, reason) from None
    request.mailbox = mailbox
    app = request.graph.apps.app(str(request.claims.get("appid", "")))
    if app is None or not app.may_access(mailbox):
        raise _extension_error(operation, 403, scope_denied().message)
    return mailbox


def _optional_url(body: dict[str, Any], name: str, allow_http: bool) -> str | None:
    value = body.get(name)
    return None if value is None else webhooks.check_url(value, name, allow_http)


# ---------------------------------------------------------------------------- handlers


def _registry(request: GraphRequest) -> GraphSubscriptions:
    return request.sandbox.graph_subscriptions  # type: ignore[attr-defined, no-any-return]


def create_subscription(request: GraphRequest) -> GraphResponse:
    """POST /subscriptions — https://learn.microsoft.com/graph/api/subscription-post-subscriptions"""
    registry = _registry(request)
    body = request.json_body()
    if set(body) - KNOWN_PROPERTIES:
        raise _invalid(
            "Could not process subscription creation payload. Are all property names spelled "
            "and camelCased properly?"
        )
    for name in REQUIRED:
        if body.get(name) in (None, ""):
            raise _invalid(f"{name} is a required property for subscription creation.")
    if body.get("includeResourceData") or body.get("notificationQueryOptions"):
        raise _invalid(
            "The sandbox supports neither includeResourceData (encrypted resource data) nor "
            "notificationQueryOptions."
        )
    tls_version = body.get("latestSupportedTlsVersion") or "v1_2"
    if tls_version not in TLS_VERSIONS:
        raise _invalid(f"Invalid latestSupportedTlsVersion '{tls_version}'.")
    change_types = _change_types(body["changeType"])
    client_state = _client_state(body.get("clientState"))
    expiration = _expiration(body["expirationDateTime"], request.sandbox.now())
    notification_url = webhooks.check_url(
        body["notificationUrl"], "notificationUrl", registry.allow_http
    )
    lifecycle_url = _optional_url(body, "lifecycleNotificationUrl", registry.allow_http)
    user, collection = _resource(body["resource"])
    mailbox = _check_access(request, collection, user, "Create")
    folder = request.sandbox.store.distinguished_folder(mailbox, COLLECTIONS[collection][0])
    if folder is None:
        raise _extension_error("Create", 404, "The specified folder could not be found.")
    if registry.count(mailbox) >= MAX_PER_MAILBOX:
        raise _too_many()
    # Graph validates both endpoints before it creates anything.
    context = registry.delivery.context
    webhooks.handshake(notification_url, registry.validation_timeout, context)
    if lifecycle_url is not None:
        webhooks.handshake(lifecycle_url, registry.validation_timeout, context)
    claims = request.claims
    sub = Subscription(
        id=str(uuid.uuid4()), resource=body["resource"], mailbox=mailbox, collection=collection,
        folder_id=folder.id, change_types=change_types, notification_url=notification_url,
        lifecycle_url=lifecycle_url, client_state=client_state, expiration=expiration,
        application_id=str(claims.get("appid")), creator_id=str(claims.get("oid")),
        tenant_id=str(claims.get("tid")), tls_version=tls_version,
        encryption_certificate=body.get("encryptionCertificate"),
        encryption_certificate_id=body.get("encryptionCertificateId"),
        notification_url_app_id=body.get("notificationUrlAppId"),
    )  # fmt: skip
    registry.add(sub)
    context_url = request.context("subscriptions/$entity")
    return GraphResponse(201, {"@odata.context": context_url} | sub.to_graph())


def list_subscriptions(request: GraphRequest) -> GraphResponse:
    """GET /subscriptions: the calling app's — https://learn.microsoft.com/graph/api/subscription-list"""
    app_id = str(request.claims.get("appid"))
    value = [s.to_graph() for s in _registry(request).all() if s.application_id == app_id]
    return GraphResponse(200, {"@odata.context": request.context("subscriptions"), "value": value})


def _owned(request: GraphRequest, subscription_id: str) -> Subscription:
    sub = _registry(request).find(subscription_id)
    if sub is None or sub.application_id != str(request.claims.get("appid")):
        raise _not_found()
    request.mailbox = sub.mailbox
    return sub


def get_subscription(request: GraphRequest, subscription_id: str) -> GraphResponse:
    """GET /subscriptions/{id} — https://learn.microsoft.com/graph/api/subscription-get"""
    sub = _owned(request, subscription_id)
    context_url = request.context("subscriptions/$entity")
    return GraphResponse(200, {"@odata.context": context_url} | sub.to_graph())


def update_subscription(request: GraphRequest, subscription_id: str) -> GraphResponse:
    """PATCH /subscriptions/{id}: renew (``expirationDateTime``, same limits as creating) and
    reauthorize; a new ``notificationUrl`` is validated first.
    https://learn.microsoft.com/graph/api/subscription-update"""
    registry = _registry(request)
    sub = _owned(request, subscription_id)
    body = request.json_body()
    given = set(body) - {"@odata.type"}
    if not given & {"expirationDateTime", "notificationUrl"}:
        raise _invalid(
            "Subscription must contain either the 'expirationDateTime' or 'notificationUrl' "
            "property and its value."
        )
    if given - {"expirationDateTime", "notificationUrl"}:
        names = ", ".join(sorted(given - {"expirationDateTime", "notificationUrl"}))
        raise _invalid(f"Only expirationDateTime and notificationUrl can be updated, not {names}.")
    _check_access(request, sub.collection, sub.mailbox, "Update")
    expiration = None
    if "expirationDateTime" in body:
        expiration = _expiration(body["expirationDateTime"], request.sandbox.now())
    url = _optional_url(body, "notificationUrl", registry.allow_http)
    if url is not None:
        webhooks.handshake(url, registry.validation_timeout, registry.delivery.context)
    if not registry.renew(sub, expiration, url):
        raise _not_found()
    context_url = request.context("subscriptions/$entity")
    return GraphResponse(200, {"@odata.context": context_url} | sub.to_graph())


def delete_subscription(request: GraphRequest, subscription_id: str) -> GraphResponse:
    """DELETE /subscriptions/{id} → 204 — https://learn.microsoft.com/graph/api/subscription-delete"""
    sub = _owned(request, subscription_id)
    if not _registry(request).remove(sub.id):
        raise _not_found()
    return GraphResponse(204)


def reauthorize_subscription(request: GraphRequest, subscription_id: str) -> GraphResponse:
    """POST /subscriptions/{id}/reauthorize → 204 (access checked again, expiry unchanged).
    https://learn.microsoft.com/graph/api/subscription-reauthorize"""
    sub = _owned(request, subscription_id)
    _check_access(request, sub.collection, sub.mailbox, "Reauthorize")
    return GraphResponse(204)
