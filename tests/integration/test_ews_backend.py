"""EwsBackend against the in-process sandbox over real HTTPS: configuration, faults, volume.

What the contract suite (tests/contract) does not cover: how the backend is configured (no
probing request, impersonation, the factory), how it fails (auth, impersonation, throttling
budget, truncated and malformed responses, HTTP errors), and behaviour at volume (SyncFolderItems
paging past 512, tag lookups and writes in chunks, the public contacts folder).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from exchangelib import BASIC, DELEGATE, IMPERSONATION
from exchangelib.protocol import Protocol, close_connections

from exchange_ext.backends.base import (
    AuthFailed,
    FolderKind,
    ImpersonationDenied,
    ItemChange,
    ItemDeletion,
    ItemRejected,
    MailboxNotFound,
    NewItem,
    Throttled,
    Unavailable,
)
from exchange_ext.backends.ews.backend import (
    EwsBackend,
    EwsSession,
    EwsSettings,
    SessionCredentials,
)
from exchange_ext.backends.ews.endpoint import pinned_version
from exchange_ext.backends.factory import backend_for
from exchange_ext.models import ExchangeConfig, MailboxSettings
from exchange_ext.sync.records import (
    ALL_GROUPS,
    CalendarRecord,
    ContactRecord,
    ItemKind,
    PsaKey,
    PsaTag,
)
from exchange_ext.sync.windows import SyncWindow
from tests import clock
from tests.integration.sandboxes import running_sandbox

TECH1 = "tech1@northwind.example"


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with running_sandbox(tmp_path_factory, "ews-backend") as handle:
        yield handle


@pytest.fixture(autouse=True)
def _fresh_sandbox(sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    sandbox.state.reset()
    monkeypatch.setenv("EXCHANGE_CA_BUNDLE", str(sandbox.ca_file))
    yield
    close_connections()
    failures = sandbox.state.validator.counts["response"]
    sandbox.state.validator.counts["response"] = 0
    assert not failures, sandbox.state.validator.report()


def backend(sandbox: Any, login: str = "svc-sync", password: str = "sandbox-sync",
            **settings: Any) -> EwsBackend:  # fmt: skip
    settings.setdefault("retry_budget_seconds", 5.0)
    return EwsBackend(
        EwsSettings(
            endpoint=sandbox.url,
            make_credentials=lambda: SessionCredentials(login, password),
            auth_type=BASIC,
            version=pinned_version("2016"),
            timeout_seconds=20.0,
            **settings,
        )
    )


def sync_window() -> SyncWindow:
    """The sync window of a run at the test's pinned clock: 7 days back, 14 ahead."""
    now = clock.now()
    return SyncWindow(now - dt.timedelta(days=7), now + dt.timedelta(days=14))


def appointment(n: int) -> CalendarRecord:
    """Tomorrow, from the pinned clock's hour, ``n`` minutes later."""
    start = clock.now().replace(minute=0, second=0) + dt.timedelta(days=1, minutes=n)
    return CalendarRecord(f"Visit {n}", "", start, start + dt.timedelta(minutes=30))


def tag(n: int) -> PsaTag:
    return PsaTag("inst", PsaKey(ItemKind.APPOINTMENT, n))


def operations(sandbox: Any) -> list[str]:
    return [entry["operation"] for entry in sandbox.state.requests.query()["requests"]]


def add_fault(sandbox: Any, **rule: Any) -> None:
    sandbox.state.faults.add(rule)


def first_page(session: EwsSession, state: str | None = None) -> Any:
    return session.read_changes(FolderKind.CALENDAR, state, sync_window())


# --- configuration ------------------------------------------------------------------------------


def test_the_first_request_is_the_real_operation_with_impersonation(sandbox):
    with backend(sandbox).open_session(TECH1) as session:
        first_page(session)
    [entry] = sandbox.state.requests.query()["requests"]
    assert entry["operation"] == "SyncFolderItems"
    assert (entry["caller"], entry["impersonation"]) == ("svc-sync", TECH1)


def test_a_quiet_folder_costs_exactly_one_request(sandbox):
    with backend(sandbox).open_session(TECH1) as session:
        session.create(FolderKind.CALENDAR, [NewItem(appointment(n), tag(n)) for n in range(3)])
        state = first_page(session).new_state
        sandbox.state.requests.clear()
        page = first_page(session, state)
    assert (page.created, page.updated, page.deleted) == ((), (), ())
    assert operations(sandbox) == ["SyncFolderItems"]


