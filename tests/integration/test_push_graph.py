"""Graph push end to end (SPEC §4.3; docs/sync-rules.md, "Push"): the PSA served over TLS (a
terminating front before pytest-django's live server, as a proxy is in production), the
sandbox's Graph ``/subscriptions`` validating the notification URL and posting notifications
to it, the push job creating, renewing and deleting subscriptions, a notification queuing a
prompt sync. Real HTTPS both ways, real ``requests``.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from django_q.models import OrmQ

from exchange_ext.jobs import dispatcher, push
from exchange_ext.models import ExchangeConfig, GraphSubscription, MailboxSettings, SyncRun
from exchange_ext.sandbox.server import SandboxHandle
from psa.scheduling.models import Appointment
from tests import clock
from tests.integration.prompt_syncs import queued_syncs, run_queued_syncs, wait_for
from tests.integration.sandboxes import running_sandbox
from tests.integration.sync_rules.rules import Harness
from tests.tls_front import TlsFront

pytestmark = pytest.mark.django_db(transaction=True)
PATH = "/extensions/exchange/notifications/graph/"


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxHandle]:
    with running_sandbox(tmp_path_factory, "push") as handle:
        yield handle


@pytest.fixture
def front(live_server: Any, sandbox: SandboxHandle) -> Iterator[TlsFront]:
    """The PSA at https://localhost:<port>, with the sandbox's own localhost certificate."""
    assert sandbox.ca_file is not None
    certs = sandbox.ca_file.parent
    port = int(live_server.url.rsplit(":", 1)[1])
    proxy = TlsFront(port, certs / "localhost.pem", certs / "localhost-key.pem")
    yield proxy
    proxy.stop()


