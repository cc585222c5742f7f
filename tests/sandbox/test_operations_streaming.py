"""EWS streaming notifications through real exchangelib over real HTTPS: Subscribe, the chunked
GetStreamingEvents answer (events, keep-alives, Closed), Unsubscribe, expiry, dropped streams,
the connection limit, access rules, faults and the request log.

A protocol "minute" is shrunk through the sandbox's ``streaming`` settings so timeouts take a
second or less. exchangelib keeps one HTTP session per credentials and an open stream holds it
(protocols.md, 5b), so a test that calls EWS while streaming either writes with other credentials
(the product's sync and listener would too) or raises the pool size. Every wait is bounded.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from exchangelib import DELEGATE, Account, CalendarItem, Contact, EWSDateTime, EWSTimeZone
from exchangelib.errors import (
    ErrorExceededConnectionCount,
    ErrorImpersonateUserDenied,
    ErrorInvalidSubscriptionRequest,
    ErrorSchemaValidation,
    ErrorServerBusy,
    ErrorSubscriptionAccessDenied,
    ErrorSubscriptionDelegateAccessNotSupported,
    ErrorSubscriptionNotFound,
)
from exchangelib.properties import DistinguishedFolderId, Mailbox
from exchangelib.services import GetStreamingEvents, SubscribeToStreaming
from lxml import etree

from exchange_ext.sandbox.server import SandboxHandle, load_config

from .conftest import (
    DEMO_PASSWORD,
    NO_IMPERSONATION_LOGIN,
    NO_IMPERSONATION_PASSWORD,
    SERVICE_LOGIN,
    SERVICE_PASSWORD,
    make_account,
)
from .graph_client import control_session, graph_session

TECH1 = "tech1@northwind.example"
TECH2 = "tech2@northwind.example"
UTC = EWSTimeZone("UTC")
WAIT = 15.0  # seconds: the bound on every wait in this module
ITEM_EVENTS = ["CreatedEvent", "ModifiedEvent", "DeletedEvent"]
NS = {
    "s": "http://schemas.xmlsoap.org/soap/envelope/",
    "m": "http://schemas.microsoft.com/exchange/services/2006/messages",
    "t": "http://schemas.microsoft.com/exchange/services/2006/types",
}


# ---------------------------------------------------------------------------- helpers


@pytest.fixture
def streaming_sandbox(start: Callable[..., SandboxHandle]) -> Callable[..., SandboxHandle]:
    """``streaming_sandbox(minute_seconds=1.0, ...)``: a sandbox whose protocol minute is short."""

    def _start(**settings: Any) -> SandboxHandle:
        return start(config=load_config(), streaming={"keepalive_minutes": 0.2, **settings})

    return _start


def service(handle: SandboxHandle, address: str = TECH1, pool: int = 1) -> Account:
    """``address`` through the impersonating service account, with ``pool`` HTTP sessions."""
    account = make_account(handle, address)
    account.protocol.max_connections = pool  # one Protocol per credentials: all such accounts
    return account


def own(handle: SandboxHandle, login: str = "tech1", address: str = TECH1) -> Account:
    return make_account(handle, address, login=login, password=DEMO_PASSWORD, access_type=DELEGATE)


def wait_until(condition: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.02)
    raise AssertionError(f"not within {timeout} s: {what}")


def streaming_state(handle: SandboxHandle) -> dict[str, Any]:
    answer = control_session(handle).get(f"{handle.control_url}/streaming", timeout=WAIT)
    assert answer.status_code == 200, answer.text
    return answer.json()


def control_post(handle: SandboxHandle, path: str, body: Any) -> requests.Response:
    return control_session(handle).post(f"{handle.control_url}{path}", json=body, timeout=WAIT)


class Listener:
    """exchangelib's GetStreamingEvents consumed in a thread, stopped after ``until`` events
    (as ``get_streaming_events(max_notifications_returned=...)`` stops: ``stop_streaming``)."""

    def __init__(self, account: Account, ids: list[str], minutes: int, until: int = 0) -> None:
        self.events: list[Any] = []
        self.arrivals: list[float] = []
        self.batches: list[int] = []  # events per notification
        self.error: BaseException | None = None
        self.closed = False
        self._service = GetStreamingEvents(account=account)
        self._args = (ids, minutes, until)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        ids, minutes, until = self._args
        notifications = self._service.call(subscription_ids=ids, connection_timeout=minutes)
        try:
            for notification in notifications:
                self.events += notification.events
                self.batches.append(len(notification.events))
                self.arrivals += [time.monotonic()] * len(notification.events)
                if until and len(self.events) >= until:
                    self._service.stop_streaming()
                    return
            self.closed = self._service.connection_status == GetStreamingEvents.CLOSED
        except BaseException as exc:  # handed to the test's thread, which asserts on it
            self.error = exc

    def join(self) -> Listener:
        self._thread.join(WAIT)
        assert not self._thread.is_alive(), "the stream did not end in time"
        return self

    def names(self) -> list[tuple[str, str]]:
        return [(type(e).__name__, e.item_id.id) for e in self.events]


class RawStream:
    """The GetStreamingEvents request exchangelib sends (impersonating the account's mailbox),
    sent with plain ``requests`` so that the answer can be read chunk by chunk."""

    def __init__(
        self, handle: SandboxHandle, account: Account, ids: list[str], minutes: int
    ) -> None:
        svc = GetStreamingEvents(account=account)
        payload = svc.get_payload(subscription_ids=ids, connection_timeout=minutes)
        body = svc.wrap(content=payload, api_version="Exchange2016")
        # Kept as long as the answer: a collected session closes its connections.
        self._session = graph_session(handle)
        self.answer = self._session.post(
            handle.url, data=body, auth=(SERVICE_LOGIN, SERVICE_PASSWORD), stream=True,
            timeout=WAIT, headers={"Content-Type": "text/xml; charset=utf-8",
                                   "X-AnchorMailbox": account.primary_smtp_address},
        )  # fmt: skip
        self._chunks = self.answer.raw.read_chunked()

    def envelopes(self) -> Iterator[etree._Element]:
        """Each chunk parsed: Exchange sends one whole envelope per chunk."""
        for chunk in self._chunks:
            yield etree.fromstring(chunk)

    def next_status(self) -> str | None:
        return connection_status(next(self.envelopes()))

    def close(self) -> None:
        self.answer.close()
        self._session.close()


def connection_status(envelope: etree._Element) -> str | None:
    return envelope.findtext(".//m:ConnectionStatus", namespaces=NS)


def at(hour: int) -> EWSDateTime:
    return EWSDateTime(2025, 3, 3, hour, tzinfo=UTC)


# ---------------------------------------------------------------------------- events


def test_outlook_edits_reach_an_impersonating_stream_within_seconds(streaming_sandbox):
    handle = streaming_sandbox(minute_seconds=1.0)
    listener_account = service(handle)
    calendar = listener_account.calendar
    subscription = calendar.subscribe_to_streaming(event_types=ITEM_EVENTS)
    listener = Listener(listener_account, [subscription], minutes=30, until=3)
    wait_until(lambda: streaming_state(handle)["connections"], "the stream is open")

    store = handle.state.store
    edited = [time.monotonic()]
    item = store.backdoor_create(TECH1, "calendar", {"subject": "Outlook"})
    wait_until(lambda: listener.events, "the CreatedEvent")
    edited.append(time.monotonic())
    store.backdoor_update(TECH1, item["id"], {"subject": "Outlook, moved"})
    wait_until(lambda: len(listener.events) >= 2, "the ModifiedEvent")
    edited.append(time.monotonic())
    store.backdoor_delete(TECH1, item["id"])
    listener.join()

    assert listener.error is None
    assert listener.names() == [(name, item["id"]) for name in ITEM_EVENTS]
    assert {e.parent_folder_id.id for e in listener.events} == {calendar.id}
    assert all(
        arrived - made < 5.0 for arrived, made in zip(listener.arrivals, edited, strict=True)
    )
    assert listener.events[1].item_id.changekey is not None  # the change key it has now
    assert listener.events[2].item_id.changekey is None  # a deleted item has none


def test_items_created_through_ews_reach_the_stream_with_their_change_key(streaming_sandbox):
    handle = streaming_sandbox(minute_seconds=1.0)
    listener_account = service(handle)
    subscription = listener_account.calendar.subscribe_to_streaming(event_types=["CreatedEvent"])
    listener = Listener(listener_account, [subscription], minutes=30, until=1)

    technician = own(handle)  # other credentials: the stream holds the service account's session
    item = CalendarItem(folder=technician.calendar, subject="Visit", start=at(9), end=at(10))
    item.save()
    listener.join()

    assert listener.error is None
    assert [(e.item_id.id, e.item_id.changekey) for e in listener.events] == [
        (item.id, item.changekey)
    ]


def test_a_user_streams_every_folder_of_the_own_mailbox_without_impersonation(streaming_sandbox):
    handle = streaming_sandbox(minute_seconds=1.0)
    technician = own(handle)
    subscription = SubscribeToStreaming(account=technician).get(
        folders=None, event_types=["CreatedEvent"]
    )  # SubscribeToAllFolders
    store = handle.state.store
    store.backdoor_create(TECH2, "calendar", {"subject": "someone else's"})
    appointment = store.backdoor_create(TECH1, "calendar", {"subject": "own"})
    writer = service(handle)  # other credentials than the stream's
    contact = Contact(folder=writer.contacts, display_name="Ada Lovelace", given_name="Ada")
    contact.save()

    listener = Listener(technician, [subscription], minutes=30, until=2).join()

    assert listener.error is None
    assert sorted(listener.names()) == sorted(
        [("CreatedEvent", appointment["id"]), ("CreatedEvent", contact.id)]
    )
    subscriptions = streaming_state(handle)["subscriptions"]
    assert [(s["owner"], s["mailbox"], s["folders"]) for s in subscriptions] == [
        ("tech1", TECH1, "all")
    ]


def test_events_of_a_time_without_stream_arrive_with_the_next_one(streaming_sandbox):
    handle = streaming_sandbox(minute_seconds=1.0)
    account = service(handle)
    subscription = account.calendar.subscribe_to_streaming(event_types=["CreatedEvent"])
    created = [
        handle.state.store.backdoor_create(TECH1, "calendar", {"subject": f"S{n}"})["id"]
        for n in range(60)
    ]

    listener = Listener(account, [subscription], minutes=30, until=60).join()

    assert [e.item_id.id for e in listener.events] == created
    assert listener.batches == [50, 10]  # at most 50 events per notification, as Exchange


# ---------------------------------------------------------------------------- the stream itself


def test_a_stream_sends_keep_alives_then_closed_at_its_scaled_timeout(streaming_sandbox):
    handle = streaming_sandbox(minute_seconds=1.0, keepalive_minutes=0.1)
    account = service(handle)
    subscription = account.calendar.subscribe_to_streaming()

    started = time.monotonic()
    stream = RawStream(handle, account, [subscription], minutes=1)
    statuses = [connection_status(envelope) for envelope in stream.envelopes()]
    took = time.monotonic() - started
    stream.close()

    assert stream.answer.status_code == 200
    assert stream.answer.headers["Transfer-Encoding"] == "chunked"
    assert "Content-Length" not in stream.answer.headers
    assert statuses[-1] == "Closed"
    assert statuses[:-1] == ["OK"] * (len(statuses) - 1)
    assert len(statuses) >= 3  # the opening OK and at least one keep-alive before Closed
    assert 1.0 <= took < WAIT  # one protocol minute of 1 s

    # exchangelib's own generator ends by itself at Closed, with nothing to yield
    assert list(account.calendar.get_streaming_events(subscription, connection_timeout=1)) == []


def test_every_envelope_is_sent_in_exchanges_form_and_valid_in_the_schemas(streaming_sandbox):
    handle = streaming_sandbox(minute_seconds=1.0)
    account = service(handle)
    subscription = account.calendar.subscribe_to_streaming(event_types=["CreatedEvent"])
    handle.state.store.backdoor_create(TECH1, "calendar", {"subject": "S"})
    validated = handle.state.validator.report()["validated"]["response"]

    stream = RawStream(handle, account, [subscription], minutes=1)
    sent = list(stream.envelopes())
    stream.close()

    notifications = [e for e in sent if e.find(".//m:Notifications", NS) is not None]
    assert len(notifications) == 1
    assert notifications[0].find(".//m:Notifications/m:Notification/t:CreatedEvent", NS) is not None
    assert notifications[0].find(".//t:Notification", NS) is None  # types.xsd's form stays home
    assert notifications[0].find("s:Header/t:ServerVersionInfo", NS) is not None
    report = handle.state.validator.report()
    assert report["validated"]["response"] - validated == len(sent)
    assert report["failures"]["response"] == 0


def test_a_client_that_goes_away_frees_its_stream_at_once(streaming_sandbox):
    handle = streaming_sandbox(minute_seconds=60.0, keepalive_minutes=0.5)  # a real minute
    account = service(handle)
    subscription = account.calendar.subscribe_to_streaming()
    stream = RawStream(handle, account, [subscription], minutes=30)
    assert stream.next_status() == "OK"
    time.sleep(0.5)  # a few of the stream's looks at its client
    assert len(streaming_state(handle)["connections"]) == 1

    stream.close()

    # long before the next keep-alive (30 s) would have found the socket closed
    wait_until(lambda: not streaming_state(handle)["connections"], "the stream is freed", 5.0)


def test_a_connection_timeout_outside_one_to_thirty_minutes_fails_schema_validation(sandbox):
    account = service(sandbox)
    subscription = account.calendar.subscribe_to_streaming()
    with pytest.raises(ErrorSchemaValidation, match="ConnectionTimeout"):
        list(account.calendar.get_streaming_events(subscription, connection_timeout=31))


# ---------------------------------------------------------------------------- ending subscriptions


def test_unsubscribe_ends_the_stream_that_carries_it_and_forgets_the_subscription(
    streaming_sandbox,
):
    handle = streaming_sandbox(minute_seconds=60.0, keepalive_minutes=0.5)
    account = service(handle)
    subscription = account.calendar.subscribe_to_streaming()
    stream = RawStream(handle, account, [subscription], minutes=30)
    assert stream.next_status() == "OK"

    account.calendar.unsubscribe(subscription)

    assert [connection_status(e) for e in stream.envelopes()] == ["Closed"]
    stream.close()
    with pytest.raises(ErrorSubscriptionNotFound):
        account.calendar.unsubscribe(subscription)
    with pytest.raises(ErrorSubscriptionNotFound, match=re.escape(subscription)):
        list(account.calendar.get_streaming_events(subscription, connection_timeout=1))


def test_a_subscription_expires_after_thirty_minutes_without_an_open_stream(streaming_sandbox):
    # a 0.15 s minute, and idle subscriptions expire after 7 of them: about 1 s
    handle = streaming_sandbox(minute_seconds=0.15, subscription_idle_minutes=7)
    account = service(handle)
    streamed = account.calendar.subscribe_to_streaming()
    idle = account.contacts.subscribe_to_streaming()
    listener = Listener(account, [streamed], minutes=30)  # 4.5 s

    def ids() -> set[str]:
        return {s["id"] for s in streaming_state(handle)["subscriptions"]}

    wait_until(lambda: idle not in ids(), "the idle subscription expires")
    assert streamed in ids()  # an open stream keeps its subscription alive
    listener.join()
    assert listener.closed and listener.error is None
    wait_until(lambda: streamed not in ids(), "the subscription expires after its stream")
    with pytest.raises(ErrorSubscriptionNotFound):
        list(account.calendar.get_streaming_events([streamed, idle], connection_timeout=1))

    defaults = streaming_sandbox()  # and what Exchange does: 30 minutes
    assert streaming_state(defaults)["settings"]["subscription_idle_minutes"] == 30


def stream_of_creates(handle: Any) -> tuple[Any, str, Listener]:
    """svc-sync's account, a subscription to creates in its calendar, and an open stream of it."""
    account = service(handle)
    subscription = account.calendar.subscribe_to_streaming(event_types=["CreatedEvent"])
    listener = Listener(account, [subscription], minutes=30)
    wait_until(lambda: streaming_state(handle)["connections"], "the stream is open")
    return account, subscription, listener


def test_dropped_streams_break_off_and_a_new_stream_gets_what_happened_meanwhile(
    streaming_sandbox,
):
    handle = streaming_sandbox(minute_seconds=1.0)
    account, subscription, listener = stream_of_creates(handle)

    dropped = control_post(handle, "/streaming/drop", {})
    listener.join()
    item = handle.state.store.backdoor_create(TECH1, "calendar", {"subject": "meanwhile"})

    assert dropped.json() == {"dropped": 1, "forgotten": 0}
    assert isinstance(listener.error, requests.exceptions.ChunkedEncodingError)
    again = Listener(account, [subscription], minutes=30, until=1).join()
    assert again.error is None
    assert again.names() == [("CreatedEvent", item["id"])]


def test_forgotten_subscriptions_are_not_found_and_the_client_subscribes_again(
    streaming_sandbox,
):
    handle = streaming_sandbox(minute_seconds=1.0)
    account, subscription, listener = stream_of_creates(handle)

    dropped = control_post(handle, "/streaming/drop", {"forget_subscriptions": True})
    listener.join()

    assert dropped.json() == {"dropped": 1, "forgotten": 1}
    assert isinstance(listener.error, requests.exceptions.ChunkedEncodingError)
    with pytest.raises(ErrorSubscriptionNotFound, match=re.escape(subscription)):
        list(account.calendar.get_streaming_events(subscription, connection_timeout=1))
    renewed = account.calendar.subscribe_to_streaming(event_types=["CreatedEvent"])
    item = handle.state.store.backdoor_create(TECH1, "calendar", {"subject": "after"})
    again = Listener(account, [renewed], minutes=30, until=1).join()
    assert again.names() == [("CreatedEvent", item["id"])]


# ---------------------------------------------------------------------------- limits and access


def test_more_open_streams_than_the_connection_limit_are_refused(streaming_sandbox):
    handle = streaming_sandbox(minute_seconds=1.0)
    assert streaming_state(handle)["settings"]["connection_limit"] == 10  # Exchange 2016/2019
    assert control_post(handle, "/streaming/settings", {"connection_limit": 2}).status_code == 200
    account = service(handle)
    subscriptions = [account.calendar.subscribe_to_streaming() for _ in range(3)]
    held = [RawStream(handle, account, [s], minutes=30) for s in subscriptions[:2]]
    assert [stream.next_status() for stream in held] == ["OK", "OK"]

    with pytest.raises(ErrorExceededConnectionCount):
        list(account.calendar.get_streaming_events(subscriptions[2], connection_timeout=1))
    other = service(handle, TECH2)  # impersonating tech2: tech2's budget, not tech1's
    other_subscription = other.calendar.subscribe_to_streaming()
    assert list(other.calendar.get_streaming_events(other_subscription, connection_timeout=1)) == []

    held[0].close()
    wait_until(lambda: len(streaming_state(handle)["connections"]) == 1, "a stream is freed")
    third = RawStream(handle, account, [subscriptions[2]], minutes=30)
    assert third.next_status() == "OK"
    for stream in (held[1], third):
        stream.close()


def test_an_account_without_impersonation_rights_cannot_subscribe_to_another_mailbox(sandbox):
    impostor = make_account(
        sandbox, TECH2, login=NO_IMPERSONATION_LOGIN, password=NO_IMPERSONATION_PASSWORD
    )
    with pytest.raises(ErrorImpersonateUserDenied):
        SubscribeToStreaming(account=impostor).get(folders=None, event_types=["CreatedEvent"])

    technician = own(sandbox)  # tech1 naming tech2's calendar: delegate access
    colleague = DistinguishedFolderId(id="calendar", mailbox=Mailbox(email_address=TECH2))
    with pytest.raises(ErrorSubscriptionDelegateAccessNotSupported):
        SubscribeToStreaming(account=technician).get(
            folders=[colleague], event_types=["CreatedEvent"]
        )
    assert streaming_state(sandbox)["subscriptions"] == []


def test_only_the_account_that_subscribed_may_stream_or_unsubscribe(sandbox):
    subscription = service(sandbox).calendar.subscribe_to_streaming()
    technician = own(sandbox)  # tech1's own login: the subscription watches tech1, yet is not hers
    with pytest.raises(ErrorSubscriptionAccessDenied):
        list(technician.calendar.get_streaming_events(subscription, connection_timeout=1))
    with pytest.raises(ErrorSubscriptionAccessDenied):
        technician.calendar.unsubscribe(subscription)


def test_pull_subscriptions_are_refused_with_a_clear_error(sandbox):
    with pytest.raises(ErrorInvalidSubscriptionRequest, match="streaming subscriptions only"):
        service(sandbox).calendar.subscribe_to_pull()


# ---------------------------------------------------------------------------- faults, log, control


def test_fault_rules_apply_to_streaming_operations(streaming_sandbox):
    handle = streaming_sandbox(minute_seconds=1.0)
    account = service(handle)
    faults = f"{handle.control_url}/faults"
    session = control_session(handle)
    session.post(faults, json={"kind": "server_busy", "operation": "Subscribe"}, timeout=WAIT)
    with pytest.raises(ErrorServerBusy):
        account.calendar.subscribe_to_streaming()
    subscription = account.calendar.subscribe_to_streaming()

    session.post(faults, json={"kind": "truncate", "operation": "GetStreamingEvents",
                               "bytes": 200}, timeout=WAIT)  # fmt: skip
    broken = Listener(account, [subscription], minutes=30).join()
    assert broken.error is not None and not broken.closed
    wait_until(lambda: not streaming_state(handle)["connections"], "the broken stream is freed")

    session.post(faults, json={"kind": "server_busy", "operation": "GetStreamingEvents"},
                 timeout=WAIT)  # fmt: skip
    with pytest.raises(ErrorServerBusy):
        list(account.calendar.get_streaming_events(subscription, connection_timeout=1))


def test_the_request_log_counts_every_streaming_operation(streaming_sandbox):
    handle = streaming_sandbox(minute_seconds=0.2)
    account = service(handle)
    subscription = account.calendar.subscribe_to_streaming()
    list(account.calendar.get_streaming_events(subscription, connection_timeout=1))
    account.calendar.unsubscribe(subscription)

    log = control_session(handle).get(f"{handle.control_url}/requests", timeout=WAIT).json()
    counters = log["counters"]
    assert (counters["Subscribe"], counters["GetStreamingEvents"], counters["Unsubscribe"]) == (
        1, 1, 1,
    )  # fmt: skip
    streamed = [e for e in log["requests"] if e["operation"] == "GetStreamingEvents"]
    assert [(e["status"], e["response_code"], e["mailbox"]) for e in streamed] == [
        (200, "NoError", TECH1)
    ]


def test_the_control_api_shows_streams_and_refuses_bad_settings(streaming_sandbox):
    handle = streaming_sandbox(minute_seconds=60.0, keepalive_minutes=0.5)
    account = service(handle)
    subscription = account.calendar.subscribe_to_streaming()
    stream = RawStream(handle, account, [subscription], minutes=7)
    stream.next_status()

    state = streaming_state(handle)
    stream.close()

    [connection] = state["connections"]
    assert connection["subscriptions"] == [subscription]
    assert connection["caller"] == SERVICE_LOGIN
    assert connection["budget"] == f"mailbox:{TECH1}"
    assert connection["timeout_minutes"] == 7
    assert [s["connection"] for s in state["subscriptions"]] == [connection["id"]]
    for bad in ({"minute_seconds": 0}, {"connection_limit": 1.5}, {"nonsense": 1}, [1]):
        refused = control_post(handle, "/streaming/settings", bad)
        assert refused.status_code == 400, bad
    assert control_post(handle, "/streaming/drop", {"forget": True}).status_code == 400
    assert streaming_state(handle)["settings"]["minute_seconds"] == 60.0