def test_closing_a_session_forgets_its_protocol(sandbox):
    session = backend(sandbox).open_session(TECH1)
    first_page(session)
    session.close()
    session.close()  # idempotent
    with pytest.raises(KeyError):
        Protocol[session.config]


def test_exchangelib_never_logs_at_debug(sandbox):
    logging.getLogger("exchangelib").setLevel(logging.DEBUG)
    backend(sandbox).open_session(TECH1).close()
    assert logging.getLogger("exchangelib").getEffectiveLevel() > logging.DEBUG


# --- failures -----------------------------------------------------------------------------------


def test_a_sync_account_without_impersonation_rights_is_impersonation_denied(sandbox):
    with (
        backend(sandbox, "svc-noimp", "sandbox-noimp").open_session(TECH1) as session,
        pytest.raises(ImpersonationDenied),
    ):
        first_page(session)


def test_an_unknown_mailbox_is_mailbox_not_found(sandbox):
    with (
        backend(sandbox).open_session("nobody@northwind.example") as session,
        pytest.raises(MailboxNotFound),
    ):
        first_page(session)


def test_a_wrong_password_fails_fast_despite_the_fault_tolerant_policy(sandbox):
    started = time.monotonic()
    with (
        backend(sandbox, password="wrong", retry_budget_seconds=600).open_session(TECH1) as s,
        pytest.raises(AuthFailed),
    ):
        first_page(s)
    assert time.monotonic() - started < 5
    assert len(operations(sandbox)) == 1  # one attempt: no retry that could lock the account


def test_server_busy_twice_is_waited_out_within_the_budget(sandbox):
    add_fault(sandbox, kind="server_busy", operation="SyncFolderItems", count=2, back_off_ms=300)
    with backend(sandbox).open_session(TECH1) as session:
        page = first_page(session)
    assert page.full_read
    assert operations(sandbox).count("SyncFolderItems") == 3


def test_throttling_beyond_the_budget_is_throttled_with_the_servers_wait(sandbox):
    add_fault(sandbox, kind="server_busy", operation="SyncFolderItems", back_off_ms=30_000)
    started = time.monotonic()
    with backend(sandbox).open_session(TECH1) as session, pytest.raises(Throttled) as raised:
        first_page(session)
    assert raised.value.retry_after_seconds == 30
    assert time.monotonic() - started < 5


def test_repeated_throttling_stops_when_the_waits_add_up_to_the_budget(sandbox):
    add_fault(sandbox, kind="server_busy", operation="SyncFolderItems", count=10, back_off_ms=2000)
    with (
        backend(sandbox, retry_budget_seconds=5).open_session(TECH1) as session,
        pytest.raises(Throttled),
    ):
        first_page(session)
    assert operations(sandbox).count("SyncFolderItems") == 3  # waited 2 + 2 s, not 2 + 2 + 2


@pytest.mark.parametrize(("status", "error"), [(503, Throttled), (429, Throttled),
                                               (502, Unavailable), (500, Unavailable)])  # fmt: skip
def test_http_errors_are_throttling_or_outages(sandbox, status, error):
    add_fault(sandbox, kind="http_status", status=status, retry_after=60, count=20)
    with backend(sandbox).open_session(TECH1) as session, pytest.raises(error):
        first_page(session)


def test_a_connection_reset_is_unavailable(sandbox):
    add_fault(sandbox, kind="reset_before", operation="SyncFolderItems")
    with backend(sandbox).open_session(TECH1) as session, pytest.raises(Unavailable):
        first_page(session)


def _items_then_state(sandbox: Any, count: int = 20) -> tuple[EwsBackend, str]:
    ews = backend(sandbox)
    with ews.open_session(TECH1) as session:
        state = first_page(session).new_state
        session.create(FolderKind.CALENDAR, [NewItem(appointment(n), tag(n)) for n in range(count)])
    return ews, state


@pytest.mark.parametrize("declared", ["truncated", "full"])
def test_a_truncated_sync_page_is_unavailable_and_returns_no_state(sandbox, declared):
    ews, state = _items_then_state(sandbox)
    add_fault(sandbox, kind="truncate", operation="SyncFolderItems", bytes=1500, declared=declared)
    with ews.open_session(TECH1) as session:
        with pytest.raises(Unavailable):
            first_page(session, state)
        # Nothing was lost: the same state still yields every change.
        page = first_page(session, state)
    assert len(page.created) == 20


