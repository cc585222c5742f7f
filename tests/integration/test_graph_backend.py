"""GraphBackend against the sandbox's Graph side over real HTTPS: what the contract suite does
not show — tokens, throttling, outages, expired delta tokens, lost create responses, batch
sizes, conflicts, a mailbox moving from EWS to Graph, and the rolling delta range.

Faults go through the sandbox's control API; request counts come from its request log.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from exchange_ext.backends.base import (
    BackendError,
    ConflictError,
    FolderKind,
    ItemChange,
    NewItem,
    SyncStateExpired,
    Throttled,
    Unavailable,
)
from exchange_ext.backends.ews.backend import EwsBackend, EwsSettings, SessionCredentials
from exchange_ext.backends.ews.endpoint import pinned_version
from exchange_ext.backends.graph import auth as graph_auth
from exchange_ext.backends.graph.auth import GraphCredentials
from exchange_ext.backends.graph.backend import (
    RANGE_STEP_DAYS,
    GraphBackend,
    GraphSession,
    GraphSettings,
    delta_range,
)
from exchange_ext.sandbox.graph import ids
from exchange_ext.sandbox.server import SandboxHandle, load_config, start_sandbox
from exchange_ext.sync.records import (
    ALL_GROUPS,
    CalendarRecord,
    FieldGroup,
    ItemKind,
    PsaKey,
    PsaTag,
)
from exchange_ext.sync.windows import SyncWindow
from tests import clock
from tests.exchange_ext.test_graph_connection_probe import registered_certificate

TENANT = "7d3f1b2a-5c4e-4f6a-9b8c-1a2b3c4d5e6f"
APP, SECRET = "0f6a3e2d-1b4c-4d5e-8f90-a1b2c3d4e5f6", "sandbox-graph-secret"
CERT_APP = "4d0e7c61-5f80-4b92-8d34-e5f607182930"
TECH1 = "tech1@northwind.example"


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxHandle]:
    config = load_config()
    public = registered_certificate().split("-----BEGIN RSA PRIVATE KEY-----")[0]
    config["graph"]["apps"].append({
        "client_id": CERT_APP, "certificates": [public], "mailboxes": "all",
        "permissions": ["Calendars.ReadWrite", "Contacts.ReadWrite"],
    })  # fmt: skip
    cert_dir: Path = tmp_path_factory.mktemp("graph-backend-certs")
    handle = start_sandbox(config=config, tls="ca", cert_dir=cert_dir)
    yield handle
    handle.stop()


@pytest.fixture(autouse=True)
def _fresh(sandbox: SandboxHandle, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("EXCHANGE_CA_BUNDLE", str(sandbox.ca_file))
    sandbox.state.reset()
    graph_auth.forget_token_sources()
    yield
    graph_auth.forget_token_sources()


def backend(sandbox: SandboxHandle, *, budget: float = 5.0, **credentials: Any) -> GraphBackend:
    values: dict[str, Any] = {"tenant_id": TENANT, "client_id": APP, "client_secret": SECRET}
    values |= credentials
    return GraphBackend(
        GraphSettings(
            GraphCredentials(**values, authority_url=sandbox.base_url),
            base_url=sandbox.base_url, retry_budget_seconds=budget, timeout=(5.0, 20.0),
        )
    )  # fmt: skip


def fault(sandbox: SandboxHandle, **rule: Any) -> None:
    session = requests.Session()
    session.trust_env = False
    reply = session.post(
        f"{sandbox.control_url}/faults", json=rule, headers=sandbox.control_headers,
        verify=str(sandbox.ca_file), timeout=10,
    )  # fmt: skip
    assert reply.status_code == 201, reply.text


def log(sandbox: SandboxHandle, operation: str | None = None) -> list[dict[str, Any]]:
    return sandbox.state.requests.query(operation)["requests"]


def sync_window() -> SyncWindow:
    """The sync window of a run at the test's pinned clock: 7 days back, 14 ahead."""
    now = clock.now()
    return SyncWindow(now - dt.timedelta(days=7), now + dt.timedelta(days=14))


