"""Graph sandbox: ``/subscriptions`` (change notifications through webhooks) against a real
subscriber endpoint — an HTTP(S) server on loopback in a thread, its certificate from the
sandbox's CA (or another CA) — with the validation handshake, notifications for events and
contacts whoever changes them, batching, retries, expiry, lifecycle events and the control API.

The sandbox clock is pinned to ``NOW`` (it runs on from there), so expiry times are fixed
strings; every wait polls with a deadline of a few seconds.
"""

from __future__ import annotations

import datetime as dt
import http.server
import json
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
import requests
from exchangelib import CalendarItem, EWSDateTime, EWSTimeZone

from exchange_ext.sandbox.certificates import CertificatePaths, ensure_certificates
from exchange_ext.sandbox.graph import ids
from exchange_ext.sandbox.graph.state import user_id
from exchange_ext.sandbox.server import SandboxHandle, load_config, start_sandbox
from tests.sandbox.graph_client import (
    APP_ID,
    NOPERM_APP_ID,
    NOPERM_APP_SECRET,
    SCOPED_APP_ID,
    SCOPED_APP_SECRET,
    TENANT_ID,
    GraphClient,
    control_session,
)

TECH1 = "tech1@northwind.example"
TECH2 = "tech2@northwind.example"
NOW = "2030-01-01T12:00:00+00:00"
IN_AN_HOUR = "2030-01-01T13:00:00Z"
WAIT = 5.0  # seconds any test waits for a notification, at most
RECEIVER_SOCKET_TIMEOUT = 5.0


# ---------------------------------------------------------------------------- the subscriber


class _Server(http.server.ThreadingHTTPServer):
    """A threaded HTTP server whose TLS handshake happens in the worker thread."""

    daemon_threads = True
    tls: ssl.SSLContext | None = None
    receiver: Receiver

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(RECEIVER_SOCKET_TIMEOUT)
        if self.tls is not None:
            try:
                request = self.tls.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):
                request.close()
                return
        super().finish_request(request, client_address)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        receiver = self.server.receiver
        if "validationToken" in query:
            status, answer = receiver.validate(parts.path, query["validationToken"][0], self)
        else:
            status, answer = receiver.notify(parts.path, body)
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)


@dataclass
class Received:
    path: str
    body: dict[str, Any]


class Receiver:
    """A subscriber's notification endpoint on 127.0.0.1, HTTPS with ``cert`` (else HTTP).

    ``validation[path]``: how it answers the handshake (``echo``, ``wrong``, ``error``,
    ``slow``); ``statuses``: the answers to the next notification POSTs (then ``default``).
    """

    def __init__(self, cert: CertificatePaths | None) -> None:
        self.validation: dict[str, str] = {}
        self.validations: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        self.default = 202
        self.posts: list[Received] = []
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.receiver = self
        if cert is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert.cert_file, cert.key_file)
            self._server.tls = context
        self.scheme = "https" if cert is not None else "http"
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def url(self, path: str = "/notify") -> str:
        host = "localhost" if self.scheme == "https" else "127.0.0.1"
        return f"{self.scheme}://{host}:{self.port}{path}"

    def validate(self, path: str, token: str, handler: _Handler) -> tuple[int, bytes]:
        mode = self.validation.get(path, "echo")
        with self._cond:
            content_type = handler.headers.get("Content-Type")
            self.validations.append({"path": path, "token": token, "content_type": content_type})
        if mode == "slow":
            self._stop.wait(2.0)
        if mode == "error":
            return 500, b"broken"
        return 200, (b"not the token" if mode == "wrong" else token.encode())

    def notify(self, path: str, body: bytes) -> tuple[int, bytes]:
        with self._cond:
            self.posts.append(Received(path, json.loads(body)))
            status = self.statuses.pop(0) if self.statuses else self.default
            self._cond.notify_all()
        return status, b""

    def notifications(self, path: str = "/notify") -> list[dict[str, Any]]:
        with self._cond:
            return [n for p in self.posts if p.path == path for n in p.body["value"]]

    def wait_for(self, predicate: Callable[[Receiver], bool], timeout: float = WAIT) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: predicate(self), timeout), self.posts

    def stop(self) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


