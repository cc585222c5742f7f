"""What the General and Status tabs say about push (docs/sync-rules.md, "Push")."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest

from exchange_ext.jobs import push
from exchange_ext.models import GraphSubscription
from tests import clock
from tests.builders import make_resource
from tests.exchange_ext.pages import client_for, enable, make_exchange_admin, store_config

pytestmark = pytest.mark.django_db


def text(response: Any) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", response.content.decode()))


def graph(**fields: Any) -> None:
    store_config(enabled=True, use_basic_auth=False, use_graph=True, tenant_id="t",
                 client_id="c", **fields)  # fmt: skip


@pytest.mark.parametrize(
    ("base", "url"),
    [
        ("https://psa.example.com", "https://psa.example.com/extensions/exchange/notifications/graph/"),
        ("https://psa.example.com/", "https://psa.example.com/extensions/exchange/notifications/graph/"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000/extensions/exchange/notifications/graph/"),
        ("http://localhost:8000", "http://localhost:8000/extensions/exchange/notifications/graph/"),
        ("http://[::1]:8000", "http://[::1]:8000/extensions/exchange/notifications/graph/"),
        ("http://psa.example.com", None),
        ("http://10.0.0.5", None),
        ("ftp://psa.example.com", None),
    ],
)  # fmt: skip
def test_the_notification_url_needs_https_or_a_loopback_demo(
    base: str, url: str | None, settings: Any
) -> None:
    settings.PSA_BASE_URL = base.rstrip("/")
    assert push.notification_url() == url


def test_the_general_tab_names_the_notification_url(settings: Any) -> None:
    settings.PSA_BASE_URL = "https://psa.example.com"
    page = text(client_for(make_exchange_admin()).get("/extensions/exchange/general/"))

    assert "https://psa.example.com/extensions/exchange/notifications/graph/" in page
    assert "within about a minute" in page


def test_the_general_tab_says_polling_alone_runs_without_https(settings: Any) -> None:
    settings.PSA_BASE_URL = "http://psa.example.com"
    page = text(client_for(make_exchange_admin()).get("/extensions/exchange/general/"))

    assert "PSA_BASE_URL is not an https address" in page
    assert "polling alone runs" in page


def status(settings: Any) -> str:
    return text(client_for(make_exchange_admin()).get("/extensions/exchange/status/"))


def test_the_status_tab_counts_active_subscriptions_and_the_last_notification(
    settings: Any,
) -> None:
    settings.PSA_BASE_URL = "https://psa.example.com"
    graph()
    now = clock.now()
    for n, (sub_id, last) in enumerate([("a", now - dt.timedelta(minutes=3)), ("b", None)]):
        mailbox = enable(make_resource(f"t{n}", email=f"t{n}@example.test"), mailbox=f"t{n}@x.test")
        GraphSubscription.objects.create(
            mailbox_settings=mailbox, resource="events", address=f"t{n}@x.test",
            subscription_id=sub_id, client_state="s", expires_at=now + dt.timedelta(days=2),
            created_at=now, last_notification_at=last,
        )  # fmt: skip
    refused = enable(make_resource("t9", email="t9@example.test"), mailbox="t9@x.test")
    GraphSubscription.objects.create(
        mailbox_settings=refused, resource="events", address="t9@x.test", created_at=now,
        error="Exchange refused the change-notification subscription; polling goes on. "
        "ValidationError: Subscription validation request failed.",
        retry_at=now + dt.timedelta(minutes=30),
    )  # fmt: skip

    page = status(settings)

    assert "Microsoft Graph: 2 of 3 subscriptions active." in page
    assert "Last notification 3 min" in page
    assert "1 subscription was refused" in page
    assert "Subscription validation request failed" in page


def test_the_status_tab_says_push_is_off_without_https(settings: Any) -> None:
    settings.PSA_BASE_URL = "http://psa.example.com"
    graph()

    page = status(settings)

    assert "Off: Microsoft Graph delivers change notifications only to an https address" in page


def test_the_status_tab_before_any_notification(settings: Any) -> None:
    settings.PSA_BASE_URL = "https://psa.example.com"
    graph()

    page = status(settings)

    assert "Microsoft Graph: 0 of 0 subscriptions active." in page
    assert "No notification has arrived yet." in page


def ews(**fields: Any) -> None:
    store_config(enabled=True, use_basic_auth=True, use_graph=False, **fields)


def test_the_status_tab_shows_the_ews_listener_from_its_heartbeats(settings: Any) -> None:
    from exchange_ext.models import ListenerHeartbeat

    ews()
    now = clock.now()
    for name, wanted, streams in (("ews 0/2", 300, 2), ("ews 1/2", 200, 1)):
        ListenerHeartbeat.objects.create(
            name=name, beat_at=now - dt.timedelta(seconds=20), wanted=wanted,
            subscribed=wanted - 1, streams=streams, last_event_at=now - dt.timedelta(minutes=2),
            error="tech9@x.test: the mailbox was not found" if streams == 1 else "",
        )  # fmt: skip

    page = status(settings)

    assert "EWS streaming: 498 of 500 mailboxes subscribed, on 3 open connections." in page
    assert "Last notification 2 min" in page
    assert "Latest problem: tech9@x.test: the mailbox was not found." in page


def test_the_status_tab_says_when_the_ews_listener_stopped(settings: Any) -> None:
    from exchange_ext.models import ListenerHeartbeat

    ews()
    ListenerHeartbeat.objects.create(
        name="ews", beat_at=clock.now() - dt.timedelta(minutes=20), wanted=5, subscribed=5
    )

    page = status(settings)

    assert "EWS streaming notifications are not running: the listener last reported 20 min" in page
    assert "manage.py exchange_listen" in page


def test_the_status_tab_before_any_ews_listener_ran(settings: Any) -> None:
    ews()

    page = status(settings)

    assert "EWS streaming notifications are not running: start manage.py exchange_listen" in page
