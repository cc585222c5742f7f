"""``POST /v1.0/$batch``: up to 20 requests in one round trip.

Each request ``{id, method, url (relative, e.g. "/users/x/events"), headers, body, dependsOn}``
runs through the same pipeline as a direct call (auth with the outer ``Authorization``, the
same checks, per-request fault injection, so one inner request can be a 429 with
``Retry-After``). Requests run in the order given; one whose ``dependsOn`` names a failed
request gets 424 Failed Dependency. The outer status is 200 whatever the inner ones are; a
malformed batch is 400.
https://learn.microsoft.com/graph/json-batching
"""

from __future__ import annotations

import email.message
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .errors import GraphError, bad_request
from .request import GraphResponse

if TYPE_CHECKING:
    from exchange_ext.sandbox.server import Sandbox

    from .routes import Facts

MAX_REQUESTS = 20
METHODS = ("GET", "POST", "PATCH", "PUT", "DELETE")


def _validate(data: Any) -> list[dict[str, Any]]:
    if not isinstance(data, dict) or not isinstance(data.get("requests"), list):
        raise bad_request("Invalid batch payload format.")
    requests = data["requests"]
    if not requests:
        raise bad_request("Invalid batch payload format: no requests.")
    if len(requests) > MAX_REQUESTS:
        raise bad_request(f"The number of batch requests exceeds the limit of {MAX_REQUESTS}.")
    seen: set[str] = set()
    for entry in requests:
        if not isinstance(entry, dict):
            raise bad_request("Invalid batch payload format.")
        rid, method, url = entry.get("id"), entry.get("method"), entry.get("url")
        if not isinstance(rid, str) or not rid or rid in seen:
            raise bad_request("Each batch request needs a unique string id.")
        seen.add(rid)
        if not isinstance(method, str) or method.upper() not in METHODS:
            raise bad_request(f"Invalid method in batch request {rid}.")
        if not isinstance(url, str) or "://" in url:
            raise bad_request(f"Batch request {rid} needs a relative url.")
        depends = entry.get("dependsOn", [])
        if not isinstance(depends, list) or not all(d in seen - {rid} for d in depends):
            raise bad_request(f"dependsOn of batch request {rid} must name earlier requests.")
        if entry.get("body") is not None:
            headers = entry.get("headers") or {}
            if not isinstance(headers, dict) or not any(
                k.lower() == "content-type" for k in headers
            ):
                raise bad_request(f"Batch request {rid} has a body but no Content-Type header.")
    return requests


def _headers(outer: Mapping[str, str], inner: dict[str, Any]) -> email.message.Message:
    headers = email.message.Message()
    for name in ("Authorization", "client-request-id"):
        if outer.get(name):
            headers[name] = str(outer.get(name))
    for name, value in inner.items():
        del headers[name]
        headers[name] = str(value)
    return headers


def run(
    sandbox: Sandbox, outer: Mapping[str, str], data: Any, base: str, facts: Facts
) -> GraphResponse:
    """Execute a batch; returns ``{"responses": [{id, status, headers, body}]}``."""
    from .routes import Facts as InnerFacts

    # The outer token is checked first: a batch without a valid token fails as a whole.
    claims = sandbox.graph.signer.verify(outer.get("Authorization"), sandbox.now())  # type: ignore[attr-defined]
    facts.caller = str(claims.get("appid"))
    requests = _validate(data)
    statuses: dict[str, int] = {}
    responses = []
    for entry in requests:
        rid = entry["id"]
        method = entry["method"].upper()
        url = "/v1.0/" + entry["url"].lstrip("/")
        started = time.monotonic()
        inner = InnerFacts()
        if any(statuses.get(d, 200) >= 400 for d in entry.get("dependsOn", [])):
            failed = {"code": "FailedDependency", "message": "A dependent request failed."}
            response = GraphResponse(424, {"error": failed})
        else:
            response = _one(sandbox, method, url, outer, entry, base, inner)
        statuses[rid] = response.status
        out: dict[str, Any] = {"id": rid, "status": response.status, "headers": response.headers}
        if response.body is not None:
            out["body"] = response.body
            out["headers"] = {"Content-Type": "application/json", **response.headers}
        responses.append(out)
        sandbox.requests.record(
            time=time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
            caller=inner.caller or facts.caller, mailbox=inner.mailbox, operation=inner.operation,
            status=response.status, duration_ms=round((time.monotonic() - started) * 1000, 2),
            fault=",".join(inner.faults) or None, response_code=inner.response_code,
            in_batch=True,
        )  # fmt: skip
    return GraphResponse(200, {"responses": responses})


def _one(
    sandbox: Sandbox, method: str, url: str, outer: Mapping[str, str], entry: dict[str, Any],
    base: str, inner: Facts,
) -> GraphResponse:  # fmt: skip
    """One inner request: faults (latency, status codes, 410 on delta tokens), then execute."""
    from .routes import execute, fault_mailbox, fault_response, parse_api_path, restart_link

    try:
        parsed = parse_api_path(method, url)
        inner.operation = parsed.route[0].operation if parsed.route else "graph:unknown"
        inner.mailbox = fault_mailbox(sandbox, parsed.user)
        has_token = "$deltatoken" in parsed.query or "$skiptoken" in parsed.query
        rules = sandbox.faults.take(
            "before", inner.operation, inner.mailbox, delta_token=has_token,
            kinds=("latency", "http_status", "server_busy", "delta_gone"),
        )  # fmt: skip
        inner.faults += [f"{r.kind}#{r.id}" for r in rules]
        for rule in rules:
            if rule.kind == "latency":
                time.sleep(rule.latency_ms / 1000)
                continue
            error = fault_response(rule, inner.operation, restart_link(base, parsed))
            if error is not None:
                raise error
        headers = _headers(outer, entry.get("headers") or {})
        return execute(sandbox, method, parsed, headers, entry.get("body"), base, inner)
    except GraphError as error:
        inner.response_code = error.code
        body = {"error": {"code": error.code, "message": error.message}}
        return GraphResponse(error.status, body, dict(error.headers))