@pytest.fixture
def certs(sandbox_cert_dir: Path) -> CertificatePaths:
    """The sandbox CA's localhost certificate: what a trusted subscriber serves."""
    return ensure_certificates("ca", sandbox_cert_dir)


@pytest.fixture
def receiver(certs: CertificatePaths) -> Iterator[Receiver]:
    endpoint = Receiver(certs)
    yield endpoint
    endpoint.stop()


def _pin(handle: SandboxHandle) -> SandboxHandle:
    """Pin the sandbox clock to NOW, speed up retries, and return the handle."""
    reply = control_session(handle).post(f"{handle.control_url}/clock", json={"now": NOW})
    assert reply.status_code == 200, reply.text
    registry = handle.state.graph_subscriptions
    registry.delivery.retry_delays = (0.05, 0.1, 0.2)
    registry.validation_timeout = 3.0
    return handle


@pytest.fixture
def hub(sandbox: SandboxHandle) -> SandboxHandle:
    return _pin(sandbox)


@pytest.fixture
def graph(hub: SandboxHandle) -> GraphClient:
    return GraphClient(hub)


def _body(receiver: Receiver, **extra: Any) -> dict[str, Any]:
    body = {
        "changeType": "created,updated,deleted",
        "notificationUrl": receiver.url(),
        "resource": f"users/{TECH1}/events",
        "expirationDateTime": IN_AN_HOUR,
        "clientState": "secret-1",
    }
    body.update(extra)
    return {k: v for k, v in body.items() if v is not None}


def _subscribe(graph: GraphClient, receiver: Receiver, **extra: Any) -> dict[str, Any]:
    reply = graph.post("subscriptions", _body(receiver, **extra))
    assert reply.status_code == 201, reply.text
    return reply.json()


def _control(handle: SandboxHandle, method: str, path: str, **kwargs: Any) -> requests.Response:
    return control_session(handle).request(
        method, f"{handle.control_url}/{path.lstrip('/')}", timeout=10, **kwargs
    )


def _backdoor_event(handle: SandboxHandle, mailbox: str = TECH1, subject: str = "Visit") -> str:
    fields = {"subject": subject, "start": "2026-11-23T09:00:00+00:00",
              "end": "2026-11-23T10:00:00+00:00"}  # fmt: skip
    reply = _control(handle, "POST", f"/mailboxes/{mailbox}/folders/calendar/items", json=fields)
    assert reply.status_code == 201, reply.text
    return str(reply.json()["id"])


def _item_path(mailbox: str, item_id: str) -> str:
    return f"/mailboxes/{mailbox}/items/{quote(item_id, safe='')}"


def _deliveries(handle: SandboxHandle) -> list[dict[str, Any]]:
    reply = _control(handle, "GET", "/graph/subscriptions")
    assert reply.status_code == 200, reply.text
    return list(reply.json()["deliveries"])


