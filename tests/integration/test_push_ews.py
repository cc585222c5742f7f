"""EWS push end to end (SPEC §4.3; docs/sync-rules.md, "Push"): the listener of
``manage.py exchange_listen`` holding streaming subscriptions on the sandbox over real HTTPS
(exchangelib), an Outlook edit queuing a prompt sync, and the unlucky cases — a dropped
connection, a server restart that forgot the subscriptions, connections Exchange closes at
their timeout, a disabled mailbox. The sandbox's protocol minute is shortened.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from django.core.management import call_command
from django.core.management.base import CommandError
from django_q.models import OrmQ

from exchange_ext.jobs import dispatcher, ews_listener
from exchange_ext.models import ExchangeConfig, ListenerHeartbeat, MailboxSettings, SyncRun
from exchange_ext.sandbox.server import SandboxHandle
from psa.scheduling.models import Appointment
from tests import clock
from tests.integration.prompt_syncs import queued_syncs, run_queued_syncs, wait_for
from tests.integration.sandboxes import running_sandbox
from tests.integration.sync_rules.rules import Harness

pytestmark = pytest.mark.django_db(transaction=True)
MINUTE = 0.5  # seconds per protocol minute in the sandbox


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxHandle]:
    with running_sandbox(
        tmp_path_factory, "listen", streaming={"minute_seconds": MINUTE}
    ) as handle:
        yield handle


@pytest.fixture
def harness(sandbox: SandboxHandle, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    from exchangelib.protocol import close_connections

    sandbox.state.reset()
    for name, value in Harness.environment(sandbox).items():
        monkeypatch.setenv(name, value)
    harness = Harness(sandbox, "ews", ExchangeConfig.load())
    harness.configure("ews")
    harness.set(enabled=True, sync_contacts=False)
    yield harness
    close_connections()


class Running:
    """A listener in a thread of this test, stopped at the end."""

    def __init__(self, **options: Any) -> None:
        options = {"reconcile_seconds": 0.2, "minutes": 2, **options}
        self.listener = ews_listener.Listener(**options)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.listener.run, args=(self.stop,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=20)
        assert not self.thread.is_alive(), "the listener did not stop"

    def streaming(self, count: int = 1) -> None:
        """Wait until ``count`` connections stream."""
        wait_for(lambda: sum(c.open for c in self.listener.connections) >= count, "streams open")


@pytest.fixture
def listen() -> Iterator[Any]:
    running: list[Running] = []

    def start(**options: Any) -> Running:
        running.append(Running(**options))
        return running[-1]

    yield start
    for item in running:
        item.close()


def synced(harness: Harness, n: int = 1) -> MailboxSettings:
    mailbox = harness.enrol(n)
    assert harness.sync(mailbox).outcome == SyncRun.Outcome.OK
    OrmQ.objects.all().delete()
    return mailbox


def streams(harness: Harness) -> dict[str, Any]:
    sandbox = harness.sandbox
    reply = requests.get(f"{sandbox.control_url}/streaming", headers=sandbox.control_headers,
                         verify=sandbox.ca_file, timeout=10)  # fmt: skip
    reply.raise_for_status()
    return dict(reply.json())


def drop(harness: Harness, *, forget: bool) -> None:
    sandbox = harness.sandbox
    reply = requests.post(
        f"{sandbox.control_url}/streaming/drop", json={"forget_subscriptions": forget},
        headers=sandbox.control_headers, verify=sandbox.ca_file, timeout=10,
    )  # fmt: skip
    reply.raise_for_status()


def edit_arrives(harness: Harness, mailbox: MailboxSettings, subject: str) -> None:
    """An Outlook create queues a prompt sync of its mailbox (no slot due). The sync itself is
    run by the first test, once the listener stopped (SQLite's in-memory database cannot take
    the listener's writes and a sync's at once)."""

    def taken() -> bool:  # what a worker does when it starts the queued syncs
        OrmQ.objects.all().delete()
        return MailboxSettings.objects.update(queued_at=None) >= 0

    wait_for(taken, "the queued syncs taken")
    harness.outlook_create(mailbox, subject, clock.day(1, "10:00"))
    wanted = (mailbox.pk, SyncRun.Trigger.EXCHANGE_CHANGE)
    wait_for(lambda: wanted in queued_syncs(), f"a prompt sync for {subject!r}")


def test_an_outlook_edit_reaches_the_psa_with_no_polling_slot_due(
    harness: Harness, listen: Any
) -> None:
    mailbox = synced(harness)
    running = listen()
    wait_for(lambda: mailbox.pk in running.listener.held, "subscribed")
    running.streaming()
    assert mailbox.pk not in dispatcher.due_mailboxes(clock.now())

    edit_arrives(harness, mailbox, "Boiler check from Outlook")
    wait_for(lambda: ListenerHeartbeat.objects.get(name="ews").last_event_at is not None,
             "the event in the heartbeat")  # fmt: skip
    running.close()

    beat = ListenerHeartbeat.objects.get(name="ews")
    assert (beat.wanted, beat.subscribed, beat.streams) == (1, 1, 1)
    [run] = run_queued_syncs()
    assert (run.trigger, run.outcome) == (SyncRun.Trigger.EXCHANGE_CHANGE, SyncRun.Outcome.OK)
    assert Appointment.objects.filter(title="Boiler check from Outlook").exists()


def test_the_listener_survives_a_dropped_connection(harness: Harness, listen: Any) -> None:
    mailbox = synced(harness)
    running = listen()
    running.streaming()

    drop(harness, forget=False)
    wait_for(lambda: streams(harness)["connections"], "a new stream after the drop")

    edit_arrives(harness, mailbox, "After the drop")


def test_a_server_restart_that_forgot_the_subscriptions_resubscribes_and_syncs(
    harness: Harness, listen: Any
) -> None:
    mailbox = synced(harness)
    running = listen()
    running.streaming()
    first = running.listener.held[mailbox.pk].subscription_id

    drop(harness, forget=True)
    wait_for(lambda: (held := running.listener.held.get(mailbox.pk)) is not None
             and held.subscription_id != first, "a new subscription")  # fmt: skip
    wanted = (mailbox.pk, SyncRun.Trigger.EXCHANGE_CHANGE)
    wait_for(lambda: queued_syncs() == [wanted], "a sync for the events the restart may lose")
    running.streaming()

    edit_arrives(harness, mailbox, "After the restart")


def test_connections_closed_at_their_timeout_are_reopened(harness: Harness, listen: Any) -> None:
    mailbox = synced(harness)
    harness.sandbox.state.requests.clear()
    listen(minutes=1)  # Exchange closes each connection after one (sandbox) minute
    time.sleep(4 * MINUTE + 0.5)

    opened = len(harness.log("GetStreamingEvents"))
    assert opened >= 3, opened
    edit_arrives(harness, mailbox, "After several reconnections")


def test_disabling_a_mailbox_ends_its_subscription(harness: Harness, listen: Any) -> None:
    mailbox = synced(harness)
    other = synced(harness, 2)
    running = listen()
    wait_for(lambda: len(running.listener.held) == 2, "both subscribed")

    # While the listener reads the table, SQLite's in-memory test database refuses the write
    # ("table is locked"): wait_for tries again, as the listener itself does.
    disabled = MailboxSettings.objects.filter(pk=mailbox.pk)
    wait_for(lambda: disabled.update(sync_enabled=False) == 1, "the mailbox disabled")
    wait_for(lambda: list(running.listener.held) == [other.pk], "the disabled one dropped")
    wait_for(lambda: len(streams(harness)["subscriptions"]) == 1, "unsubscribed in Exchange")

    edit_arrives(harness, other, "Still pushed")


def test_subscriptions_share_connections_up_to_the_group_size(
    harness: Harness, listen: Any
) -> None:
    mailboxes = [synced(harness, n) for n in (1, 2, 3)]
    running = listen(per_connection=2)
    wait_for(lambda: len(running.listener.held) == 3, "all subscribed")
    wait_for(lambda: sum(c.open for c in running.listener.connections) == 2, "two streams")

    for n, mailbox in enumerate(mailboxes, start=1):
        edit_arrives(harness, mailbox, f"Grouped {n}")


def test_with_graph_as_the_backend_the_listener_holds_nothing(
    harness: Harness, listen: Any
) -> None:
    synced(harness)
    harness.configure("graph")
    running = listen()
    wait_for(lambda: ListenerHeartbeat.objects.filter(name="ews").exists(), "a heartbeat")

    assert running.listener.held == {}
    assert ListenerHeartbeat.objects.get(name="ews").wanted == 0


@pytest.mark.parametrize("value", ["2", "a/b", "2/2", "-1/2", "0/0"])
def test_a_bad_shard_is_refused(value: str) -> None:
    with pytest.raises(CommandError, match="shard"):
        call_command("exchange_listen", f"--shard={value}")


def test_shards_split_the_mailboxes(harness: Harness) -> None:
    for n in (1, 2, 3, 4):
        harness.enrol(n)
    config = ExchangeConfig.load()

    halves = [set(ews_listener.wanted_mailboxes(config, (k, 2))) for k in (0, 1)]

    assert not halves[0] & halves[1]
    assert halves[0] | halves[1] == set(MailboxSettings.objects.values_list("pk", flat=True))