def visit(n: int, **changes: Any) -> CalendarRecord:
    """Tomorrow, from the pinned clock's hour, ``n % 10`` hours later."""
    start = clock.now().replace(minute=0, second=0) + dt.timedelta(days=1, hours=n % 10)
    fields: dict[str, Any] = {
        "subject": f"Visit {n}", "body": "Notes", "start": start,
        "end": start + dt.timedelta(hours=1), "time_zone": "Europe/Berlin",
    }  # fmt: skip
    return CalendarRecord(**(fields | changes))


def tag(n: int) -> PsaTag:
    return PsaTag("inst-1", PsaKey(ItemKind.APPOINTMENT, n))


def read_all(session: GraphSession, state: str | None = None, window: SyncWindow | None = None):
    window = window or sync_window()
    items: dict[str, Any] = {}
    deleted: list[str] = []
    while True:
        page = session.read_changes(FolderKind.CALENDAR, state, window)
        items |= {i.exchange_id: i for i in (*page.created, *page.updated)}
        deleted += page.deleted
        state = page.new_state
        if not page.more_available:
            return items, deleted, state


# --- tokens ---------------------------------------------------------------------------------


def test_one_token_serves_many_calls_and_sessions(sandbox):
    graph = backend(sandbox)
    for _ in range(3):
        with graph.open_session(TECH1) as session:
            read_all(session)
            session.find_by_tag(FolderKind.CALENDAR, [tag(1)])
    assert len(log(sandbox, "graph:token")) == 1


def test_a_certificate_signs_in_as_well_as_a_secret(sandbox):
    graph = backend(sandbox, client_id=CERT_APP, client_secret="",
                    certificate_pem=registered_certificate())  # fmt: skip
    with graph.open_session(TECH1) as session:
        [created] = session.create(FolderKind.CALENDAR, [NewItem(visit(1), tag(1))])
    assert created.ok
    [token] = log(sandbox, "graph:token")
    assert token["status"] == 200


# --- throttling and outages -----------------------------------------------------------------


@pytest.mark.parametrize("retry_format", ["seconds", "http-date"])
def test_a_429_is_retried_after_its_retry_after_within_the_budget(sandbox, retry_format):
    fault(sandbox, kind="http_status", status=429, retry_after=2,
          retry_after_format=retry_format, operation="graph:calendarView.delta")  # fmt: skip
    with backend(sandbox, budget=10.0).open_session(TECH1) as session:
        page = session.read_changes(FolderKind.CALENDAR, None, sync_window())
    assert page.full_read
    first, second = log(sandbox, "graph:calendarView.delta")
    assert first["status"] == 429 and second["status"] == 200
    waited = dt.datetime.fromisoformat(second["time"]) - dt.datetime.fromisoformat(first["time"])
    # An HTTP-date has whole seconds: the wait is at least the second it names.
    assert waited >= dt.timedelta(seconds=1 if retry_format == "http-date" else 2)


def test_a_429_beyond_the_budget_is_throttled_with_the_servers_delay(sandbox):
    fault(sandbox, kind="http_status", status=429, retry_after=30,
          operation="graph:calendarView.delta")  # fmt: skip
    started = time.monotonic()
    session = backend(sandbox, budget=3.0).open_session(TECH1)
    with session, pytest.raises(Throttled) as raised:
        session.read_changes(FolderKind.CALENDAR, None, sync_window())
    assert raised.value.retry_after_seconds == pytest.approx(30, abs=1)
    assert time.monotonic() - started < 3.0  # no pointless wait: 30 s never fit the budget
    assert len(log(sandbox, "graph:calendarView.delta")) == 1


def test_a_503_is_retried_and_a_lasting_outage_is_unavailable(sandbox):
    fault(sandbox, kind="http_status", status=503, retry_after=1, operation="graph:batch")
    with backend(sandbox).open_session(TECH1) as session:
        [created] = session.create(FolderKind.CALENDAR, [NewItem(visit(1), tag(1))])
        assert created.ok
        fault(sandbox, kind="http_status", status=503, count=100, operation="graph:batch")
        with pytest.raises(Unavailable):
            session.create(FolderKind.CALENDAR, [NewItem(visit(2), tag(2))])


