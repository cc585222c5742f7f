"""Graph sandbox: events CRUD with extended properties, transactionId, If-Match, calendarView with
recurring series (exceptions, cancelled occurrences), Prefer headers."""

from __future__ import annotations

from typing import Any

import pytest

from exchange_ext.sandbox.server import SandboxHandle
from tests.sandbox.graph_client import TAG_ID, GraphClient, event_body

USER = "users/tech1@northwind.example"
WINDOW = {"startDateTime": "2026-11-01T00:00:00Z", "endDateTime": "2026-12-01T00:00:00Z"}
BERLIN = "W. Europe Standard Time"


@pytest.fixture
def graph(sandbox: SandboxHandle) -> GraphClient:
    return GraphClient(sandbox)


def _tag_filter(value: str) -> dict[str, str]:
    return {
        "$filter": f"singleValueExtendedProperties/Any(ep: ep/id eq '{TAG_ID}' and "
        f"ep/value eq '{value}')",
        "$expand": f"singleValueExtendedProperties($filter=id eq '{TAG_ID}')",
    }


def _create(graph: GraphClient, subject: str = "Visit", **extra: Any) -> dict[str, Any]:
    reply = graph.post(f"{USER}/events", event_body(
        subject, "2026-11-23T09:00:00", "2026-11-23T10:00:00", **extra))  # fmt: skip
    assert reply.status_code == 201, reply.text
    return reply.json()


def test_event_crud_with_extended_property(graph: GraphClient) -> None:
    created = _create(
        graph, "Service visit",
        body={"contentType": "text", "content": "Replace the pump"},
        location={"displayName": "Customer site"}, showAs="workingElsewhere",
        sensitivity="private", categories=["PSA"],
        singleValueExtendedProperties=[{"id": TAG_ID, "value": "psa:appt:42"}],
    )  # fmt: skip
    assert created["type"] == "singleInstance" and created["isOrganizer"] is True
    assert created["@odata.etag"] == f'W/"{created["changeKey"]}"'
    assert created["showAs"] == "workingElsewhere" and created["sensitivity"] == "private"
    assert created["location"]["displayName"] == "Customer site"
    assert created["organizer"]["emailAddress"]["address"] == "tech1@northwind.example"
    assert created["start"] == {"dateTime": "2026-11-23T09:00:00.0000000", "timeZone": "UTC"}
    assert "singleValueExtendedProperties" not in created  # only when expanded

    found = graph.get(f"{USER}/events", params=_tag_filter("PSA:APPT:42")).json()["value"]
    assert [e["id"] for e in found] == [created["id"]]  # values compare case-insensitively
    assert found[0]["singleValueExtendedProperties"] == [{"id": TAG_ID, "value": "psa:appt:42"}]
    assert graph.get(f"{USER}/events", params=_tag_filter("psa:appt:43")).json()["value"] == []

    got = graph.get(f"{USER}/events/{created['id']}", headers={
        "Prefer": 'outlook.body-content-type="text"'}).json()  # fmt: skip
    assert got["body"] == {"contentType": "text", "content": "Replace the pump"}

    reply = graph.patch(
        f"{USER}/events/{created['id']}",
        {"subject": "Service visit (moved)", "end": {"dateTime": "2026-11-23T11:00:00",
                                                     "timeZone": "UTC"},
         "singleValueExtendedProperties": [{"id": TAG_ID, "value": "psa:appt:42b"}]},
        headers={"If-Match": created["@odata.etag"]},
    )  # fmt: skip
    assert reply.status_code == 200, reply.text
    updated = reply.json()
    assert updated["subject"] == "Service visit (moved)"
    assert updated["changeKey"] != created["changeKey"]
    assert updated["end"]["dateTime"].startswith("2026-11-23T11:00:00")
    assert graph.get(f"{USER}/events", params=_tag_filter("psa:appt:42b")).json()["value"]

    assert graph.delete(f"{USER}/events/{created['id']}").status_code == 204
    missing = graph.get(f"{USER}/events/{created['id']}")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "ErrorItemNotFound"


