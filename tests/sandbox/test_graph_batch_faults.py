"""Graph sandbox: JSON $batch (20 requests, an inner 429, dependsOn, limits) and fault injection
for Graph operations (429 with Retry-After seconds or HTTP-date, 503/504, resets, latency)."""

from __future__ import annotations

import email.utils
import time
from typing import Any

import pytest
import requests

from exchange_ext.sandbox.graph import ids
from exchange_ext.sandbox.server import SandboxHandle
from tests.sandbox.graph_client import (
    GraphClient,
    control_session,
    event_body,
    graph_session,
    request_token,
)

USER = "users/tech1@northwind.example"
WINDOW = "startDateTime=2026-11-01T00:00:00Z&endDateTime=2026-12-01T00:00:00Z"


@pytest.fixture
def graph(sandbox: SandboxHandle) -> GraphClient:
    return GraphClient(sandbox)


def _fault(sandbox: SandboxHandle, **rule: Any) -> None:
    reply = control_session(sandbox).post(f"{sandbox.control_url}/faults", json=rule, timeout=10)
    assert reply.status_code == 201, reply.text


def _create_request(n: int) -> dict[str, Any]:
    return {
        "id": str(n), "method": "POST", "url": f"/{USER}/events",
        "headers": {"Content-Type": "application/json"},
        "body": event_body(f"Batch {n}", "2026-11-23T09:00:00", "2026-11-23T10:00:00",
                           transactionId=f"batch-{n}"),
    }  # fmt: skip


def test_batch_of_twenty_with_an_inner_429(sandbox: SandboxHandle, graph: GraphClient) -> None:
    _fault(sandbox, kind="http_status", status=429, retry_after=7,
           operation="graph:events.create", mailbox="tech1@northwind.example")  # fmt: skip
    requests_ = [_create_request(n) for n in range(18)]
    requests_ += [
        {"id": "view", "method": "GET", "url": f"/{USER}/calendarView?{WINDOW}&$top=50"},
        {"id": "other", "method": "GET",
         "url": f"/users/tech2@northwind.example/calendarView/delta?{WINDOW}"},
    ]  # fmt: skip
    reply = graph.post("$batch", {"requests": requests_})
    assert reply.status_code == 200, reply.text
    responses = {r["id"]: r for r in reply.json()["responses"]}
    assert len(responses) == 20
    throttled = [r for r in responses.values() if r["status"] == 429]
    assert len(throttled) == 1
    assert throttled[0]["headers"]["Retry-After"] == "7"
    assert throttled[0]["body"]["error"]["code"] == "ApplicationThrottled"
    assert sum(r["status"] == 201 for r in responses.values()) == 17
    assert responses["other"]["status"] == 200
    assert "@odata.deltaLink" in responses["other"]["body"]
    # The retry of the throttled create is safe (transactionId) and completes the set.
    retry = _create_request(int(throttled[0]["id"]))
    repeat = {**_create_request(1), "id": "repeat"}  # already created: the same event again
    again = graph.post("$batch", {"requests": [retry, repeat]}).json()["responses"]
    assert [r["status"] for r in again] == [201, 201]
    assert len(graph.get(f"{USER}/events", params={"$top": "100"}).json()["value"]) == 18
    log = control_session(sandbox).get(f"{sandbox.control_url}/requests", timeout=10).json()
    batches = [r for r in log["requests"] if r["operation"] == "graph:batch"]
    inner = [r for r in log["requests"] if r["in_batch"]]
    assert len(batches) == 2 and not batches[0]["in_batch"]
    assert len(inner) == 22
    assert any(r["status"] == 429 and r["fault"] for r in inner)


def test_batch_limits_and_dependencies(graph: GraphClient) -> None:
    too_many = graph.post("$batch", {"requests": [_create_request(n) for n in range(21)]})
    assert too_many.status_code == 400
    assert too_many.json()["error"]["code"] == "BadRequest"
    url = f"https://graph.microsoft.com/v1.0/{USER}/events"
    absolute = graph.post("$batch", {"requests": [{"id": "1", "method": "GET", "url": url}]})
    assert absolute.status_code == 400
    chained = graph.post("$batch", {"requests": [
        {"id": "1", "method": "GET", "url": f"/{USER}/events/{ids.graph_id('AAMkI-gone')}"},
        {"id": "2", "method": "GET", "url": f"/{USER}/calendar", "dependsOn": ["1"]},
        {"id": "3", "method": "GET", "url": f"/{USER}/calendar"},
    ]}).json()["responses"]  # fmt: skip
    assert [r["status"] for r in chained] == [404, 424, 200]
    assert graph.post("$batch", {"nope": []}).status_code == 400


