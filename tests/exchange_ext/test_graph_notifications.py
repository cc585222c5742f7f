"""The Graph notification URL (exchange_ext/web/graph_notifications.py): the handshake, the
clientState check, one prompt sync per burst, lifecycle events, and what a forger gets."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from django.test import Client

from exchange_ext.models import GraphSubscription, MailboxSettings, SyncRun
from tests import clock
from tests.builders import make_resource
from tests.exchange_ext.pages import enable, store_config
from tests.integration.prompt_syncs import queued_syncs

pytestmark = pytest.mark.django_db
URL = "/extensions/exchange/notifications/graph/"
SECRET = "s3cret-client-state-of-tech1"


@pytest.fixture
def subscription() -> GraphSubscription:
    store_config(enabled=True, server_address="mail.example.test", use_for_all_users=True)
    tech = make_resource("tech1", email="tech1@example.test")
    settings = enable(tech, mailbox="tech1@example.test")
    return GraphSubscription.objects.create(
        mailbox_settings=settings,
        resource=GraphSubscription.Resource.EVENTS,
        address="tech1@example.test",
        subscription_id="sub-tech1-events",
        client_state=SECRET,
        expires_at=clock.now() + dt.timedelta(days=3),
        created_at=clock.now(),
    )


def change(subscription_id: str = "sub-tech1-events", client_state: str = SECRET,
           **extra: Any) -> dict[str, Any]:  # fmt: skip
    return {
        "subscriptionId": subscription_id,
        "clientState": client_state,
        "changeType": "updated",
        "resource": "Users/abc/Events/AAMk1",
        "resourceData": {"@odata.type": "#Microsoft.Graph.Event", "id": "AAMk1"},
        "tenantId": "tenant",
        **extra,
    }


def post(body: Any, *, raw: bytes | None = None) -> Any:
    data = raw if raw is not None else json.dumps(body).encode()
    return Client().post(URL, data=data, content_type="application/json")


def test_the_validation_handshake_echoes_the_token_as_plain_text() -> None:
    token = "Validation: Token <b>with</b> & characters"
    response = Client().post(f"{URL}?validationToken={token.replace('&', '%26')}", data="",
                             content_type="text/plain")  # fmt: skip

    assert response.status_code == 200
    assert response.content.decode() == token
    assert response["Content-Type"].startswith("text/plain")
    assert response["X-Content-Type-Options"] == "nosniff"


def test_an_overlong_validation_token_is_refused() -> None:
    response = Client().post(f"{URL}?validationToken={'x' * 2000}")

    assert response.status_code == 400


def test_a_notification_queues_one_prompt_sync_of_its_mailbox(
    subscription: GraphSubscription, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = post({"value": [change()]})

    assert response.status_code == 202
    assert queued_syncs() == [(subscription.mailbox_settings_id, SyncRun.Trigger.EXCHANGE_CHANGE)]
    subscription.refresh_from_db()
    assert subscription.last_notification_at is not None


def test_a_burst_of_notifications_is_one_sync(
    subscription: GraphSubscription, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        responses = [post({"value": [change(), change()]}) for _ in range(5)]

    assert {r.status_code for r in responses} == {202}
    assert len(queued_syncs()) == 1


def test_a_forged_client_state_is_refused_and_syncs_nothing(
    subscription: GraphSubscription, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        wrong = post({"value": [change(client_state="guessed")]})
        missing = post({"value": [{k: v for k, v in change().items() if k != "clientState"}]})
        unknown = post({"value": [change(subscription_id="sub-someone-else")]})
        not_text = post({"value": [change(client_state=12345)]})

    assert [r.status_code for r in (wrong, missing, unknown, not_text)] == [403] * 4
    assert queued_syncs() == []
    subscription.refresh_from_db()
    assert subscription.last_notification_at is None


def test_a_forged_entry_beside_a_valid_one_changes_nothing_for_the_forger(
    subscription: GraphSubscription, django_capture_on_commit_callbacks: Any
) -> None:
    other = make_resource("tech2", email="tech2@example.test")
    enable(other, mailbox="tech2@example.test")
    with django_capture_on_commit_callbacks(execute=True):
        response = post({"value": [change(), change(subscription_id="sub-tech2",
                                                    client_state="x")]})  # fmt: skip

    assert response.status_code == 202
    assert queued_syncs() == [(subscription.mailbox_settings_id, SyncRun.Trigger.EXCHANGE_CHANGE)]


@pytest.mark.parametrize(
    "raw",
    [b"not json", b"[]", b'{"value": "x"}', b'{"other": []}', b"\xff\xfe",
     json.dumps({"value": [{}] * 1001}).encode()],
    ids=["text", "list", "value-not-list", "no-value", "not-utf8", "too-many"],
)  # fmt: skip
def test_a_body_that_is_no_notification_document_is_a_400(raw: bytes) -> None:
    assert post(None, raw=raw).status_code == 400


def test_entries_that_are_not_objects_are_refused(subscription: GraphSubscription) -> None:
    assert post({"value": ["x", 1, None]}).status_code == 403
    assert queued_syncs() == []


def test_a_notification_for_a_disabled_mailbox_syncs_nothing(
    subscription: GraphSubscription, django_capture_on_commit_callbacks: Any
) -> None:
    MailboxSettings.objects.filter(pk=subscription.mailbox_settings_id).update(sync_enabled=False)
    with django_capture_on_commit_callbacks(execute=True):
        response = post({"value": [change()]})

    assert response.status_code == 202  # Graph's notification is genuine: no retries wanted
    assert queued_syncs() == []


def test_get_is_not_allowed() -> None:
    assert Client().get(URL).status_code == 405


def test_missed_syncs_the_mailbox(
    subscription: GraphSubscription, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = post({"value": [lifecycle(subscription, "missed")]})

    assert response.status_code == 202
    assert len(queued_syncs()) == 1
    assert GraphSubscription.objects.filter(pk=subscription.pk).exists()


def test_reauthorization_required_marks_the_subscription_for_renewal_and_syncs(
    subscription: GraphSubscription, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = post({"value": [lifecycle(subscription, "reauthorizationRequired")]})

    assert response.status_code == 202
    subscription.refresh_from_db()
    assert subscription.needs_renewal
    assert len(queued_syncs()) == 1


def test_subscription_removed_forgets_the_subscription_and_syncs(
    subscription: GraphSubscription, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = post({"value": [lifecycle(subscription, "subscriptionRemoved")]})

    assert response.status_code == 202
    assert not GraphSubscription.objects.filter(pk=subscription.pk).exists()
    assert len(queued_syncs()) == 1


def test_a_forged_lifecycle_event_removes_nothing(subscription: GraphSubscription) -> None:
    forged = {**lifecycle(subscription, "subscriptionRemoved"), "clientState": "guess"}

    assert post({"value": [forged]}).status_code == 403
    assert GraphSubscription.objects.filter(pk=subscription.pk).exists()


def test_the_client_state_is_stored_encrypted(subscription: GraphSubscription) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT client_state FROM exchange_ext_graphsubscription WHERE id = %s",
            [subscription.pk],
        )
        (stored,) = cursor.fetchone()

    assert SECRET not in stored


def lifecycle(subscription: GraphSubscription, event: str) -> dict[str, Any]:
    return {
        "subscriptionId": subscription.subscription_id,
        "subscriptionExpirationDateTime": subscription.expires_at.isoformat(),
        "tenantId": "tenant",
        "clientState": SECRET,
        "lifecycleEvent": event,
    }