def test_stale_if_match_is_412(graph: GraphClient) -> None:
    created = _create(graph)
    assert graph.patch(f"{USER}/events/{created['id']}", {"subject": "v2"}).status_code == 200
    for call in (
        lambda: graph.patch(f"{USER}/events/{created['id']}", {"subject": "v3"},
                            headers={"If-Match": created["@odata.etag"]}),
        lambda: graph.delete(f"{USER}/events/{created['id']}",
                             headers={"If-Match": created["@odata.etag"]}),
    ):  # fmt: skip
        reply = call()
        assert reply.status_code == 412, reply.text
        assert reply.json()["error"]["code"] == "ErrorIrresolvableConflict"
    assert graph.get(f"{USER}/events/{created['id']}").json()["subject"] == "v2"


def test_transaction_id_deduplicates_creates(graph: GraphClient) -> None:
    first = _create(graph, "Once", transactionId="psa-create-7f3a")
    second = _create(graph, "Once", transactionId="psa-create-7f3a")
    assert second["id"] == first["id"]
    assert second["transactionId"] == "psa-create-7f3a"
    events = graph.get(f"{USER}/events").json()["value"]
    assert [e["subject"] for e in events] == ["Once"]
    # Another mailbox has its own transaction ids.
    again = event_body("Once", "2026-11-23T09:00:00", "2026-11-23T10:00:00",
                       transactionId="psa-create-7f3a")  # fmt: skip
    other = graph.post("users/tech2@northwind.example/events", again)
    assert other.status_code == 201 and other.json()["id"] != first["id"]
    reply = graph.patch(f"{USER}/events/{first['id']}", {"transactionId": "changed"})
    assert reply.status_code == 400


def test_calendar_view_expands_series_with_exception_and_cancelled_occurrence(
    graph: GraphClient,
) -> None:
    reply = graph.post(f"{USER}/events", {
        "subject": "Daily stand-up",
        "start": {"dateTime": "2026-11-23T09:00:00", "timeZone": BERLIN},
        "end": {"dateTime": "2026-11-23T09:15:00", "timeZone": BERLIN},
        "recurrence": {
            "pattern": {"type": "daily", "interval": 1},
            "range": {"type": "numbered", "startDate": "2026-11-23", "numberOfOccurrences": 5},
        },
    })  # fmt: skip
    assert reply.status_code == 201, reply.text
    master = reply.json()
    assert master["type"] == "seriesMaster"
    assert master["recurrence"]["pattern"]["type"] == "daily"
    assert master["recurrence"]["range"]["numberOfOccurrences"] == 5
    assert master["originalStartTimeZone"] == BERLIN

    view = graph.get(f"{USER}/calendarView", params=WINDOW).json()["value"]
    assert [v["type"] for v in view] == ["occurrence"] * 5
    assert {v["seriesMasterId"] for v in view} == {master["id"]}
    second, fourth = view[1], view[3]
    assert second["originalStart"] == "2026-11-24T08:00:00Z"

    reply = graph.patch(f"{USER}/events/{second['id']}", {
        "subject": "Stand-up (late)",
        "start": {"dateTime": "2026-11-24T11:00:00", "timeZone": BERLIN},
        "end": {"dateTime": "2026-11-24T11:15:00", "timeZone": BERLIN},
    })  # fmt: skip
    assert reply.status_code == 200, reply.text
    assert reply.json()["type"] == "exception"
    assert graph.delete(f"{USER}/events/{fourth['id']}").status_code == 204

    view = graph.get(f"{USER}/calendarView", params=WINDOW, headers={
        "Prefer": f'outlook.timezone="{BERLIN}"'}).json()["value"]  # fmt: skip
    assert [v["type"] for v in view] == ["occurrence", "exception", "occurrence", "occurrence"]
    exception = view[1]
    assert exception["subject"] == "Stand-up (late)"
    assert exception["start"] == {"dateTime": "2026-11-24T11:00:00.0000000", "timeZone": BERLIN}
    assert exception["originalStart"] == "2026-11-24T08:00:00Z"
    assert fourth["id"] not in {v["id"] for v in view}  # the cancelled occurrence is gone
    assert [v["start"]["dateTime"][:16] for v in view] == [
        "2026-11-23T09:00", "2026-11-24T11:00", "2026-11-25T09:00", "2026-11-27T09:00"]  # fmt: skip
    instances = graph.get(f"{USER}/events/{master['id']}/instances", params=WINDOW).json()
    assert len(instances["value"]) == 4
    # Occurrence ids can be read directly.
    assert graph.get(f"{USER}/events/{view[0]['id']}").json()["type"] == "occurrence"
    # ``uid`` is the series' on every occurrence and exception; ``iCalUId`` is per occurrence.
    assert {v["uid"] for v in view} == {master["uid"]} == {master["iCalUId"]}
    assert len({v["iCalUId"] for v in view} | {master["uid"]}) == 5


