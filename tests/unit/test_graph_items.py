"""Graph JSON ⇄ records, Retry-After, error mapping and the delta range, on plain data."""

from __future__ import annotations

import datetime as dt
import email.utils

import pytest

from exchange_ext.backends.base import (
    AuthFailed,
    FolderKind,
    ImpersonationDenied,
    MailboxNotFound,
    SyncStateExpired,
    Unavailable,
)
from exchange_ext.backends.graph import items as graph_items
from exchange_ext.backends.graph.auth import GraphCredentials
from exchange_ext.backends.graph.backend import GraphBackend, GraphSettings, delta_range
from exchange_ext.backends.graph.http import (
    GraphHttp,
    GraphReply,
    retry_after_seconds,
    whole_call_error,
)
from exchange_ext.backends.tag_property import graph_property_id
from exchange_ext.sync.records import (
    ALL_GROUPS,
    CalendarItemType,
    CalendarRecord,
    ItemKind,
    PsaKey,
    PsaTag,
    ShowAs,
    occurrence_id,
)
from exchange_ext.sync.windows import SyncWindow
from tests import clock

TAG = PsaTag("inst-1", PsaKey(ItemKind.APPOINTMENT, 7))
BERLIN_NOON = dt.datetime(2030, 5, 6, 10, 0, tzinfo=dt.UTC)


def record(**changes: object) -> CalendarRecord:
    values: dict[str, object] = {
        "subject": "Visit", "body": "Notes", "start": BERLIN_NOON,
        "end": BERLIN_NOON + dt.timedelta(hours=1), "time_zone": "Europe/Berlin",
    }  # fmt: skip
    return CalendarRecord(**(values | changes))  # type: ignore[arg-type]


def event(**fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "id": "AAMk1", "changeKey": "ck1", "type": "singleInstance", "subject": "Visit",
        "body": {"contentType": "text", "content": "Notes"}, "isAllDay": False,
        "start": {"dateTime": "2030-05-06T10:00:00.0000000", "timeZone": "UTC"},
        "end": {"dateTime": "2030-05-06T11:00:00.0000000", "timeZone": "UTC"},
        "originalStartTimeZone": "W. Europe Standard Time", "showAs": "busy",
        "sensitivity": "normal", "location": {"displayName": ""}, "isOrganizer": True,
    }  # fmt: skip
    return base | fields


def test_events_are_written_in_their_own_zone_with_a_windows_zone_id():
    body = graph_items.event_body(record(), ALL_GROUPS)
    assert body["start"] == {
        "dateTime": "2030-05-06T12:00:00",
        "timeZone": "W. Europe Standard Time",
    }
    assert "attendees" not in body


def test_a_create_carries_the_tag_and_a_transaction_id_that_repeats_for_the_same_content():
    first = graph_items.create_body(record(), TAG)
    assert first["singleValueExtendedProperties"] == [
        {"id": graph_property_id(), "value": str(TAG)}
    ]
    assert first["transactionId"] == graph_items.create_body(record(), TAG)["transactionId"]
    assert (
        first["transactionId"]
        != graph_items.create_body(record(subject="New"), TAG)["transactionId"]
    )


def test_the_tag_property_is_the_one_ews_writes():
    assert graph_items.TAG_PROPERTY_ID == (
        "String {6c9ba6d7-8a1e-4c0d-a4a3-b553cd4c00b3} Name PsaItemKey"
    )


def test_an_all_day_event_is_midnight_to_midnight_in_its_original_zone():
    data = event(
        isAllDay=True,
        start={"dateTime": "2030-05-06T00:00:00.0000000", "timeZone": "UTC"},
        end={"dateTime": "2030-05-07T00:00:00.0000000", "timeZone": "UTC"},
    )
    read = graph_items.calendar_record(data)
    assert read.start == dt.datetime(2030, 5, 5, 22, 0, tzinfo=dt.UTC)
    assert read.end == dt.datetime(2030, 5, 6, 22, 0, tzinfo=dt.UTC)
    assert read.time_zone == "Europe/Berlin"


@pytest.mark.parametrize(
    ("show_as", "expected"),
    [("workingElsewhere", ShowAs.WORKING_ELSEWHERE), ("oof", ShowAs.OOF),
     ("free", ShowAs.FREE), ("unknown", ShowAs.BUSY)],
)  # fmt: skip
def test_show_as_includes_working_elsewhere_and_reads_unknown_as_busy(show_as, expected):
    assert graph_items.calendar_record(event(showAs=show_as)).show_as is expected