def _wait_deliveries(
    handle: SandboxHandle, predicate: Callable[[list[dict[str, Any]]], bool]
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + WAIT
    while True:
        entries = _deliveries(handle)
        if predicate(entries) or time.monotonic() > deadline:
            assert predicate(entries), entries
            return entries
        time.sleep(0.05)


# ---------------------------------------------------------------------------- create


def test_subscription_is_created_after_validating_both_endpoints(
    graph: GraphClient, receiver: Receiver, hub: SandboxHandle
) -> None:
    created = _subscribe(graph, receiver, lifecycleNotificationUrl=receiver.url("/lifecycle"))
    assert uuid.UUID(created["id"])
    assert created["@odata.context"].endswith("/v1.0/$metadata#subscriptions/$entity")
    assert created["resource"] == f"users/{TECH1}/events"
    assert created["applicationId"] == APP_ID
    assert created["changeType"] == "created,updated,deleted"
    assert created["clientState"] == "secret-1"
    assert created["notificationUrl"] == receiver.url()
    assert created["lifecycleNotificationUrl"] == receiver.url("/lifecycle")
    assert created["expirationDateTime"] == "2030-01-01T13:00:00.0000000Z"
    assert created["latestSupportedTlsVersion"] == "v1_2"
    assert created["includeResourceData"] is False and uuid.UUID(created["creatorId"])
    # One handshake per endpoint: an empty text/plain POST with a token to send back decoded.
    assert [v["path"] for v in receiver.validations] == ["/notify", "/lifecycle"]
    for validation in receiver.validations:
        assert validation["content_type"].startswith("text/plain")
        assert validation["token"].startswith("Validation: ")  # decoded: spaces and colons
    log = _control(hub, "GET", "/requests", params={"operation": "graph:subscriptions.create"})
    entries = log.json()["requests"]
    assert [(e["status"], e["mailbox"], e["caller"]) for e in entries] == [(201, TECH1, APP_ID)]


@pytest.mark.parametrize(
    ("mode", "code", "message"),
    [
        ("wrong", "ValidationError", "Response must exactly match validationToken"),
        ("error", "ValidationError", "must respond with 200 OK to validation request"),
        ("slow", "InvalidRequest", "Subscription validation request timed out."),
    ],
)
def test_failed_handshake_creates_nothing(
    graph: GraphClient, receiver: Receiver, hub: SandboxHandle, mode: str, code: str,
    message: str,
) -> None:  # fmt: skip
    hub.state.graph_subscriptions.validation_timeout = 0.5
    receiver.validation["/notify"] = mode
    started = time.monotonic()
    reply = graph.post("subscriptions", _body(receiver))
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert error["code"] == code and message in error["message"]
    assert time.monotonic() - started < 2.0  # the slow endpoint is not waited for
    assert graph.get("subscriptions").json()["value"] == []


def test_failed_lifecycle_handshake_creates_nothing(graph: GraphClient, receiver: Receiver) -> None:
    receiver.validation["/lifecycle"] = "wrong"
    reply = graph.post(
        "subscriptions", _body(receiver, lifecycleNotificationUrl=receiver.url("/lifecycle"))
    )
    assert reply.status_code == 400 and reply.json()["error"]["code"] == "ValidationError"
    assert graph.get("subscriptions").json()["value"] == []


def test_http_endpoints_only_when_the_sandbox_allows_them(
    start: Callable[..., SandboxHandle], graph: GraphClient
) -> None:
    plain = Receiver(None)
    try:
        refused = graph.post("subscriptions", _body(plain))
        assert refused.status_code == 400
        assert refused.json()["error"] == refused.json()["error"] | {
            "code": "InvalidRequest", "message": "NotificationUrl scheme='http' is not supported."
        }  # fmt: skip
        assert plain.validations == []  # nothing was sent there
        demo = _pin(start(config=load_config(), allow_http_notifications=True))
        client = GraphClient(demo)
        _subscribe(client, plain)
        _backdoor_event(demo)
        plain.wait_for(lambda r: len(r.notifications()) == 1)
    finally:
        plain.stop()


def test_subscriber_certificate_must_chain_to_a_trusted_ca(
    start: Callable[..., SandboxHandle], graph: GraphClient, tmp_path: Path
) -> None:
    other = ensure_certificates("ca", tmp_path / "other-ca")  # a CA the sandbox does not know
    foreign = Receiver(other)
    try:
        refused = graph.post("subscriptions", _body(foreign))
        assert refused.status_code == 400
        error = refused.json()["error"]
        assert error["code"] == "ValidationError"
        assert "CERTIFICATE_VERIFY_FAILED" in error["message"]
        trusting = _pin(start(config=load_config(), notification_ca_file=other.ca_file))
        _subscribe(GraphClient(trusting), foreign)
        _backdoor_event(trusting)
        foreign.wait_for(lambda r: len(r.notifications()) == 1)
    finally:
        foreign.stop()


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"expirationDateTime": "2030-01-01T11:59:00Z"}, 400, "ExtensionError"),
        ({"expirationDateTime": "2030-01-08T12:01:00Z"}, 400, "ExtensionError"),  # 10,081 min
        ({"expirationDateTime": "next tuesday"}, 400, "BadRequest"),
        ({"expirationDateTime": None}, 400, "InvalidRequest"),
        ({"clientState": "x" * 129}, 400, "InvalidRequest"),
        ({"changeType": "created,moved"}, 400, "InvalidRequest"),
        ({"changeType": "created,created"}, 400, "InvalidRequest"),
        ({"resource": None}, 400, "InvalidRequest"),
        ({"resource": f"users/{TECH1}/messages"}, 400, "InvalidRequest"),
        ({"resource": "me/events"}, 400, "BadRequest"),
        ({"notificationUrl": "ftp://localhost/x"}, 400, "InvalidRequest"),
        ({"latestSupportedTlsVersion": "v2_0"}, 400, "InvalidRequest"),
        ({"includeResourceData": True}, 400, "InvalidRequest"),
        ({"changeTypes": "created"}, 400, "InvalidRequest"),  # misspelt property
    ],
)
def test_invalid_subscriptions_are_refused_like_graph(
    graph: GraphClient, receiver: Receiver, change: dict[str, Any], status: int, code: str
) -> None:
    reply = graph.post("subscriptions", _body(receiver, **change))
    assert reply.status_code == status, reply.text
    assert reply.json()["error"]["code"] == code
    assert set(reply.json()["error"]["innerError"]) >= {"date", "request-id"}
    assert receiver.validations == []  # refused before any handshake