def test_graph_ids_are_not_ews_ids_and_an_ews_id_is_malformed_there(
    sandbox: SandboxHandle, graph: GraphClient
) -> None:
    created = _create(graph, "Visit")
    [stored] = sandbox.state.store.backdoor_list("tech1@northwind.example", "calendar")
    assert stored["id"] != created["id"]  # one item, a name per protocol
    assert stored["uid"] == created["uid"] == created["iCalUId"]  # one UID for both
    assert graph.get(f"{USER}/events/{created['id']}").status_code == 200
    reply = graph.get(f"{USER}/events/{stored['id']}")
    assert (reply.status_code, reply.json()["error"]["code"]) == (400, "ErrorInvalidIdMalformed")


def test_prefer_outlook_timezone_renders_times_in_that_zone(graph: GraphClient) -> None:
    created = _create(graph)
    for zone, expected in ((BERLIN, "2026-11-23T10:00:00.0000000"),
                           ("Pacific Standard Time", "2026-11-23T01:00:00.0000000"),
                           ("Europe/Berlin", "2026-11-23T10:00:00.0000000")):  # fmt: skip
        reply = graph.get(f"{USER}/events/{created['id']}", headers={
            "Prefer": f'outlook.timezone="{zone}", IdType="ImmutableId"'})  # fmt: skip
        assert reply.json()["start"] == {"dateTime": expected, "timeZone": zone}
        applied = reply.headers["Preference-Applied"]
        assert f'outlook.timezone="{zone}"' in applied and 'IdType="ImmutableId"' in applied
    bad = graph.get(f"{USER}/events/{created['id']}", headers={
        "Prefer": 'outlook.timezone="Mars/Olympus"'})  # fmt: skip
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "TimeZoneNotSupportedException"


def test_all_day_event_and_paging(graph: GraphClient) -> None:
    reply = graph.post(f"{USER}/events", {
        "subject": "Holiday", "isAllDay": True, "showAs": "oof",
        "start": {"dateTime": "2026-11-26T00:00:00", "timeZone": BERLIN},
        "end": {"dateTime": "2026-11-27T00:00:00", "timeZone": BERLIN},
    })  # fmt: skip
    assert reply.status_code == 201, reply.text
    holiday = reply.json()
    assert holiday["isAllDay"] is True and holiday["showAs"] == "oof"
    assert holiday["start"]["dateTime"] == "2026-11-26T00:00:00.0000000"
    for n in range(12):
        _create(graph, f"Visit {n}")
    page = graph.get(f"{USER}/calendarView", params=WINDOW).json()
    assert len(page["value"]) == 10 and "@odata.nextLink" in page
    rest = graph.get(page["@odata.nextLink"]).json()
    assert len(rest["value"]) == 3 and "@odata.nextLink" not in rest
    top = graph.get(f"{USER}/events", params={"$top": "5"}).json()
    assert len(top["value"]) == 5


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"subject": "x", "colour": "red"}, "BadRequest"),
        ({"subject": "x"}, "ErrorInvalidRequest"),  # no start/end
        ({"subject": "x", "showAs": "away", "start": {"dateTime": "2026-11-23T09:00:00",
          "timeZone": "UTC"}, "end": {"dateTime": "2026-11-23T10:00:00", "timeZone": "UTC"}},
         "BadRequest"),
    ],
)  # fmt: skip
def test_invalid_event_bodies_are_400(graph: GraphClient, body: dict, code: str) -> None:
    reply = graph.post(f"{USER}/events", body)
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["code"] == code


def test_malformed_json_is_400(graph: GraphClient) -> None:
    reply = graph.call("POST", f"{USER}/events", data=b"{not json",
                       headers={"Content-Type": "application/json"})  # fmt: skip
    assert reply.status_code == 400
    assert reply.json()["error"]["code"] == "BadRequest"