def test_an_inner_429_is_sent_again_and_the_results_keep_input_order(sandbox):
    fault(sandbox, kind="http_status", status=429, retry_after=1, count=2,
          operation="graph:events.create")  # fmt: skip
    records = [visit(n) for n in range(5)]
    with backend(sandbox).open_session(TECH1) as session:
        results = session.create(FolderKind.CALENDAR,
                                 [NewItem(r, tag(n)) for n, r in enumerate(records)])  # fmt: skip
        found = session.find_by_tag(FolderKind.CALENDAR, [tag(n) for n in range(5)])
    assert all(r.ok for r in results)
    assert [found[tag(n)][0].exchange_id for n in range(5)] == [r.exchange_id for r in results]


# --- delta tokens ---------------------------------------------------------------------------


def test_a_410_on_the_delta_token_is_sync_state_expired(sandbox):
    with backend(sandbox).open_session(TECH1) as session:
        session.create(FolderKind.CALENDAR, [NewItem(visit(1), tag(1))])
        _items, _deleted, state = read_all(session)
        fault(sandbox, kind="delta_gone", operation="graph:calendarView.delta")
        with pytest.raises(SyncStateExpired):
            session.read_changes(FolderKind.CALENDAR, state, sync_window())
        # The full re-read that follows adopts the same item: nothing new to create.
        items, _deleted, _state = read_all(session)
    assert [i.psa_tag for i in items.values()] == [tag(1)]


def test_the_window_rolling_into_the_next_step_re_anchors_with_a_full_read(sandbox):
    with backend(sandbox).open_session(TECH1) as session:
        _items, _deleted, state = read_all(session)
        window = sync_window()
        start, _end = delta_range(window)
        same_step = SyncWindow(start + dt.timedelta(hours=1), window.recurring_end)
        session.read_changes(FolderKind.CALENDAR, state, same_step)  # still the same range
        rolled = SyncWindow(start + dt.timedelta(days=RANGE_STEP_DAYS), window.recurring_end)
        with pytest.raises(SyncStateExpired, match="re-anchored"):
            session.read_changes(FolderKind.CALENDAR, state, rolled)
        page = session.read_changes(FolderKind.CALENDAR, None, rolled)
    # The new state names the new range start (a whole step later), so the next run goes on.
    assert page.full_read and _stamp(start + dt.timedelta(days=RANGE_STEP_DAYS)) in page.new_state


def test_an_event_moved_out_of_the_range_is_an_update_not_a_delete(sandbox):
    with backend(sandbox).open_session(TECH1) as session:
        [created] = session.create(FolderKind.CALENDAR, [NewItem(visit(1), tag(1))])
        _items, _deleted, state = read_all(session)
        long_ago = clock.now() - dt.timedelta(days=400)
        moved = visit(1, start=long_ago, end=long_ago + dt.timedelta(hours=1))
        [result] = session.update(
            FolderKind.CALENDAR,
            [ItemChange(created.exchange_id, created.change_key, moved, ALL_GROUPS)],
        )
        assert result.ok
        items, deleted, _state = read_all(session, state)
    assert deleted == []
    assert items[created.exchange_id].record.start == long_ago


# --- writes ---------------------------------------------------------------------------------


def test_a_create_whose_response_was_lost_is_sent_again_and_makes_one_event(sandbox):
    fault(sandbox, kind="reset_after", operation="graph:batch")
    with backend(sandbox).open_session(TECH1) as session:
        [created] = session.create(FolderKind.CALENDAR, [NewItem(visit(1), tag(1))])
        found = session.find_by_tag(FolderKind.CALENDAR, [tag(1)])
        # A later run that retries the same create (same tag, same content) also finds it.
        [again] = session.create(FolderKind.CALENDAR, [NewItem(visit(1), tag(1))])
    assert created.ok and [i.exchange_id for i in found[tag(1)]] == [created.exchange_id]
    assert again.exchange_id == created.exchange_id
    assert [entry["status"] for entry in log(sandbox, "graph:batch")][:2] == [0, 200]


def test_forty_five_creates_go_in_three_batches(sandbox):
    with backend(sandbox).open_session(TECH1) as session:
        results = session.create(
            FolderKind.CALENDAR, [NewItem(visit(n), tag(n)) for n in range(45)]
        )
    assert len(results) == 45 and all(r.ok for r in results)
    assert len(log(sandbox, "graph:batch")) == 3
    assert len(log(sandbox, "graph:events.create")) == 45