def test_longest_expiry_and_the_forms_of_resource_graph_accepts(
    graph: GraphClient, receiver: Receiver
) -> None:
    guid = user_id(TECH1)
    for resource in (f"/users/{TECH1}/events", "Users/TECH1@Northwind.example/Events",
                     f"users/{guid}/contacts", f"users('{TECH1}')/contacts"):  # fmt: skip
        created = _subscribe(graph, receiver, resource=resource,
                             expirationDateTime="2030-01-08T11:59:00Z")  # fmt: skip
        assert created["resource"] == resource
    assert len(graph.get("subscriptions").json()["value"]) == 4


def test_access_is_checked_as_graph_checks_it(
    hub: SandboxHandle, graph: GraphClient, receiver: Receiver
) -> None:
    def refused(client: GraphClient, resource: str) -> tuple[int, str, str]:
        reply = client.post("subscriptions", _body(receiver, resource=resource))
        error = reply.json()["error"]
        return reply.status_code, error["code"], error["message"]

    noperm = GraphClient(hub, NOPERM_APP_ID, NOPERM_APP_SECRET)
    status, code, message = refused(noperm, f"users/{TECH1}/events")
    assert (status, code) == (403, "ExtensionError") and "Status Code: Forbidden" in message
    scoped = GraphClient(hub, SCOPED_APP_ID, SCOPED_APP_SECRET)
    status, code, message = refused(scoped, "users/tech3@northwind.example/contacts")
    assert (status, code) == (403, "ExtensionError") and "[RAOP]" in message
    status, code, message = refused(graph, "users/nobody@northwind.example/events")
    assert (status, code) == (404, "ExtensionError") and "Status Code: NotFound" in message
    status, code, message = refused(graph, "users/onprem@northwind.example/events")
    assert (status, code) == (404, "ExtensionError") and "REST API is not yet supported" in message
    assert receiver.validations == []
    _subscribe(scoped, receiver, resource=f"users/{TECH2}/contacts")
    # Reading is enough: Graph asks for Calendars.Read, not ReadWrite.
    reader = {"client_id": str(uuid.uuid4()), "secrets": ["reader-secret"],
              "permissions": ["Calendars.Read"]}  # fmt: skip
    assert _control(hub, "POST", "/graph/apps", json=reader).status_code == 201
    _subscribe(GraphClient(hub, reader["client_id"], "reader-secret"), receiver)


# ---------------------------------------------------------------------------- manage