def test_exchangelib_alone_would_accept_that_truncated_page(sandbox):
    """The trap the guard exists for (docs/reliability.md, "#E1"), shown on this sandbox."""
    from exchangelib import Account, Configuration, EWSTimeZone, FailFast
    from exchangelib.items import ID_ONLY
    from exchangelib.services import SyncFolderItems

    from exchange_ext.backends.ews.tls import install_exchangelib_trust

    _ews, state = _items_then_state(sandbox)
    add_fault(sandbox, kind="truncate", operation="SyncFolderItems", bytes=1500)
    install_exchangelib_trust()
    config = Configuration(service_endpoint=sandbox.url, auth_type=BASIC,
                           credentials=SessionCredentials("svc-sync", "sandbox-sync"),
                           version=pinned_version("2016"), retry_policy=FailFast())  # fmt: skip
    account = Account(TECH1, config=config, autodiscover=False, access_type=IMPERSONATION,
                      default_timezone=EWSTimeZone("UTC"))  # fmt: skip
    service = SyncFolderItems(account=account)
    changes = list(service.call(folder=account.calendar, shape=ID_ONLY, additional_fields=None,
                                sync_state=state, ignore=None, max_changes_returned=512,
                                sync_scope=None))  # fmt: skip
    assert service.sync_state and len(changes) < 20  # a "success" that lost changes


def test_a_malformed_response_is_unavailable(sandbox):
    ews, state = _items_then_state(sandbox, count=3)
    add_fault(sandbox, kind="malformed", operation="SyncFolderItems")
    with ews.open_session(TECH1) as session, pytest.raises(Unavailable):
        first_page(session, state)


def test_a_malformed_write_reply_is_unavailable(sandbox):
    add_fault(sandbox, kind="malformed", operation="CreateItem")
    with backend(sandbox).open_session(TECH1) as session, pytest.raises(Unavailable):
        session.create(FolderKind.CALENDAR, [NewItem(appointment(1), tag(1))])


# --- volume -------------------------------------------------------------------------------------


def test_more_than_512_changes_come_in_pages_each_with_its_state(sandbox):
    with backend(sandbox).open_session(TECH1) as session:
        state = first_page(session).new_state
        session.create(FolderKind.CALENDAR, [NewItem(appointment(n), tag(n)) for n in range(600)])
        sandbox.state.requests.clear()
        first = first_page(session, state)
        second = first_page(session, first.new_state)
    assert (len(first.created), first.more_available) == (512, True)
    assert (len(second.created), second.more_available) == (88, False)
    assert first.new_state != second.new_state
    ids = {i.exchange_id for i in (*first.created, *second.created)}
    assert len(ids) == 600
    counts = sandbox.state.requests.query()["counters"]
    assert counts["SyncFolderItems"] == 2 and counts["GetItem"] == 7  # 6 + 1 chunks of 100


def test_600_of_our_own_writes_cost_the_change_feed_alone(sandbox):
    # No content reads of our own writes: the ItemIds' ChangeKeys match what the creates
    # returned, so GetItem reads only the one item a user edited afterwards.
    with backend(sandbox).open_session(TECH1) as session:
        state = first_page(session).new_state
        results = session.create(
            FolderKind.CALENDAR, [NewItem(appointment(n), tag(n)) for n in range(600)]
        )
        ours = {result.exchange_id: result.change_key for result in results}
        edited = results[7].exchange_id
        ours[edited] = "CQAAAA-an-older-version"
        asked: list[int] = []

        def known(ids):
            asked.append(len(ids))
            return {i: ours[i] for i in ids if i in ours}

        sandbox.state.requests.clear()
        first = session.read_changes(FolderKind.CALENDAR, state, sync_window(), known)
        second = session.read_changes(FolderKind.CALENDAR, first.new_state, sync_window(), known)
    assert [i.exchange_id for i in (*first.created, *second.created)] == [edited]
    assert len({*first.unchanged, *second.unchanged}) == 599 and asked == [512, 88]
    counts = sandbox.state.requests.query()["counters"]
    assert counts == {"SyncFolderItems": 2, "GetItem": 1}


