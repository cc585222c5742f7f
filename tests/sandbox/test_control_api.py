"""The control API under /_sandbox/: loopback only, clear 4xx on bad input, run-time accounts and
mailboxes, faults, the backdoor (seen by SyncFolderItems), reset, clock, schema report, state."""

from __future__ import annotations

import datetime as dt
import socket
from typing import Any
from urllib.parse import quote

import pytest
import requests
from exchangelib import DELEGATE

from exchange_ext.sandbox.server import load_config
from tests import clock

from .conftest import make_account

TECH1 = "tech1@northwind.example"


def call(handle: Any, method: str, path: str, **kwargs: Any) -> requests.Response:
    """A control API request with the sandbox's token (``headers=`` adds to or overrides it)."""
    kwargs.setdefault("verify", str(handle.ca_file) if handle.ca_file else True)
    kwargs["headers"] = {**handle.control_headers, **kwargs.get("headers", {})}
    return requests.request(method, f"{handle.control_url}{path}", timeout=10, **kwargs)


def non_loopback_address() -> str | None:
    """This machine's address on its default route (no packet is sent), if it has one."""
    for target in ("203.0.113.1", "10.255.255.255"):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.connect((target, 9))
            except OSError:
                continue
            address = probe.getsockname()[0]
        if not address.startswith("127."):
            return address
    return None


def test_the_control_api_refuses_clients_that_are_not_on_loopback(start):
    address = non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    handle = start(config=load_config(), tls="none", host="0.0.0.0")
    remote = f"http://{address}:{handle.port}"

    refused = requests.get(f"{remote}/_sandbox/requests", timeout=10)
    ews = requests.post(f"{remote}/EWS/Exchange.asmx", data=b"", timeout=10)
    local = requests.get(
        f"http://127.0.0.1:{handle.port}/_sandbox/requests", headers=handle.control_headers,
        timeout=10,
    )  # fmt: skip

    assert refused.status_code == 403
    assert "loopback" in refused.json()["error"]
    assert ews.status_code == 401  # EWS itself is open to the network
    assert local.status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "/nothing-here", None, 404),
        ("PUT", "/faults", b"{}", 405),
        ("POST", "/faults", b"not json", 400),
        ("POST", "/faults", b"[1, 2]", 400),
        ("POST", "/faults", b'{"kind": "explode"}', 400),
        ("POST", "/faults", b'{"kind": "latency", "latency_ms": -5}', 400),
        ("POST", "/faults", b'{"kind": "http_status", "status": 302}', 400),
        ("POST", "/faults", b'{"kind": "server_busy", "count": "three"}', 400),
        ("DELETE", "/faults/999", None, 404),
        ("POST", "/accounts", b'{"login": "x"}', 400),
        ("POST", "/accounts", b'{"login": "a\\\\b", "password": "p"}', 400),
        ("POST", "/mailboxes", b'{"address": "no-at-sign"}', 400),
        ("POST", "/clock", b'{"now": "yesterday"}', 400),
        ("POST", "/clock", b'{"now": "2030-01-01T00:00:00"}', 400),
        ("GET", "/mailboxes/nobody@northwind.example/folders/calendar/items", None, 404),
        ("PATCH", f"/mailboxes/{TECH1}/items/no-such-item", b"{}", 404),
    ],
)
def test_bad_input_gets_a_json_error_with_a_4xx_status(start, method, path, body, status):
    handle = start(config=load_config())

    reply = call(handle, method, path, data=body)

    assert reply.status_code == status
    assert reply.headers["Content-Type"] == "application/json"
    assert reply.json()["error"]
    assert "Traceback" not in reply.text


def test_the_index_lists_the_endpoints(start):
    handle = start(config=load_config())

    index = call(handle, "GET", "/").json()

    assert any("/faults" in line for line in index["endpoints"])


def test_accounts_and_mailboxes_added_at_run_time_work_through_exchangelib(sandbox):
    assert call(sandbox, "POST", "/mailboxes", json={"address": "Room9@Northwind.example"}).ok
    added = call(
        sandbox, "POST", "/accounts",
        json={"login": "tech9", "password": "s3cret", "mailbox": "tech9@northwind.example"},
    )  # fmt: skip

    assert added.status_code == 201 and "password" not in added.json()
    own = make_account(
        sandbox, "tech9@northwind.example", login="tech9", password="s3cret", access_type=DELEGATE
    )
    assert own.calendar.name
    assert make_account(sandbox, "room9@northwind.example").calendar.name
    mailboxes = {m["address"] for m in call(sandbox, "GET", "/mailboxes").json()["mailboxes"]}
    assert {"room9@northwind.example", "tech9@northwind.example", TECH1} <= mailboxes
    logins = {a["login"] for a in call(sandbox, "GET", "/accounts").json()["accounts"]}
    assert {"svc-sync", "svc-noimp", "tech9"} <= logins


def test_faults_are_listed_and_removed_one_by_one_or_all(start):
    handle = start(config=load_config())
    first = call(handle, "POST", "/faults", json={"kind": "latency", "latency_ms": 5}).json()
    call(handle, "POST", "/faults", json={"kind": "server_busy", "operation": "SyncFolderItems"})

    assert len(call(handle, "GET", "/faults").json()["faults"]) == 2
    assert call(handle, "DELETE", f"/faults/{first['id']}").ok
    [left] = call(handle, "GET", "/faults").json()["faults"]
    assert (left["kind"], left["operation"], left["remaining"]) == (
        "server_busy", "SyncFolderItems", 1,
    )  # fmt: skip
    assert call(handle, "DELETE", "/faults").json() == {"faults": []}