def test_list_get_renew_reauthorize_delete(
    hub: SandboxHandle, graph: GraphClient, receiver: Receiver
) -> None:
    events = _subscribe(graph, receiver)
    contacts = _subscribe(graph, receiver, resource=f"users/{TECH1}/contacts")
    listed = graph.get("subscriptions").json()
    assert {s["id"] for s in listed["value"]} == {events["id"], contacts["id"]}
    got = graph.get(f"subscriptions/{events['id']}").json()
    assert got == events
    # Another app neither sees nor touches them.
    scoped = GraphClient(hub, SCOPED_APP_ID, SCOPED_APP_SECRET)
    assert scoped.get("subscriptions").json()["value"] == []
    assert scoped.get(f"subscriptions/{events['id']}").status_code == 404
    assert scoped.delete(f"subscriptions/{events['id']}").status_code == 404

    renewed = graph.patch(f"subscriptions/{events['id']}",
                          {"expirationDateTime": "2030-01-08T11:00:00Z"})  # fmt: skip
    assert renewed.status_code == 200, renewed.text
    assert renewed.json()["expirationDateTime"] == "2030-01-08T11:00:00.0000000Z"
    too_far = graph.patch(f"subscriptions/{events['id']}",
                          {"expirationDateTime": "2030-01-09T00:00:00Z"})  # fmt: skip
    assert too_far.status_code == 400 and too_far.json()["error"]["code"] == "ExtensionError"
    assert graph.patch(f"subscriptions/{events['id']}", {}).status_code == 400
    assert graph.patch(f"subscriptions/{events['id']}", {"resource": "x"}).status_code == 400
    assert graph.post(f"subscriptions/{events['id']}/reauthorize").status_code == 204

    assert graph.delete(f"subscriptions/{events['id']}").status_code == 204
    gone = graph.get(f"subscriptions/{events['id']}")
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "ResourceNotFound"
    assert graph.delete(f"subscriptions/{events['id']}").status_code == 404
    assert graph.patch(f"subscriptions/{events['id']}",
                       {"expirationDateTime": IN_AN_HOUR}).status_code == 404  # fmt: skip
    counters = _control(hub, "GET", "/requests").json()["counters"]
    assert counters["graph:subscriptions.create"] == 2
    assert counters["graph:subscriptions.list"] == 2
    assert counters["graph:subscriptions.get"] == 3
    assert counters["graph:subscriptions.update"] == 5
    assert counters["graph:subscriptions.delete"] == 3
    assert counters["graph:subscriptions.reauthorize"] == 1


def test_renewing_to_a_new_url_validates_it_first(graph: GraphClient, receiver: Receiver) -> None:
    created = _subscribe(graph, receiver)
    receiver.validation["/moved"] = "wrong"
    path = f"subscriptions/{created['id']}"
    refused = graph.patch(path, {"notificationUrl": receiver.url("/moved")})
    assert refused.status_code == 400
    assert graph.get(path).json()["notificationUrl"] == receiver.url()
    receiver.validation["/moved"] = "echo"
    moved = graph.patch(path, {"notificationUrl": receiver.url("/moved")})
    assert moved.status_code == 200 and moved.json()["notificationUrl"] == receiver.url("/moved")


# ---------------------------------------------------------------------------- delivery


def test_event_changes_in_outlook_notify_with_graph_ids_and_client_state(
    hub: SandboxHandle, graph: GraphClient, receiver: Receiver
) -> None:
    sub = _subscribe(graph, receiver)
    item_id = _backdoor_event(hub)
    receiver.wait_for(lambda r: len(r.notifications()) == 1)
    event_id = ids.graph_id(item_id)
    event = graph.get(f"users/{TECH1}/events/{event_id}").json()
    [created] = receiver.notifications()
    path = f"Users/{user_id(TECH1)}/Events/{event_id}"
    assert created == {
        "subscriptionId": sub["id"],
        "subscriptionExpirationDateTime": "2030-01-01T13:00:00.0000000Z",
        "changeType": "created",
        "resource": path,
        "resourceData": {"@odata.type": "#Microsoft.Graph.Event", "@odata.id": path,
                         "@odata.etag": event["@odata.etag"], "id": event_id},
        "clientState": "secret-1",
        "tenantId": TENANT_ID,
    }  # fmt: skip
    assert _control(hub, "PATCH", _item_path(TECH1, item_id), json={"subject": "Moved"}).ok
    receiver.wait_for(lambda r: len(r.notifications()) == 2)
    updated = receiver.notifications()[1]
    assert updated["changeType"] == "updated"
    assert updated["resourceData"]["@odata.etag"] != event["@odata.etag"]
    assert _control(hub, "DELETE", _item_path(TECH1, item_id)).ok
    receiver.wait_for(lambda r: len(r.notifications()) == 3)
    deleted = receiver.notifications()[2]
    assert deleted["changeType"] == "deleted" and deleted["resource"] == path
    assert deleted["resourceData"] == {"@odata.type": "#Microsoft.Graph.Event",
                                       "@odata.id": path, "id": event_id}  # fmt: skip
    # The log entry follows the subscriber's answer, so it may lag the POST a little.
    entries = _wait_deliveries(hub, lambda e: len(e) == 3)
    assert [e["outcome"] for e in entries] == ["delivered"] * 3