def test_a_full_read_marks_every_page_as_full(sandbox):
    with backend(sandbox).open_session(TECH1) as session:
        session.create(FolderKind.CALENDAR, [NewItem(appointment(n), tag(n)) for n in range(520)])
        first = first_page(session)
        second = first_page(session, first.new_state)
        third = first_page(session, second.new_state)
    assert first.full_read and second.full_read and not third.full_read
    assert len(first.created) + len(second.created) == 520 and not third.created


def test_bulk_create_of_300_items_goes_in_batches_of_100(sandbox):
    with backend(sandbox).open_session(TECH1) as session:
        results = session.create(
            FolderKind.CALENDAR, [NewItem(appointment(n), tag(n)) for n in range(300)]
        )
    assert all(r.ok for r in results) and len({r.exchange_id for r in results}) == 300
    assert operations(sandbox).count("CreateItem") == 3


def test_each_created_item_is_checked_and_serialised_once(sandbox, monkeypatch):
    # exchangelib's payload builder cleans each item again; the backend serialises items
    # itself after checking them, so a bulk export pays for one clean per item (bench/).
    from exchangelib import CalendarItem

    cleaned: list[int] = []
    original = CalendarItem.clean

    def counting_clean(self: Any, version: Any = None) -> None:
        cleaned.append(1)
        original(self, version=version)

    monkeypatch.setattr(CalendarItem, "clean", counting_clean)
    with backend(sandbox).open_session(TECH1) as session:
        results = session.create(
            FolderKind.CALENDAR, [NewItem(appointment(n), tag(n)) for n in range(5)]
        )
        assert len(cleaned) == 5
        assert len(first_page(session).created) == 5
    assert all(r.ok and r.exchange_id for r in results)


def test_find_by_tag_with_250_tags_finds_each_item_in_chunked_lookups(sandbox):
    with backend(sandbox).open_session(TECH1) as session:
        created = session.create(
            FolderKind.CALENDAR, [NewItem(appointment(n), tag(n)) for n in range(250)]
        )
        sandbox.state.requests.clear()
        found = session.find_by_tag(FolderKind.CALENDAR, [tag(n) for n in range(260)])
    assert set(found) == {tag(n) for n in range(250)}
    assert [found[tag(n)][0].exchange_id for n in range(250)] == [r.exchange_id for r in created]
    assert operations(sandbox).count("FindItem") == 6  # 260 tags in chunks of 50


def test_the_tag_is_the_products_named_property(sandbox):
    """The same MAPI named property a Graph backend reads (tag_property.py)."""
    from exchange_ext.backends.tag_property import PSA_TAG_PROPERTY_NAME, PSA_TAG_PROPERTY_SET_ID

    with backend(sandbox).open_session(TECH1) as session:
        [created] = session.create(FolderKind.CALENDAR, [NewItem(appointment(1), tag(1))])
    stored = sandbox.state.store.item(created.exchange_id)
    [written] = stored.extended.values()
    assert (
        PSA_TAG_PROPERTY_SET_ID in written and f'PropertyName="{PSA_TAG_PROPERTY_NAME}"' in written
    )
    assert str(tag(1)) in written


def test_no_write_sends_a_meeting_message(sandbox):
    with backend(sandbox).open_session(TECH1) as session:
        [created] = session.create(FolderKind.CALENDAR, [NewItem(appointment(1), tag(1))])
        [updated] = session.update(
            FolderKind.CALENDAR,
            [ItemChange(created.exchange_id, created.change_key, appointment(2), ALL_GROUPS)],
        )
        session.delete(FolderKind.CALENDAR, [ItemDeletion(created.exchange_id, updated.change_key)])
    assert updated.ok
    assert sandbox.state.outbox.messages == []


# --- the public contacts folder -----------------------------------------------------------------


def test_the_public_contacts_folder_is_created_once_and_then_found(sandbox):
    person = ContactRecord("Grace", "Hopper", emails=("grace@example.com",))
    ews = backend(sandbox, public_folder_name="PSA contacts")
    with ews.open_session(TECH1) as session:
        [created] = session.create(
            FolderKind.PUBLIC_CONTACTS,
            [NewItem(person, PsaTag("inst", PsaKey(ItemKind.CONTACT, 1)))],
        )
    with ews.open_session(TECH1) as session:
        page = session.read_changes(FolderKind.PUBLIC_CONTACTS, None, sync_window())
    assert created.ok and page.full_read and not page.more_available
    assert [i.record for i in page.created] == [person]
    assert operations(sandbox).count("CreateFolder") == 1