def test_backdoor_edits_appear_in_sync_folder_items(sandbox, service_account):
    calendar = service_account.calendar
    list(calendar.sync_items())  # the initial sync: nothing yet
    fields = {"subject": "Dentist", "start": "2025-03-03T09:00:00+00:00",
              "end": "2025-03-03T10:00:00+00:00"}  # fmt: skip

    created = call(sandbox, "POST", f"/mailboxes/{TECH1}/folders/calendar/items", json=fields)
    assert created.status_code == 201
    item_id = created.json()["id"]
    [(kind, item)] = list(calendar.sync_items())
    assert (kind, item.subject) == ("create", "Dentist")

    path = f"/mailboxes/{TECH1}/items/{quote(item_id, safe='')}"
    assert call(sandbox, "PATCH", path, json={"subject": "Dentist (moved)"}).ok
    [(kind, item)] = list(calendar.sync_items())
    assert (kind, item.subject) == ("update", "Dentist (moved)")

    listed = call(sandbox, "GET", f"/mailboxes/{TECH1}/folders/calendar/items").json()["items"]
    assert [i["subject"] for i in listed] == ["Dentist (moved)"]
    assert call(sandbox, "DELETE", path).ok
    [(kind, _deleted)] = list(calendar.sync_items())
    assert kind == "delete"


def test_reset_returns_to_the_config(sandbox, service_account):
    call(sandbox, "POST", "/mailboxes", json={"address": "extra@northwind.example"})
    call(sandbox, "POST", "/faults", json={"kind": "latency", "latency_ms": 1, "count": 5})
    service_account.calendar  # noqa: B018
    sandbox.state.outbox.messages.append({"subject": "would be sent"})

    assert call(sandbox, "POST", "/reset").ok

    mailboxes = {m["address"] for m in call(sandbox, "GET", "/mailboxes").json()["mailboxes"]}
    assert "extra@northwind.example" not in mailboxes and TECH1 in mailboxes
    assert call(sandbox, "GET", "/faults").json() == {"faults": []}
    assert call(sandbox, "GET", "/requests").json() == {"requests": [], "counters": {}}
    assert call(sandbox, "GET", "/outbox").json() == {"messages": []}


def test_the_request_log_can_be_cleared(sandbox, service_account):
    service_account.calendar  # noqa: B018
    assert call(sandbox, "GET", "/requests").json()["counters"]["GetFolder"] >= 1

    assert call(sandbox, "DELETE", "/requests").ok
    assert call(sandbox, "GET", "/requests").json()["requests"] == []


def test_the_outbox_shows_what_would_have_been_sent(start):
    handle = start(config=load_config())
    handle.state.outbox.messages.append({"kind": "MeetingRequest", "to": [TECH1]})

    assert call(handle, "GET", "/outbox").json() == {
        "messages": [{"kind": "MeetingRequest", "to": [TECH1]}]
    }


def test_the_clock_can_be_moved(start):
    handle = start(config=load_config())

    later = clock.day(3 * 365, "12:00")  # a few years after the pinned clock
    moved = call(handle, "POST", "/clock", json={"now": later.isoformat()}).json()

    assert moved["now"].startswith(f"{later:%Y-%m-%d}T12:00")
    assert abs(handle.state.now() - later) < dt.timedelta(seconds=5)
    assert call(handle, "POST", "/clock", json={"offset_seconds": 0}).json()["offset_seconds"] == 0
    # Offset 0 is the process clock again: the pinned reading, taken when this test started.
    assert abs(handle.state.now() - clock.now()) < dt.timedelta(seconds=5)


def test_the_schema_report_counts_validations(sandbox, service_account):
    service_account.calendar  # noqa: B018

    report = call(sandbox, "GET", "/schema").json()

    assert report["active"] and report["fatal"]
    assert report["validated"]["response"] >= 1
    assert report["failures"] == {"request": 0, "response": 0}


def test_without_the_schema_directory_the_sandbox_runs_unvalidated(start, tmp_path, monkeypatch):
    monkeypatch.setenv("EXCHANGE_SANDBOX_SCHEMA_DIR", str(tmp_path))

    handle = start(config=load_config())

    assert call(handle, "GET", "/schema").json()["active"] is False


def test_the_state_file_keeps_mailbox_contents_across_restarts(start, tmp_path):
    state = tmp_path / "state.json"
    first = start(config=load_config(), state_file=state)
    fields = {"subject": "Kept", "start": "2025-03-03T09:00:00+00:00",
              "end": "2025-03-03T10:00:00+00:00"}  # fmt: skip
    assert call(first, "POST", f"/mailboxes/{TECH1}/folders/calendar/items", json=fields).ok
    first.stop()

    second = start(config=load_config(), state_file=state)

    items = call(second, "GET", f"/mailboxes/{TECH1}/folders/calendar/items").json()["items"]
    assert [i["subject"] for i in items] == ["Kept"]