def test_changes_through_the_apis_notify_too(
    hub: SandboxHandle, graph: GraphClient, receiver: Receiver, account_factory: Any
) -> None:
    _subscribe(graph, receiver, resource=f"users/{TECH1}/contacts", changeType="created,deleted",
               clientState="contacts")  # fmt: skip
    _subscribe(graph, receiver, changeType="created", clientState="events")
    contact = graph.post(f"users/{TECH1}/contacts", {"givenName": "Ada", "surname": "Lovelace"})
    assert contact.status_code == 201
    contact_id = contact.json()["id"]
    assert graph.patch(f"users/{TECH1}/contacts/{contact_id}", {"jobTitle": "Analyst"}).ok
    assert graph.delete(f"users/{TECH1}/contacts/{contact_id}").status_code == 204
    receiver.wait_for(lambda r: len(r.notifications()) == 2)
    assert [(n["changeType"], n["clientState"], n["resourceData"]["id"])
            for n in receiver.notifications()] == [
        ("created", "contacts", contact_id), ("deleted", "contacts", contact_id)]  # fmt: skip
    assert receiver.notifications()[0]["resourceData"]["@odata.type"] == "#Microsoft.Graph.Contact"
    # An event written over EWS (a sync through exchangelib) notifies the events subscription.
    account = account_factory(hub, TECH1)
    utc = EWSTimeZone("UTC")
    item = CalendarItem(account=account, folder=account.calendar, subject="From EWS",
                        start=EWSDateTime(2026, 11, 23, 9, tzinfo=utc),
                        end=EWSDateTime(2026, 11, 23, 10, tzinfo=utc))  # fmt: skip
    item.save()
    receiver.wait_for(lambda r: len(r.notifications()) == 3)
    last = receiver.notifications()[2]
    assert (last["clientState"], last["changeType"]) == ("events", "created")
    assert last["resourceData"]["id"] == ids.graph_id(item.id)
    # The PATCH above ("updated" is not subscribed) sent nothing; all arrived in change order.
    assert len(receiver.notifications()) == 3


def test_other_mailboxes_and_folders_do_not_notify(
    hub: SandboxHandle, graph: GraphClient, receiver: Receiver
) -> None:
    _subscribe(graph, receiver)
    _backdoor_event(hub, TECH2, "Someone else's")
    task = {"subject": "A task"}
    assert _control(hub, "POST", f"/mailboxes/{TECH1}/folders/tasks/items", json=task).ok
    contact = {"display_name": "Not an event"}
    assert _control(hub, "POST", f"/mailboxes/{TECH1}/folders/contacts/items", json=contact).ok
    sentinel = _backdoor_event(hub, TECH1, "Sentinel")
    receiver.wait_for(lambda r: len(r.notifications()) >= 1)
    time.sleep(0.3)  # one batching window: anything sent before the sentinel is in by now
    assert [n["resourceData"]["id"] for n in receiver.notifications()] == [ids.graph_id(sentinel)]