def test_a_full_read_of_our_own_writes_is_one_delta_page_and_no_event_reads(sandbox):
    # Delta pages ask for 1,000 entries (Graph's most); entries whose changeKey the caller
    # holds are not read again (no events.get in a $batch).
    with backend(sandbox).open_session(TECH1) as session:
        results = session.create(
            FolderKind.CALENDAR, [NewItem(visit(n), tag(n)) for n in range(250)]
        )
        ours = {result.exchange_id: result.change_key for result in results}
        sandbox.state.requests.clear()
        page = session.read_changes(
            FolderKind.CALENDAR, None, sync_window(),
            lambda ids: {i: ours[i] for i in ids if i in ours},
        )  # fmt: skip
    assert (page.full_read, page.more_available, page.created) == (True, False, ())
    assert sorted(page.unchanged) == sorted(ours)
    assert sandbox.state.requests.query()["counters"] == {"graph:calendarView.delta": 1}


def test_an_update_with_a_stale_change_key_is_a_conflict_and_writes_nothing(sandbox):
    with backend(sandbox).open_session(TECH1) as session:
        [created] = session.create(FolderKind.CALENDAR, [NewItem(visit(1), tag(1))])
        details = frozenset({FieldGroup.DETAILS})
        [first] = session.update(FolderKind.CALENDAR, [
            ItemChange(created.exchange_id, created.change_key, visit(1, subject="One"), details)
        ])  # fmt: skip
        [stale] = session.update(FolderKind.CALENDAR, [
            ItemChange(created.exchange_id, created.change_key, visit(1, subject="Two"), details)
        ])  # fmt: skip
        [item] = session.find_by_tag(FolderKind.CALENDAR, [tag(1)])[tag(1)]
    assert first.ok and isinstance(stale.error, ConflictError)
    assert item.record.subject == "One" and item.change_key == first.change_key


# --- moving a mailbox from EWS to Graph -----------------------------------------------------


def test_items_tagged_over_ews_are_found_by_their_tags_through_graph(sandbox):
    ews = EwsBackend(EwsSettings(
        endpoint=sandbox.url, auth_type="basic", version=pinned_version("2016"),
        make_credentials=lambda: SessionCredentials("svc-sync", "sandbox-sync"),
        retry_budget_seconds=5.0,
    ))  # fmt: skip
    with ews.open_session(TECH1) as session:
        written = session.create(FolderKind.CALENDAR, [NewItem(visit(n), tag(n)) for n in range(3)])
    with backend(sandbox).open_session(TECH1) as session:
        found = session.find_by_tag(FolderKind.CALENDAR, [tag(n) for n in range(3)])
        items, _deleted, _state = read_all(session)
    # Graph's id of each is not its EWS id (one item, two names), and maps back to it.
    assert {n: [ids.store_id(i.exchange_id) for i in found[tag(n)]] for n in range(3)} == {
        n: [written[n].exchange_id] for n in range(3)
    }
    assert sorted(str(i.psa_tag) for i in items.values()) == sorted(str(tag(n)) for n in range(3))


def _stamp(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# --- whole-call errors ----------------------------------------------------------------------


SCOPED = {
    "client_id": "1a7b4f3e-2c5d-4e6f-9a01-b2c3d4e5f607",
    "client_secret": "sandbox-graph-scoped",
}
NO_PERMISSION = {
    "client_id": "2b8c5a4f-3d6e-4f70-8b12-c3d4e5f60718",
    "client_secret": "sandbox-graph-noperm",
}


@pytest.mark.parametrize(
    ("credentials", "mailbox", "expected"),
    [
        (SCOPED, "room1@northwind.example", "ImpersonationDenied"),
        (NO_PERMISSION, TECH1, "AuthFailed"),
        ({"client_secret": "wrong"}, TECH1, "TokenRefused"),
        ({}, "onprem@northwind.example", "MailboxNotFound"),
        ({}, "nobody@northwind.example", "MailboxNotFound"),
    ],
)
def test_whole_call_errors_come_typed(sandbox, credentials, mailbox, expected):
    session = backend(sandbox, **credentials).open_session(mailbox)
    with session, pytest.raises(BackendError) as raised:
        session.read_changes(FolderKind.CALENDAR, None, sync_window())
    assert type(raised.value).__name__ == expected
    assert raised.value.permanent