def test_private_sensitivity_is_a_private_record_and_written_back_as_private():
    assert graph_items.calendar_record(event(sensitivity="private")).is_private
    assert graph_items.event_body(record(is_private=True), ALL_GROUPS)["sensitivity"] == "private"


def test_an_exception_is_reported_under_its_master_and_original_start():
    item = graph_items.event_item(
        event(type="exception", id="inst-9", seriesMasterId="AAMkMaster",
              originalStart="2030-05-06T10:00:00.0000000Z", changeKey="ck9"),
        "tech1@northwind.example",
    )  # fmt: skip
    assert item.exchange_id == occurrence_id("AAMkMaster", BERLIN_NOON)
    assert item.calendar_item_type is CalendarItemType.EXCEPTION and item.change_key == "ck9"


def test_a_tag_from_another_client_or_installation_is_read_as_written():
    data = event(singleValueExtendedProperties=[{"id": graph_property_id(), "value": str(TAG)}])
    assert graph_items.event_item(data, "x@y").psa_tag == TAG
    garbage = event(singleValueExtendedProperties=[{"id": graph_property_id(), "value": "x"}])
    assert graph_items.event_item(garbage, "x@y").psa_tag is None


def test_retry_after_is_seconds_or_an_http_date():
    now = clock.now().timestamp()
    assert retry_after_seconds({"retry-after": "7"}) == 7
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert retry_after_seconds({"retry-after": date}, now=now) == pytest.approx(30)
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert retry_after_seconds({}) is None


@pytest.mark.parametrize(
    ("status", "code", "message", "expected"),
    [
        (401, "InvalidAuthenticationToken", "", AuthFailed),
        (403, "ErrorAccessDenied", "Access to OData is disabled: [RAOP] : Blocked by tenant "
         "configured AppOnly AccessPolicy settings.", ImpersonationDenied),
        (403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.",
         AuthFailed),
        (404, "ErrorInvalidUser", "", MailboxNotFound),
        (404, "MailboxNotEnabledForRESTAPI", "", MailboxNotFound),
        (410, "syncStateNotFound", "", SyncStateExpired),
        (400, "resyncRequired", "", SyncStateExpired),
        (500, "InternalServerError", "", Unavailable),
    ],
)  # fmt: skip
def test_whole_call_errors(status, code, message, expected):
    reply = GraphReply(status, {}, {"error": {"code": code, "message": message}})
    assert isinstance(whole_call_error(reply, "tech1@northwind.example"), expected)


def test_item_level_replies_are_not_whole_call_errors():
    for status, code in ((404, "ErrorItemNotFound"), (412, "ErrorIrresolvableConflict")):
        assert whole_call_error(GraphReply(status, {}, {"error": {"code": code}})) is None


def test_a_link_to_another_host_is_never_followed_with_our_token():
    tokens: list[str] = []
    http = GraphHttp("https://graph.microsoft.com", lambda: tokens.append("t") or "t")
    with pytest.raises(Unavailable, match="another host"):
        http.get("https://elsewhere.example/v1.0/users/x/calendarView/delta?$deltatoken=1")
    assert tokens == []


def test_the_delta_range_holds_for_a_week_then_steps():
    monday = dt.datetime(2026, 11, 16, tzinfo=dt.UTC)
    ranges = {
        delta_range(SyncWindow(monday + dt.timedelta(hours=h), monday)) for h in range(0, 168, 5)
    }
    assert ranges == {(monday, monday + dt.timedelta(days=1820))}
    later = delta_range(SyncWindow(monday + dt.timedelta(days=7), monday))
    assert later[0] == monday + dt.timedelta(days=7)


def test_a_state_for_another_graph_host_or_folder_is_expired():
    credentials = GraphCredentials("t", "c", "s")
    session = GraphBackend(GraphSettings(credentials)).open_session("tech1@northwind.example")
    window = SyncWindow(BERLIN_NOON, BERLIN_NOON)
    foreign = "graph1|events|2030-05-06T00:00:00Z|inc|https://other.example/v1.0/x"
    for state in (foreign, "bm90IGEgc3RhdGU="):
        with pytest.raises(SyncStateExpired):
            session.read_changes(FolderKind.CALENDAR, state, window)