def test_a_burst_of_changes_is_batched(
    hub: SandboxHandle, graph: GraphClient, receiver: Receiver
) -> None:
    _subscribe(graph, receiver)
    store = hub.state.store
    for n in range(150):  # in-process: all well within one batching window
        store.backdoor_create(TECH1, "calendar", {"subject": f"Burst {n}"})
    receiver.wait_for(lambda r: len(r.notifications()) == 150)
    sizes = [len(p.body["value"]) for p in receiver.posts]
    # At most 100 per POST; a burst shares POSTs (how many depends on this machine's speed).
    assert max(sizes) <= 100 and len(sizes) <= 10, sizes
    subjects = [n["resourceData"]["id"] for n in receiver.notifications()]
    assert len(set(subjects)) == 150


def test_a_failing_endpoint_is_retried_until_it_takes_the_notification(
    hub: SandboxHandle, graph: GraphClient, receiver: Receiver
) -> None:
    sub = _subscribe(graph, receiver)
    receiver.statuses = [500, 503]
    _backdoor_event(hub)
    receiver.wait_for(lambda r: len(r.posts) == 3)
    entries = _wait_deliveries(hub, lambda e: len(e) == 3)
    assert [(e["attempt"], e["status"], e["outcome"]) for e in entries] == [
        (1, 500, "retrying"), (2, 503, "retrying"), (3, 202, "delivered")]  # fmt: skip
    assert all(e["subscriptions"] == [sub["id"]] and e["notifications"] == 1 for e in entries)
    assert receiver.posts[0].body == receiver.posts[2].body  # the same batch again


def test_an_endpoint_that_keeps_failing_is_given_up(
    hub: SandboxHandle, graph: GraphClient, receiver: Receiver
) -> None:
    sub = _subscribe(graph, receiver)
    receiver.default = 500
    _backdoor_event(hub)
    entries = _wait_deliveries(hub, lambda e: any(x["outcome"] == "dropped" for x in e))
    assert [(e["attempt"], e["outcome"]) for e in entries] == [
        (1, "retrying"), (2, "retrying"), (3, "retrying"), (4, "dropped")]  # fmt: skip
    time.sleep(0.3)  # longer than the last back-off: no fifth attempt comes
    assert len(receiver.posts) == 4
    control = _control(hub, "GET", f"/graph/subscriptions/{sub['id']}").json()
    assert [e["outcome"] for e in control["deliveries"]][-1] == "dropped"


def test_an_unreachable_endpoint_is_logged_with_its_error(
    hub: SandboxHandle, graph: GraphClient, receiver: Receiver
) -> None:
    _subscribe(graph, receiver)
    receiver.stop()  # the subscriber goes away after subscribing
    _backdoor_event(hub)
    entries = _wait_deliveries(hub, lambda e: any(x["outcome"] == "dropped" for x in e))
    assert all(e["status"] is None and e["error"] for e in entries)


def test_expired_subscriptions_deliver_nothing_and_disappear(
    hub: SandboxHandle, graph: GraphClient, receiver: Receiver
) -> None:
    doomed = _subscribe(graph, receiver, clientState="doomed")
    kept = _subscribe(graph, receiver, clientState="kept", expirationDateTime="2030-01-03T12:00Z")
    assert _control(hub, "POST", f"/graph/subscriptions/{doomed['id']}/expire").ok
    _backdoor_event(hub)
    receiver.wait_for(lambda r: len(r.notifications()) >= 1)
    time.sleep(0.3)
    assert [n["clientState"] for n in receiver.notifications()] == ["kept"]
    assert graph.get(f"subscriptions/{doomed['id']}").status_code == 404
    # Two days later the other one has expired by itself (new token: the old one expired too).
    hub.state.clock_offset += dt.timedelta(days=2, minutes=1)
    later = GraphClient(hub)
    assert later.get("subscriptions").json()["value"] == []
    assert later.get(f"subscriptions/{kept['id']}").status_code == 404
    _backdoor_event(hub)
    time.sleep(0.3)
    assert len(receiver.notifications()) == 1