@pytest.fixture
def harness(
    sandbox: SandboxHandle, front: TlsFront, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> Iterator[Harness]:
    from exchange_ext.backends.graph import auth as graph_auth

    sandbox.state.reset()
    requests.delete(
        f"{sandbox.control_url}/graph/subscriptions",
        headers=sandbox.control_headers, verify=sandbox.ca_file, timeout=10,
    )  # fmt: skip
    graph_auth.forget_token_sources()
    for name, value in Harness.environment(sandbox).items():
        monkeypatch.setenv(name, value)
    settings.PSA_BASE_URL = front.url
    harness = Harness(sandbox, "graph", ExchangeConfig.load())
    harness.configure("graph")
    harness.set(enabled=True, sync_contacts=False)
    yield harness
    graph_auth.forget_token_sources()


def sandbox_subscriptions(harness: Harness) -> list[dict[str, Any]]:
    sandbox = harness.sandbox
    reply = requests.get(
        f"{sandbox.control_url}/graph/subscriptions",
        headers=sandbox.control_headers, verify=sandbox.ca_file, timeout=10,
    )  # fmt: skip
    reply.raise_for_status()
    return list(reply.json()["subscriptions"])


def control(harness: Harness, path: str, body: dict[str, Any]) -> Any:
    sandbox = harness.sandbox
    reply = requests.post(
        f"{sandbox.control_url}{path}", json=body,
        headers=sandbox.control_headers, verify=sandbox.ca_file, timeout=10,
    )  # fmt: skip
    reply.raise_for_status()
    return reply.json()


def subscribed(harness: Harness, n: int = 1) -> MailboxSettings:
    """tech<n> enabled, synced once, its calendar subscribed."""
    mailbox = harness.enrol(n)
    assert harness.sync(mailbox).outcome == SyncRun.Outcome.OK
    summary = push.maintain_graph_subscriptions()
    assert (summary.created, summary.failed) == (1, []), summary
    OrmQ.objects.all().delete()
    return mailbox


def test_an_outlook_edit_reaches_the_psa_with_no_polling_slot_due(
    harness: Harness, front: TlsFront
) -> None:
    mailbox = subscribed(harness)
    [row] = GraphSubscription.objects.all()
    [remote] = sandbox_subscriptions(harness)
    assert remote["id"] == row.subscription_id
    assert remote["notificationUrl"] == remote["lifecycleNotificationUrl"] == front.url + PATH
    assert row.address == "tech1@northwind.example" and row.resource == "events"
    assert mailbox.pk not in dispatcher.due_mailboxes(clock.now())

    harness.outlook_create(mailbox, "Boiler check from Outlook", clock.day(1, "10:00"))
    wait_for(queued_syncs, "a prompt sync queued by the notification")

    assert queued_syncs() == [(mailbox.pk, SyncRun.Trigger.EXCHANGE_CHANGE)]
    [run] = run_queued_syncs()
    assert run.trigger == SyncRun.Trigger.EXCHANGE_CHANGE and run.outcome == SyncRun.Outcome.OK
    assert Appointment.objects.filter(title="Boiler check from Outlook").exists()
    row.refresh_from_db()
    assert row.last_notification_at is not None


def test_a_burst_of_outlook_edits_is_one_queued_sync(harness: Harness) -> None:
    mailbox = subscribed(harness)
    for hour in range(5):
        harness.outlook_create(mailbox, f"Visit {hour}", clock.day(2, f"{9 + hour:02d}:00"))
    wait_for(queued_syncs, "a prompt sync")
    time.sleep(1.0)  # the rest of the burst arrives meanwhile

    assert len(queued_syncs()) == 1


def test_a_forged_notification_over_tls_is_refused_and_syncs_nothing(
    harness: Harness, front: TlsFront
) -> None:
    subscribed(harness)
    [row] = GraphSubscription.objects.all()
    forged = {"value": [{"subscriptionId": row.subscription_id, "clientState": "guessed",
                         "changeType": "created", "resource": "Users/x/Events/y"}]}  # fmt: skip

    reply = requests.post(f"{front.url}{PATH}", json=forged, verify=harness.sandbox.ca_file,
                          timeout=10)  # fmt: skip

    assert reply.status_code == 403
    assert queued_syncs() == []


def test_subscriptions_are_renewed_before_they_expire(harness: Harness) -> None:
    subscribed(harness)
    [row] = GraphSubscription.objects.all()
    first_expiry = row.expires_at

    assert push.maintain_graph_subscriptions(clock.now() + dt.timedelta(hours=12)).renewed == 0
    later = clock.now() + dt.timedelta(days=1, hours=2)
    summary = push.maintain_graph_subscriptions(later)

    assert summary.renewed == 1
    row.refresh_from_db()
    assert row.expires_at > first_expiry
    assert abs(row.expires_at - (later + push.LIFETIME)) < dt.timedelta(minutes=1)
    [remote] = sandbox_subscriptions(harness)
    assert remote["id"] == row.subscription_id
    assert remote["expirationDateTime"].startswith(row.expires_at.strftime("%Y-%m-%dT%H:%M"))


def test_subscription_removed_recovers_with_a_new_subscription_and_a_sync(
    harness: Harness,
) -> None:
    mailbox = subscribed(harness)
    [row] = GraphSubscription.objects.all()

    control(harness, f"/graph/subscriptions/{row.subscription_id}/lifecycle",
            {"event": "subscriptionRemoved"})  # fmt: skip
    wait_for(lambda: not GraphSubscription.objects.exists(), "the subscription forgotten")
    wait_for(queued_syncs, "a sync after the removal")

    assert queued_syncs() == [(mailbox.pk, SyncRun.Trigger.EXCHANGE_CHANGE)]
    assert push.maintain_graph_subscriptions().created == 1
    [new] = GraphSubscription.objects.all()
    assert new.subscription_id != row.subscription_id
    assert [s["id"] for s in sandbox_subscriptions(harness)] == [new.subscription_id]


def test_missed_notifications_sync_the_mailbox(harness: Harness) -> None:
    mailbox = subscribed(harness)
    [row] = GraphSubscription.objects.all()

    control(harness, f"/graph/subscriptions/{row.subscription_id}/lifecycle", {"event": "missed"})
    wait_for(queued_syncs, "a sync after missed notifications")

    assert queued_syncs() == [(mailbox.pk, SyncRun.Trigger.EXCHANGE_CHANGE)]


def test_reauthorization_required_renews_at_the_next_run(harness: Harness) -> None:
    subscribed(harness)
    [row] = GraphSubscription.objects.all()

    control(harness, f"/graph/subscriptions/{row.subscription_id}/lifecycle",
            {"event": "reauthorizationRequired"})  # fmt: skip
    wait_for(lambda: GraphSubscription.objects.get().needs_renewal, "marked for renewal")

    assert push.maintain_graph_subscriptions().renewed == 1
    assert not GraphSubscription.objects.get().needs_renewal


def test_disabling_a_mailbox_deletes_its_subscription(harness: Harness) -> None:
    mailbox = subscribed(harness)
    MailboxSettings.objects.filter(pk=mailbox.pk).update(sync_enabled=False)

    assert push.maintain_graph_subscriptions().deleted == 1
    assert GraphSubscription.objects.count() == 0
    assert sandbox_subscriptions(harness) == []


def test_a_mailbox_move_moves_the_subscription(harness: Harness) -> None:
    mailbox = subscribed(harness)
    MailboxSettings.objects.filter(pk=mailbox.pk).update(mailbox="tech2@northwind.example")

    summary = push.maintain_graph_subscriptions()

    assert (summary.deleted, summary.created) == (1, 1)
    [row] = GraphSubscription.objects.all()
    assert row.address == "tech2@northwind.example"
    [remote] = sandbox_subscriptions(harness)
    assert "tech2@northwind.example" in remote["resource"].lower()


def test_contacts_get_their_own_subscription_when_contacts_sync(harness: Harness) -> None:
    harness.set(sync_contacts=True)
    mailbox = harness.enrol(1, export_contacts=True)

    summary = push.maintain_graph_subscriptions()

    assert summary.created == 2
    resources = set(GraphSubscription.objects.values_list("resource", flat=True))
    assert resources == {"events", "contacts"}
    assert mailbox.pk


def test_an_unreachable_notification_url_is_refused_and_retried_later_not_every_minute(
    harness: Harness, settings: Any
) -> None:
    settings.PSA_BASE_URL = "https://localhost:9"  # nothing listens: the handshake fails
    harness.enrol(1)

    first = push.maintain_graph_subscriptions()
    assert first.created == 0 and len(first.failed) == 1
    [row] = GraphSubscription.objects.all()
    assert row.subscription_id is None and row.error and row.retry_at is not None
    assert sandbox_subscriptions(harness) == []
    assert push.maintain_graph_subscriptions().calls == 0  # not again at the next minute

    later = row.retry_at + dt.timedelta(seconds=1)
    assert push.maintain_graph_subscriptions(later).calls == 1


def test_without_an_https_base_url_nothing_is_subscribed(harness: Harness, settings: Any) -> None:
    settings.PSA_BASE_URL = "http://psa.example.com"
    harness.enrol(1)

    assert push.maintain_graph_subscriptions().calls == 0
    assert GraphSubscription.objects.count() == 0


def test_each_run_is_bounded(harness: Harness) -> None:
    for n in range(1, 4):
        harness.enrol(n)

    assert push.maintain_graph_subscriptions(limit=2).created == 2
    assert push.maintain_graph_subscriptions(limit=2).created == 1
    assert GraphSubscription.objects.filter(subscription_id__isnull=False).count() == 3


def test_a_run_starts_no_call_after_its_time(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(1, 3):
        harness.enrol(n)
    monkeypatch.setattr(push, "SECONDS_PER_RUN", 0.0)

    assert push.maintain_graph_subscriptions().calls == 0
    monkeypatch.setattr(push, "SECONDS_PER_RUN", 45.0)
    assert push.maintain_graph_subscriptions().created == 2
