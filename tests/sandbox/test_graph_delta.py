"""Graph sandbox: calendarView/delta and contacts delta rounds (paging, changes, removals), the
store shared with EWS (exchangelib creates ⇄ Graph delta, tags both ways), 410 on delta tokens."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from exchangelib import Account, CalendarItem, EWSDateTime, EWSTimeZone
from exchangelib.extended_properties import ExtendedProperty

from exchange_ext.sandbox.graph import delta, ids
from exchange_ext.sandbox.server import SandboxHandle
from tests.sandbox.graph_client import (
    PSA_SET,
    TAG_ID,
    GraphClient,
    control_session,
    event_body,
)

USER = "users/tech1@northwind.example"
WINDOW = "startDateTime=2026-11-01T00:00:00Z&endDateTime=2026-12-01T00:00:00Z"
UTC = EWSTimeZone("UTC")


class PsaTag(ExtendedProperty):
    property_set_id = PSA_SET
    property_name = "PsaItemKey"
    property_type = "String"


@pytest.fixture
def psa_tag() -> Iterator[None]:
    CalendarItem.register("sandbox_tag", PsaTag)
    yield
    CalendarItem.deregister("sandbox_tag")


@pytest.fixture
def graph(sandbox: SandboxHandle) -> GraphClient:
    return GraphClient(sandbox)


def _create(graph: GraphClient, subject: str, day: int = 23, **extra: Any) -> dict[str, Any]:
    day_text = f"2026-11-{day:02d}"
    body = event_body(subject, f"{day_text}T09:00:00", f"{day_text}T10:00:00", **extra)
    reply = graph.post(f"{USER}/events", body)
    assert reply.status_code == 201, reply.text
    return reply.json()


def _split(entries: list[dict[str, Any]]) -> tuple[set[str], set[str]]:
    changed = {e["subject"] for e in entries if "@removed" not in e}
    removed = {e["id"] for e in entries if "@removed" in e}
    return changed, removed


def test_delta_rounds_with_paging_changes_and_removals(graph: GraphClient) -> None:
    events = [_create(graph, f"Visit {n}", day=20 + n) for n in range(7)]
    _create(graph, "Outside", day=30).get("id")
    graph.post(f"{USER}/events", event_body("December", "2026-12-05T09:00:00",
                                            "2026-12-05T10:00:00"))  # fmt: skip
    small_pages = {"Prefer": "odata.maxpagesize=3"}
    entries, link, pages = graph.delta_round(f"{USER}/calendarView/delta?{WINDOW}",
                                             headers=small_pages)  # fmt: skip
    assert pages == 3
    assert _split(entries)[0] == {f"Visit {n}" for n in range(7)} | {"Outside"}
    assert "$deltatoken=" in link

    entries, link, pages = graph.delta_round(link)
    assert (entries, pages) == ([], 1)

    graph.patch(f"{USER}/events/{events[0]['id']}", {"subject": "Visit 0 (edited)"})
    graph.delete(f"{USER}/events/{events[1]['id']}")
    graph.patch(f"{USER}/events/{events[2]['id']}", {  # moved out of the window
        "start": {"dateTime": "2026-12-10T09:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2026-12-10T10:00:00", "timeZone": "UTC"}})  # fmt: skip
    _create(graph, "New visit")
    entries, link, pages = graph.delta_round(link, headers=small_pages)
    changed, removed = _split(entries)
    assert changed == {"Visit 0 (edited)", "New visit"}
    assert removed == {events[1]["id"], events[2]["id"]}
    removed_entry = next(e for e in entries if "@removed" in e)
    assert removed_entry["@removed"] == {"reason": "deleted"}
    # An older deltaLink can be replayed: it still answers relative to its own round.
    assert graph.delta_round(link)[0] == []


def test_delta_sees_series_occurrences(graph: GraphClient) -> None:
    reply = graph.post(f"{USER}/events", {
        "subject": "Weekly", "start": {"dateTime": "2026-11-02T08:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2026-11-02T09:00:00", "timeZone": "UTC"},
        "recurrence": {"pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"]},
                       "range": {"type": "noEnd", "startDate": "2026-11-02"}},
    })  # fmt: skip
    master = reply.json()
    entries, link, _ = graph.delta_round(f"{USER}/calendarView/delta?{WINDOW}")
    assert [e["type"] for e in entries] == ["occurrence"] * 5
    third = entries[2]
    assert graph.delete(f"{USER}/events/{third['id']}").status_code == 204
    entries, _, _ = graph.delta_round(link)
    # Changing the series touches its occurrences; the cancelled one is removed.
    assert {e["id"] for e in entries if "@removed" in e} == {third["id"]}
    assert all(e["seriesMasterId"] == master["id"] for e in entries if "@removed" not in e)


def test_ews_and_graph_share_the_mailbox(
    sandbox: SandboxHandle, graph: GraphClient, service_account: Account, psa_tag: None
) -> None:
    _, link, _ = graph.delta_round(f"{USER}/calendarView/delta?{WINDOW}")
    folder = service_account.calendar
    _, ews_state = list(folder.sync_items(only_fields=["subject"])), folder.item_sync_state

    # Created over EWS, tagged over EWS → Graph delta (with the tag expanded) and $filter.
    item = CalendarItem(
        account=service_account, folder=folder, subject="From EWS",
        start=EWSDateTime(2026, 11, 24, 13, tzinfo=UTC),
        end=EWSDateTime(2026, 11, 24, 14, tzinfo=UTC),
        sandbox_tag="psa:appt:ews-1",
    )  # fmt: skip
    item.save()
    expand = f"&$expand=singleValueExtendedProperties($filter=id eq '{TAG_ID}')"
    entries, link, _ = graph.delta_round(link + expand)
    assert [e["subject"] for e in entries] == ["From EWS"]
    # One item, two names: Graph's id is not the EWS ItemId, and maps back to it.
    assert entries[0]["id"] != item.id and ids.store_id(entries[0]["id"]) == item.id
    assert entries[0]["singleValueExtendedProperties"] == [
        {"id": TAG_ID, "value": "psa:appt:ews-1"}
    ]
    assert entries[0]["changeKey"] == item.changekey

    # Created and tagged over Graph → EWS SyncFolderItems and a FindItem restriction on the tag.
    tag = [{"id": TAG_ID, "value": "psa:appt:g-1"}]
    created = _create(graph, "From Graph", day=25, singleValueExtendedProperties=tag)
    folder.item_sync_state = ews_state
    changes = list(folder.sync_items(sync_state=ews_state, only_fields=["subject"]))
    assert sorted((kind, obj.subject) for kind, obj in changes) == [
        ("create", "From EWS"), ("create", "From Graph")]  # fmt: skip
    found = list(folder.filter(sandbox_tag="psa:appt:g-1"))
    assert [(f.id, f.subject, f.sandbox_tag) for f in found] == [
        (ids.store_id(created["id"]), "From Graph", "psa:appt:g-1")]  # fmt: skip

    # An EWS delete is a Graph removal.
    entries, link, _ = graph.delta_round(link)
    assert [e["id"] for e in entries] == [created["id"]]
    service_account.calendar.get(id=ids.store_id(created["id"])).delete()
    entries, _, _ = graph.delta_round(link)
    assert {e["id"]: e.get("@removed") for e in entries} == {created["id"]: {"reason": "deleted"}}


def _add_fault(sandbox: SandboxHandle, **rule: Any) -> dict[str, Any]:
    reply = control_session(sandbox).post(f"{sandbox.control_url}/faults", json=rule, timeout=10)
    assert reply.status_code == 201, reply.text
    return reply.json()


@pytest.mark.parametrize("code", ["syncStateNotFound", "resyncRequired"])
def test_delta_gone_fault_reaches_the_client(
    sandbox: SandboxHandle, graph: GraphClient, code: str
) -> None:
    _create(graph, "Visit")
    _add_fault(sandbox, kind="delta_gone", operation="graph:calendarView.delta",
               mailbox="tech1@northwind.example", code=code)  # fmt: skip
    # The first round carries no token: the rule waits for one.
    entries, link, _ = graph.delta_round(f"{USER}/calendarView/delta?{WINDOW}")
    assert len(entries) == 1
    reply = graph.get(link)
    assert reply.status_code == 410, reply.text
    assert reply.json()["error"]["code"] == code
    assert "$deltatoken=" in reply.headers["Location"]
    # Starting over is a full round again.
    assert len(graph.delta_round(f"{USER}/calendarView/delta?{WINDOW}")[0]) == 1
    log = control_session(sandbox).get(f"{sandbox.control_url}/requests",
                                       params={"operation": "graph:calendarView.delta"},
                                       timeout=10).json()  # fmt: skip
    gone = [r for r in log["requests"] if r["status"] == 410]
    assert gone[0]["response_code"] == code and gone[0]["fault"].startswith("delta_gone#")


def test_expired_and_unknown_delta_tokens_are_410(
    sandbox: SandboxHandle, graph: GraphClient
) -> None:
    _, link, _ = graph.delta_round(f"{USER}/calendarView/delta?{WINDOW}")
    reply = control_session(sandbox).delete(f"{sandbox.control_url}/graph/delta-tokens", timeout=10)
    assert reply.json()["expired"] >= 1
    gone = graph.get(link)
    assert gone.status_code == 410 and gone.json()["error"]["code"] == "syncStateNotFound"
    bogus = graph.get(f"{USER}/calendarView/delta?$deltatoken=made-up")
    assert bogus.status_code == 410
    # Another mailbox's token is no good here either.
    _, other, _ = graph.delta_round(
        f"users/tech2@northwind.example/calendarView/delta?{WINDOW}")  # fmt: skip
    token = other.split("$deltatoken=")[1]
    assert graph.get(f"{USER}/calendarView/delta?$deltatoken={token}").status_code == 410


def test_contacts_delta_pages_are_capped_whatever_is_asked(
    graph: GraphClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Graph serves at most 200 contacts per delta page (delta.MAX_CONTACTS_PAGE); 2 here keeps
    # the test small. Events are capped at MAX_PAGE only.
    monkeypatch.setattr(delta, "MAX_CONTACTS_PAGE", 2)
    for n in range(5):
        reply = graph.post(f"{USER}/contacts", {"givenName": f"Person {n}", "surname": "Doe"})
        assert reply.status_code == 201, reply.text
        _create(graph, f"Visit {n}", day=20 + n)
    many = {"Prefer": "odata.maxpagesize=1000"}
    entries, _, pages = graph.delta_round(f"{USER}/contacts/delta", headers=many)
    assert (len(entries), pages) == (5, 3)
    entries, _, pages = graph.delta_round(f"{USER}/calendarView/delta?{WINDOW}", headers=many)
    assert (len(entries), pages) == (5, 1)


def test_delta_requires_a_window(graph: GraphClient) -> None:
    reply = graph.get(f"{USER}/calendarView/delta")
    assert reply.status_code == 400
    assert reply.json()["error"]["code"] == "ErrorInvalidParameter"


def test_contacts_crud_and_delta(sandbox: SandboxHandle, graph: GraphClient) -> None:
    reply = graph.post(f"{USER}/contacts", {
        "givenName": "Ada", "surname": "Lovelace", "companyName": "Analytical Engines",
        "emailAddresses": [{"address": "ada@example.com", "name": "Ada"}],
        "businessPhones": ["+44 20 1234"], "mobilePhone": "+44 77 5678",
        "businessAddress": {"street": "1 Engine St", "city": "London", "postalCode": "N1"},
        "singleValueExtendedProperties": [{"id": TAG_ID, "value": "psa:contact:1"}],
    })  # fmt: skip
    assert reply.status_code == 201, reply.text
    ada = reply.json()
    assert ada["displayName"] == "Ada Lovelace"
    assert ada["emailAddresses"] == [{"name": "ada@example.com", "address": "ada@example.com"}] or (
        ada["emailAddresses"][0]["address"] == "ada@example.com"
    )
    assert ada["businessPhones"] == ["+44 20 1234"] and ada["mobilePhone"] == "+44 77 5678"
    assert ada["businessAddress"]["city"] == "London"
    # A contact made as a person in Outlook would (backdoor) is seen as well.
    backdoor = control_session(sandbox).post(
        f"{sandbox.control_url}/mailboxes/tech1@northwind.example/folders/contacts/items",
        json={"display_name": "Grace Hopper", "given_name": "Grace", "surname": "Hopper"},
        timeout=10,
    ).json()  # fmt: skip

    entries, link, pages = graph.delta_round(f"{USER}/contacts/delta",
                                             headers={"Prefer": "odata.maxpagesize=1"})  # fmt: skip
    assert pages == 2
    assert {e["displayName"] for e in entries} == {"Ada Lovelace", "Grace Hopper"}

    reply = graph.patch(f"{USER}/contacts/{ada['id']}", {"mobilePhone": "+44 77 0000"})
    assert reply.json()["businessPhones"] == ["+44 20 1234"]  # other numbers kept
    grace = ids.graph_id(backdoor["id"])  # the backdoor speaks store (EWS) ids
    assert graph.delete(f"{USER}/contacts/{backdoor['id']}").status_code == 400  # malformed
    assert graph.delete(f"{USER}/contacts/{grace}").status_code == 204
    entries, link, _ = graph.delta_round(link)
    assert {e["id"]: e.get("@removed", e.get("mobilePhone")) for e in entries} == {
        ada["id"]: "+44 77 0000", grace: {"reason": "deleted"}}  # fmt: skip
    found = graph.get(f"{USER}/contacts", params={
        "$filter": f"singleValueExtendedProperties/Any(ep: ep/id eq '{TAG_ID}' and "
                   "ep/value eq 'psa:contact:1')"}).json()["value"]  # fmt: skip
    assert [c["id"] for c in found] == [ada["id"]]
    folder_id = ada["parentFolderId"]
    same = graph.delta_round(f"{USER}/contactFolders/{folder_id}/contacts/delta")[0]
    assert {e["id"] for e in same} == {ada["id"]}
    assert dt.datetime.fromisoformat(ada["createdDateTime"].replace("0000000Z", "+00:00"))