def test_lifecycle_notifications_go_to_the_lifecycle_url(
    hub: SandboxHandle, graph: GraphClient, receiver: Receiver
) -> None:
    sub = _subscribe(graph, receiver, lifecycleNotificationUrl=receiver.url("/lifecycle"))
    plain = _subscribe(graph, receiver)
    path = f"/graph/subscriptions/{sub['id']}/lifecycle"
    for event in ("reauthorizationRequired", "missed"):
        assert _control(hub, "POST", path, json={"event": event}).status_code == 202
    receiver.wait_for(lambda r: len(r.notifications("/lifecycle")) == 2)
    assert receiver.notifications("/lifecycle")[0] == {
        "subscriptionId": sub["id"], "subscriptionExpirationDateTime": sub["expirationDateTime"],
        "tenantId": TENANT_ID, "clientState": "secret-1",
        "lifecycleEvent": "reauthorizationRequired",
    }  # fmt: skip
    assert graph.get(f"subscriptions/{sub['id']}").status_code == 200
    removed = _control(hub, "POST", path, json={"event": "subscriptionRemoved"})
    assert removed.status_code == 202 and removed.json()["removed"] is True
    receiver.wait_for(lambda r: len(r.notifications("/lifecycle")) == 3)
    assert receiver.notifications("/lifecycle")[2]["lifecycleEvent"] == "subscriptionRemoved"
    assert graph.get(f"subscriptions/{sub['id']}").status_code == 404
    assert receiver.notifications() == []  # nothing went to the notification URL

    no_url = _control(hub, "POST", f"/graph/subscriptions/{plain['id']}/lifecycle",
                      json={"event": "missed"})  # fmt: skip
    assert no_url.status_code == 409 and "lifecycleNotificationUrl" in no_url.json()["error"]
    wrong = _control(hub, "POST", f"/graph/subscriptions/{plain['id']}/lifecycle",
                     json={"event": "renewed"})  # fmt: skip
    assert wrong.status_code == 400
    assert _control(hub, "POST", path, json={"event": "missed"}).status_code == 404


def test_paused_delivery_loses_notifications(
    hub: SandboxHandle, graph: GraphClient, receiver: Receiver
) -> None:
    sub = _subscribe(graph, receiver)
    path = f"/graph/subscriptions/{sub['id']}"
    paused = _control(hub, "PATCH", path, json={"paused": True})
    assert paused.status_code == 200 and paused.json()["paused"] is True
    _backdoor_event(hub, subject="Lost")
    lost = _control(hub, "GET", path).json()["deliveries"]
    assert [(e["outcome"], e["notifications"]) for e in lost] == [("lost", 1)]
    assert _control(hub, "PATCH", path, json={"paused": False}).ok
    found = _backdoor_event(hub, subject="Found")
    receiver.wait_for(lambda r: len(r.notifications()) >= 1)
    time.sleep(0.3)
    assert [n["resourceData"]["id"] for n in receiver.notifications()] == [ids.graph_id(found)]
    assert _control(hub, "PATCH", path, json={"paused": "yes"}).status_code == 400


def test_control_api_lists_and_reset_clears_subscriptions(
    hub: SandboxHandle, graph: GraphClient, receiver: Receiver
) -> None:
    sub = _subscribe(graph, receiver)
    listed = _control(hub, "GET", "/graph/subscriptions").json()
    [entry] = listed["subscriptions"]
    assert entry["id"] == sub["id"] and entry["mailbox"] == TECH1 and entry["paused"] is False
    assert entry["deliveries"] == []
    assert _control(hub, "GET", "/graph/subscriptions/no-such-id").status_code == 404
    assert _control(hub, "GET", "/graph/subscriptions", headers={"X-Sandbox-Token": "x" * 20}
                    ).status_code == 403  # fmt: skip
    assert _control(hub, "POST", "/reset").ok
    assert _control(hub, "GET", "/graph/subscriptions").json()["subscriptions"] == []
    assert hub.state.graph_subscriptions.find(sub["id"]) is None


def test_stopping_the_sandbox_stops_its_delivery_thread(
    sandbox_cert_dir: Path, receiver: Receiver
) -> None:
    with start_sandbox(tls="ca", port=0, cert_dir=sandbox_cert_dir, validate=False) as handle:
        _subscribe(GraphClient(_pin(handle)), receiver)
        delivery = handle.state.graph_subscriptions.delivery
        assert delivery.running
    assert not delivery.running
    names = [t.name for t in threading.enumerate()]
    assert "sandbox-graph-notifications" not in names