# --- the factory --------------------------------------------------------------------------------


def _config(**fields: Any) -> ExchangeConfig:
    defaults = {"server_address": "mail.example.test", "username": "svc", "domain": "CORP",
                "password": "secret", "use_basic_auth": True, "use_for_all_users": True,
                "exchange_version": "2016"}  # fmt: skip
    return ExchangeConfig(**{**defaults, **fields})


def test_the_factory_builds_impersonation_with_the_sync_account():
    ews = backend_for(_config())
    assert isinstance(ews, EwsBackend)
    settings = ews.settings
    assert settings.endpoint == "https://mail.example.test/EWS/Exchange.asmx"
    assert (settings.auth_type, settings.access_type) == (BASIC, IMPERSONATION)
    assert settings.make_credentials().username == "CORP\\svc"


def test_the_factory_uses_the_resources_own_credentials_without_a_shared_account():
    own = MailboxSettings(username="tech1", password="own-secret")
    ews = backend_for(_config(use_for_all_users=False), mailbox_settings=own)
    assert isinstance(ews, EwsBackend) and ews.settings.access_type == DELEGATE
    credentials = ews.settings.make_credentials()
    assert (credentials.username, credentials.password) == ("CORP\\tech1", "own-secret")


def test_the_factory_uses_oauth_for_office_365_without_graph():
    ews = backend_for(
        _config(
            use_basic_auth=False, use_graph=False, tenant_id="t", client_id="c", client_secret="s"
        )
    )
    assert isinstance(ews, EwsBackend) and ews.settings.access_type == IMPERSONATION
    assert ews.settings.make_credentials().token_url.endswith("/t/oauth2/v2.0/token")


def test_the_factory_gives_office_365_with_graph_the_graph_backend():
    from exchange_ext.backends.graph.backend import GraphBackend

    graph = backend_for(
        _config(
            use_basic_auth=False, use_graph=True, tenant_id="t", client_id="c", client_secret="s"
        )
    )
    assert isinstance(graph, GraphBackend) and not graph.supports_public_folders


def test_sessions_of_one_backend_do_not_share_a_protocol(sandbox):
    ews = backend(sandbox)
    with ews.open_session(TECH1) as one, ews.open_session(TECH1) as two:
        assert one.account.protocol is not two.account.protocol


def test_an_invalid_record_is_rejected_alone_and_the_batch_goes_on(sandbox):
    broken = appointment(2)
    broken = CalendarRecord("Backwards", "", broken.end, broken.start)
    with backend(sandbox).open_session(TECH1) as session:
        results = session.create(
            FolderKind.CALENDAR,
            [
                NewItem(appointment(1), tag(1)),
                NewItem(broken, tag(2)),
                NewItem(appointment(3), tag(3)),
            ],
        )
    assert [r.ok for r in results] == [True, False, True]
    assert isinstance(results[1].error, ItemRejected)
    assert operations(sandbox).count("CreateItem") == 1


def test_a_stale_change_key_in_a_batch_is_one_update_request_with_one_conflict(sandbox):
    with backend(sandbox).open_session(TECH1) as session:
        created = session.create(
            FolderKind.CALENDAR, [NewItem(appointment(n), tag(n)) for n in range(3)]
        )
        stale = [
            ItemChange(c.exchange_id, c.change_key, appointment(9), ALL_GROUPS) for c in created
        ]
        session.update(FolderKind.CALENDAR, stale[1:2])  # moves item 1's change key on
        sandbox.state.requests.clear()
        results = session.update(FolderKind.CALENDAR, stale)
    assert [type(r.error).__name__ for r in results] == ["NoneType", "ConflictError", "NoneType"]
    assert operations(sandbox) == ["UpdateItem"]


def test_a_broken_ca_bundle_setting_is_a_permanent_outage(sandbox, monkeypatch, tmp_path):
    monkeypatch.setenv("EXCHANGE_CA_BUNDLE", str(tmp_path / "missing.pem"))
    with pytest.raises(Unavailable) as raised:
        backend(sandbox).open_session(TECH1)
    assert raised.value.permanent and "EXCHANGE_CA_BUNDLE" in raised.value.message