def test_batch_needs_a_token(sandbox: SandboxHandle) -> None:
    reply = graph_session(sandbox).post(
        f"{sandbox.base_url}/v1.0/$batch", json={"requests": []}, timeout=10
    )
    assert reply.status_code == 401


@pytest.mark.parametrize("fmt", ["seconds", "http-date"])
def test_429_with_retry_after(sandbox: SandboxHandle, graph: GraphClient, fmt: str) -> None:
    _fault(sandbox, kind="http_status", status=429, retry_after=30, retry_after_format=fmt,
           operation="graph:calendarView.delta")  # fmt: skip
    reply = graph.get(f"{USER}/calendarView/delta?{WINDOW}")
    assert reply.status_code == 429
    assert reply.json()["error"]["code"] == "ApplicationThrottled"
    value = reply.headers["Retry-After"]
    if fmt == "seconds":
        assert value == "30"
    else:
        # An HTTP-date counts from the reply's own Date (RFC 9110 §10.2.3), not from our clock.
        sent = email.utils.parsedate_to_datetime(reply.headers["Date"])
        delay = (email.utils.parsedate_to_datetime(value) - sent).total_seconds()
        assert 25 <= delay <= 31
    assert graph.get(f"{USER}/calendarView/delta?{WINDOW}").status_code == 200


@pytest.mark.parametrize(("status", "code"), [(503, "serviceNotAvailable"), (504, "UnknownError")])
def test_503_and_504(sandbox: SandboxHandle, graph: GraphClient, status: int, code: str) -> None:
    _fault(sandbox, kind="http_status", status=status, retry_after=2, operation="*",
           mailbox="tech1@northwind.example")  # fmt: skip
    reply = graph.get(f"{USER}/calendar")
    assert reply.status_code == status
    assert reply.json()["error"]["code"] == code
    assert reply.headers["Retry-After"] == "2"
    assert graph.get("users/tech2@northwind.example/calendar").status_code == 200


def test_connection_resets(sandbox: SandboxHandle, graph: GraphClient) -> None:
    body = event_body("Dropped", "2026-11-23T09:00:00", "2026-11-23T10:00:00",
                      transactionId="reset-1")  # fmt: skip
    _fault(sandbox, kind="reset_before", operation="graph:events.create")
    with pytest.raises(requests.ConnectionError):
        graph.post(f"{USER}/events", body)
    assert graph.get(f"{USER}/events").json()["value"] == []
    _fault(sandbox, kind="reset_after", operation="graph:events.create")
    with pytest.raises(requests.ConnectionError):
        graph.post(f"{USER}/events", body)
    # The create happened; the retry with the same transactionId finds it.
    retry = graph.post(f"{USER}/events", body)
    assert retry.status_code == 201
    assert [e["id"] for e in graph.get(f"{USER}/events").json()["value"]] == [retry.json()["id"]]


def test_latency(sandbox: SandboxHandle, graph: GraphClient) -> None:
    _fault(sandbox, kind="latency", latency_ms=300, operation="graph:calendar.get")
    started = time.monotonic()
    assert graph.get(f"{USER}/calendar").status_code == 200
    assert time.monotonic() - started >= 0.3


def test_token_endpoint_faults(sandbox: SandboxHandle) -> None:
    _fault(sandbox, kind="http_status", status=503, retry_after=5, operation="graph:token")
    reply = request_token(sandbox)
    assert reply.status_code == 503
    assert reply.json()["error"] == "temporarily_unavailable"
    assert reply.headers["Retry-After"] == "5"
    assert request_token(sandbox).status_code == 200


def test_fault_rule_validation(sandbox: SandboxHandle) -> None:
    session = control_session(sandbox)
    bad = session.post(f"{sandbox.control_url}/faults",
                       json={"kind": "delta_gone", "code": "nope"}, timeout=10)  # fmt: skip
    assert bad.status_code == 400
    rule = {"kind": "http_status", "status": 429, "retry_after_format": "minutes"}
    bad = session.post(f"{sandbox.control_url}/faults", json=rule, timeout=10)
    assert bad.status_code == 400
