"""The Graph pipeline: routing, operation names, auth, permissions, mailbox scope, faults.

``handle(sandbox, method, raw_path, headers, body, base)`` answers one HTTP request whose path
is the token endpoint, a discovery document or ``/v1.0/...``:

read the path → operation name (``graph:events.create`` …) and mailbox → faults "before"
(latency, 429/503/504 with Retry-After, 410 on a delta token, connection reset) → bearer token
(401 InvalidAuthenticationToken) → application permission (403 ErrorAccessDenied) → user
(404 ErrorInvalidUser / MailboxNotEnabledForRESTAPI) → mailbox scope (403 ErrorAccessDenied,
the access-policy message) → handler → JSON response → faults "after" (reset after the write,
truncation, malformed body). The request log gets the same fields as for EWS.
https://learn.microsoft.com/graph/use-the-api
https://learn.microsoft.com/graph/errors
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from . import contacts, delta, events, ids, subscriptions, tokens
from .errors import EntraError, GraphError, access_denied, bad_request, scope_denied
from .request import GraphRequest, GraphResponse
from .state import user_id

if TYPE_CHECKING:
    from exchange_ext.sandbox.faults import FaultRule
    from exchange_ext.sandbox.server import Reply, Sandbox

MAX_JSON_BYTES = 4 * 1024 * 1024
MAX_JSON_DEPTH = 64
JSON_TYPE = (
    "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;"
    "charset=utf-8"
)
WRITE_METHODS = ("POST", "PATCH", "PUT", "DELETE")

Handler = Callable[..., GraphResponse]


@dataclass(frozen=True)
class Route:
    """A user-relative path pattern (``*`` captures one segment) and what serves it.

    ``family`` is the permission family (``Calendars``/``Contacts``/``User``): reads need
    ``<family>.Read`` or ``<family>.ReadWrite``, writes ``<family>.ReadWrite``. The family
    ``Subscriptions`` marks the top-level ``/subscriptions`` routes, whose handlers check access
    themselves (it depends on the subscription's resource).
    """

    pattern: tuple[str, ...]
    method: str
    operation: str
    family: str
    handler: Handler
    fixed: tuple[Any, ...] = ()


def _user(request: GraphRequest) -> GraphResponse:
    """GET /users/{id} — https://learn.microsoft.com/graph/api/user-get"""
    store = request.sandbox.store
    name = store.display_name(request.mailbox)
    return GraphResponse(200, {
        "@odata.context": request.context("users/$entity"),
        "businessPhones": [], "displayName": name, "givenName": None, "jobTitle": None,
        "mail": request.mailbox, "mobilePhone": None, "officeLocation": None,
        "preferredLanguage": None, "surname": None, "userPrincipalName": request.mailbox,
        "id": user_id(request.mailbox),
    })  # fmt: skip


def _routes() -> list[Route]:
    routes = [Route((), "GET", "graph:user.get", "User", _user)]
    cal = [(("calendar",), None), ((), None), (("calendars", "*"), "ref")]
    routes += [
        Route(("calendar",), "GET", "graph:calendar.get", "Calendars", events.get_calendar),
        Route(("calendars",), "GET", "graph:calendars.list", "Calendars", events.list_calendars),
        Route(("calendars", "*"), "GET", "graph:calendar.get", "Calendars", events.get_calendar),
    ]
    for prefix, _ in cal:
        routes += [
            Route((*prefix, "calendarView", "delta"), "GET", "graph:calendarView.delta",
                  "Calendars", delta.delta, ("events",)),
            Route((*prefix, "calendarView"), "GET", "graph:calendarView.list", "Calendars",
                  events.calendar_view),
            Route((*prefix, "events"), "GET", "graph:events.list", "Calendars",
                  events.list_events),
            Route((*prefix, "events"), "POST", "graph:events.create", "Calendars",
                  events.create_event),
        ]  # fmt: skip
    for prefix in (("calendar",), ()):
        routes += [
            Route((*prefix, "events", "*", "instances"), "GET", "graph:events.instances",
                  "Calendars", events.instances),
            Route((*prefix, "events", "*"), "GET", "graph:events.get", "Calendars",
                  events.get_event),
            Route((*prefix, "events", "*"), "PATCH", "graph:events.update", "Calendars",
                  events.update_event),
            Route((*prefix, "events", "*"), "DELETE", "graph:events.delete", "Calendars",
                  events.delete_event),
        ]  # fmt: skip
    routes += [
        Route(("contactFolders",), "GET", "graph:contactFolders.list", "Contacts",
              contacts.list_contact_folders),
    ]  # fmt: skip
    for prefix in ((), ("contactFolders", "*")):
        routes += [
            Route((*prefix, "contacts", "delta"), "GET", "graph:contacts.delta", "Contacts",
                  delta.delta, ("contacts",)),
            Route((*prefix, "contacts"), "GET", "graph:contacts.list", "Contacts",
                  contacts.list_contacts),
            Route((*prefix, "contacts"), "POST", "graph:contacts.create", "Contacts",
                  contacts.create_contact),
        ]  # fmt: skip
    routes += [
        Route(("contacts", "*"), "GET", "graph:contacts.get", "Contacts", contacts.get_contact),
        Route(("contacts", "*"), "PATCH", "graph:contacts.update", "Contacts",
              contacts.update_contact),
        Route(("contacts", "*"), "DELETE", "graph:contacts.delete", "Contacts",
              contacts.delete_contact),
    ]  # fmt: skip
    return routes


ROUTES = _routes()
# Below /v1.0/ itself, not below a user: change notification subscriptions.
SUBSCRIPTION_ROUTES = [
    Route(("subscriptions",), "POST", "graph:subscriptions.create", "Subscriptions",
          subscriptions.create_subscription),
    Route(("subscriptions",), "GET", "graph:subscriptions.list", "Subscriptions",
          subscriptions.list_subscriptions),
    Route(("subscriptions", "*"), "GET", "graph:subscriptions.get", "Subscriptions",
          subscriptions.get_subscription),
    Route(("subscriptions", "*"), "PATCH", "graph:subscriptions.update", "Subscriptions",
          subscriptions.update_subscription),
    Route(("subscriptions", "*"), "DELETE", "graph:subscriptions.delete", "Subscriptions",
          subscriptions.delete_subscription),
    Route(("subscriptions", "*", "reauthorize"), "POST", "graph:subscriptions.reauthorize",
          "Subscriptions", subscriptions.reauthorize_subscription),
]  # fmt: skip


def match_route(
    method: str, rest: list[str], routes: list[Route] = ROUTES
) -> tuple[Route, list[str]] | None:
    """The route for a user-relative path (or, with ``SUBSCRIPTION_ROUTES``, a path below
    ``/v1.0/``) and the captured segments; None when unknown.

    Raises 405 when the path exists for other methods.
    """
    known_path = False
    for route in routes:
        if len(route.pattern) != len(rest):
            continue
        if all(
            p == "*" or p.lower() == s.lower() for p, s in zip(route.pattern, rest, strict=True)
        ):
            known_path = True
            if route.method == method:
                return route, [s for p, s in zip(route.pattern, rest, strict=True) if p == "*"]
    if known_path:
        raise GraphError(405, "Request_BadRequest", f"The HTTP method '{method}' is not allowed.")
    return None


def _handler_args(route: Route, captured: list[str]) -> list[Any]:
    """Arguments after the request: fixed ones, then the captures (folder ref before item id),
    an event's or contact's Graph id as the store id it names (``ids``)."""
    args: list[Any] = list(route.fixed)
    if route.handler is delta.delta:
        args.append(captured[0] if captured else None)
        return args
    wild = [n for n, part in enumerate(route.pattern) if part == "*"]
    return args + [
        ids.store_id(value) if n and route.pattern[n - 1] in _ITEM_COLLECTIONS else value
        for n, value in zip(wild, captured, strict=True)
    ]


_ITEM_COLLECTIONS = ("events", "contacts")


# ---------------------------------------------------------------------------- request facts


@dataclass
class Facts:
    """What the request log records for a Graph request."""

    caller: str | None = None
    mailbox: str | None = None
    operation: str | None = None
    faults: list[str] = field(default_factory=list)
    response_code: str | None = None


@dataclass
class Parsed:
    """A ``/v1.0/...`` path taken apart."""

    path: str  # below /v1.0/, as sent
    query: dict[str, str]
    user: str | None
    rest: list[str]
    route: tuple[Route, list[str]] | None
    is_batch: bool = False


def parse_api_path(method: str, raw_path: str) -> Parsed:
    parts = urlsplit(raw_path)
    path = parts.path
    below = path[len("/v1.0/") :] if path.startswith("/v1.0/") else path.lstrip("/")
    query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    segments = [unquote(s) for s in below.split("/") if s]
    if segments == ["$batch"]:
        return Parsed(below, query, None, [], None, is_batch=True)
    user: str | None = None
    rest: list[str] = []
    if segments and segments[0].lower() == "users" and len(segments) >= 2:
        user, rest = segments[1], segments[2:]
    elif segments and segments[0].lower().startswith("users(") and segments[0].endswith(")"):
        user, rest = segments[0][6:-1].strip("'"), segments[1:]
    elif segments and segments[0].lower() == "subscriptions":
        route = match_route(method, segments, SUBSCRIPTION_ROUTES)
        return Parsed(below, query, None, segments, route)
    route = match_route(method, rest) if user is not None else None
    return Parsed(below, query, user, rest, route)


def resolve_user(sandbox: Sandbox, given: str) -> str:
    """The mailbox address of ``/users/{id|userPrincipalName}``; 404 when there is none."""
    given = given.strip().lower()
    store = sandbox.store
    if "@" in given:
        if given in sandbox.graph.without_mailbox:  # type: ignore[attr-defined]
            raise GraphError(
                404, "MailboxNotEnabledForRESTAPI",
                "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
            )  # fmt: skip
        if store.has_mailbox(given):
            return given
    else:
        for entry in store.mailboxes():
            if user_id(entry["address"]) == given:
                return entry["address"]
    raise GraphError(404, "ErrorInvalidUser", f"The requested user '{given}' is invalid.")


def fault_mailbox(sandbox: Sandbox, user: str | None) -> str | None:
    """The mailbox a request names, for matching fault rules before any check ran."""
    if not user:
        return None
    try:
        return resolve_user(sandbox, user)
    except GraphError:
        return user.lower()


def _check_permission(claims: dict[str, Any], route: Route, method: str) -> None:
    roles = set(claims.get("roles") or [])
    if route.family == "User":
        ok = bool(roles & {"User.Read.All"})
    elif method in WRITE_METHODS:
        ok = f"{route.family}.ReadWrite" in roles
    else:
        ok = bool(roles & {f"{route.family}.Read", f"{route.family}.ReadWrite"})
    if not ok:
        raise access_denied()


def _check_scope(sandbox: Sandbox, claims: dict[str, Any], mailbox: str) -> None:
    app = sandbox.graph.apps.app(str(claims.get("appid", "")))  # type: ignore[attr-defined]
    if app is None or not app.may_access(mailbox):
        raise scope_denied()


def parse_json(body: bytes) -> Any:
    """A request's JSON body (None when empty); 400 BadRequest when too big/deep/not JSON."""
    if not body.strip():
        return None
    if len(body) > MAX_JSON_BYTES:
        raise bad_request("The request body is too large.", "RequestBodyTooLarge")
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise bad_request(f"Unable to read JSON request payload: {exc}") from None
    if _depth(data) > MAX_JSON_DEPTH:
        raise bad_request("The JSON request payload is nested too deeply.")
    return data


def _depth(value: Any, level: int = 0) -> int:
    if level > MAX_JSON_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


def execute(
    sandbox: Sandbox,
    method: str,
    parsed: Parsed,
    headers: Mapping[str, str],
    body: Any,
    base: str,
    facts: Facts,
) -> GraphResponse:
    """Auth, checks and the handler for one (possibly batched) API request."""
    claims = sandbox.graph.signer.verify(headers.get("Authorization"), sandbox.now())  # type: ignore[attr-defined]
    facts.caller = str(claims.get("appid"))
    if parsed.user is None and parsed.path.lower().split("/")[0] == "me":
        # App-only tokens have no signed-in user.
        raise bad_request("/me request is only valid with delegated authentication flow.")
    if parsed.route is None:
        raise GraphError(
            400, "BadRequest",
            f"Resource not found for the segment '{(parsed.rest or [parsed.path])[-1]}'.",
        )  # fmt: skip
    route, captured = parsed.route
    if route.family == "Subscriptions":
        return _subscription_request(sandbox, method, parsed, headers, body, base, claims, facts)
    _check_permission(claims, route, method)
    mailbox = resolve_user(sandbox, parsed.user or "")
    facts.mailbox = mailbox
    _check_scope(sandbox, claims, mailbox)
    request = GraphRequest(
        sandbox, method, parsed.path, parsed.rest, parsed.query, headers, body, base, claims,
        mailbox,
    )  # fmt: skip
    response = route.handler(request, *_handler_args(route, captured))
    if request.applied:
        response.headers["Preference-Applied"] = ", ".join(request.applied)
    return response


def _subscription_request(
    sandbox: Sandbox, method: str, parsed: Parsed, headers: Mapping[str, str], body: Any,
    base: str, claims: dict[str, Any], facts: Facts,
) -> GraphResponse:  # fmt: skip
    """A ``/subscriptions`` request: its handler checks access against the subscription's
    resource; the log records the mailbox it resolved, even when the request failed."""
    assert parsed.route is not None
    route, captured = parsed.route
    request = GraphRequest(
        sandbox, method, parsed.path, parsed.rest, parsed.query, headers, body, base, claims
    )
    try:
        return route.handler(request, *captured)
    finally:
        facts.mailbox = request.mailbox or facts.mailbox


# ---------------------------------------------------------------------------- faults


def fault_response(
    rule: FaultRule, operation: str | None, restart: str | None = None
) -> GraphError | None:
    """The error an injected rule makes a Graph request fail with (None: not an error).

    ``restart`` is the ``Location`` of a 410: the delta request to start over with.
    """
    if rule.kind == "delta_gone":
        code = rule.params.get("code", "syncStateNotFound")
        if code == "resyncRequired":
            return delta.resync_required(restart)
        return delta.sync_state_not_found(restart)
    if rule.kind == "server_busy":
        rule_status, retry = 503, rule.back_off_ms // 1000 or 1
    elif rule.kind == "http_status":
        rule_status, retry = rule.status, rule.retry_after
    else:
        return None
    headers: dict[str, str] = {}
    if retry is not None:
        headers["Retry-After"] = retry_after_value(retry, rule.params.get("retry_after_format"))
    code, message = _STATUS_ERRORS.get(rule_status, ("UnknownError", "Injected by the sandbox."))
    return GraphError(rule_status, code, message, headers)


# Bodies Graph sends for throttling and outages (https://learn.microsoft.com/graph/throttling,
# https://learn.microsoft.com/graph/errors).
_STATUS_ERRORS = {
    400: ("BadRequest", "Injected by the sandbox."),
    401: ("InvalidAuthenticationToken", "Access token has expired or is not yet valid."),
    403: ("ErrorAccessDenied", "Access is denied. Check credentials and try again."),
    404: ("ErrorItemNotFound", "The specified object was not found in the store."),
    429: ("ApplicationThrottled", "Application is over its MailboxConcurrency limit."),
    500: ("InternalServerError", "An internal server error occurred."),
    502: ("BadGateway", "Bad gateway."),
    503: ("serviceNotAvailable", "The service is temporarily unavailable. Try again later."),
    504: ("UnknownError", "Gateway timeout."),
}


def retry_after_value(seconds: int, fmt: str | None) -> str:
    """``Retry-After`` as delay-seconds or, with ``fmt`` ``http-date``, an HTTP-date."""
    if fmt == "http-date":
        moment = time.time() + seconds
        return email.utils.formatdate(moment, usegmt=True)
    return str(seconds)


# ---------------------------------------------------------------------------- HTTP entry


def is_graph_path(path: str) -> bool:
    """True for ``/v1.0/...``, ``/{tenant}/oauth2/v2.0/token``, discovery documents."""
    lower = path.split("?", 1)[0].lower()
    if lower.startswith("/v1.0/"):
        return True
    segments = [s for s in lower.split("/") if s]
    return segments[1:] in (
        ["oauth2", "v2.0", "token"],
        ["v2.0", ".well-known", "openid-configuration"],
    ) or segments == ["common", "discovery", "instance"]


def _stamp() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def graph_error_reply(error: GraphError, client_request_id: str, facts: Facts) -> Reply:
    from exchange_ext.sandbox.server import Reply

    facts.response_code = error.code
    request_id = str(uuid.uuid4())
    body = error.body(request_id, client_request_id or request_id, _stamp())
    headers = {"Content-Type": JSON_TYPE, "request-id": request_id,
               "client-request-id": client_request_id or request_id} | error.headers  # fmt: skip
    return Reply(error.status, json.dumps(body).encode(), headers)


def json_reply(response: GraphResponse, client_request_id: str) -> Reply:
    from exchange_ext.sandbox.server import Reply

    request_id = str(uuid.uuid4())
    headers = {"request-id": request_id, "client-request-id": client_request_id or request_id,
               "OData-Version": "4.0", **response.headers}  # fmt: skip
    if response.body is None:
        return Reply(response.status, b"", headers)
    headers["Content-Type"] = JSON_TYPE
    return Reply(response.status, json.dumps(response.body).encode(), headers)


def handle(
    sandbox: Sandbox, method: str, raw_path: str, headers: Mapping[str, str], body: bytes,
    base: str, facts: Facts,
) -> Reply:  # fmt: skip
    """Answer one Graph/Entra HTTP request (see the module docstring for the pipeline)."""
    from exchange_ext.sandbox import server

    path = urlsplit(raw_path).path
    segments = [unquote(s) for s in path.split("/") if s]
    client_request_id = headers.get("client-request-id") or ""
    if not path.lower().startswith("/v1.0/"):
        return _identity(sandbox, method, raw_path, segments, headers, body, base, facts)
    try:
        parsed = parse_api_path(method, raw_path)
        facts.operation = "graph:batch" if parsed.is_batch else (
            parsed.route[0].operation if parsed.route else "graph:unknown")  # fmt: skip
        facts.mailbox = fault_mailbox(sandbox, parsed.user)
        has_token = "$deltatoken" in parsed.query or "$skiptoken" in parsed.query
        before = sandbox.faults.take(
            "before", facts.operation, facts.mailbox, delta_token=has_token
        )
        facts.faults += [f"{r.kind}#{r.id}" for r in before]
        early = _apply_before(before, facts.operation, restart_link(base, parsed))
        if early is not None:
            return early if not isinstance(early, GraphError) else graph_error_reply(
                early, client_request_id, facts)  # fmt: skip
        data = parse_json(body) if method in ("POST", "PATCH", "PUT") else None
        if parsed.is_batch:
            from . import batch

            if method != "POST":
                raise GraphError(405, "BadRequest", "$batch accepts POST only.")
            response = batch.run(sandbox, headers, data, base, facts)
        else:
            response = execute(sandbox, method, parsed, headers, data, base, facts)
        reply = json_reply(response, client_request_id)
    except GraphError as error:
        reply = graph_error_reply(error, client_request_id, facts)
    after = sandbox.faults.take("after", facts.operation, facts.mailbox)
    facts.faults += [f"{r.kind}#{r.id}" for r in after]
    return server._apply_after_faults(after, reply)


def restart_link(base: str, parsed: Parsed) -> str:
    """The request without its tokens and with an empty ``$deltatoken`` (Graph's 410 Location)."""
    # https://learn.microsoft.com/graph/delta-query-overview#synchronization-reset
    return f"{base}/v1.0/{parsed.path}?$deltatoken="


def _apply_before(
    rules: list[FaultRule], operation: str | None, restart: str
) -> Reply | GraphError | None:
    from exchange_ext.sandbox.server import Reply

    for rule in rules:
        if rule.kind == "latency":
            time.sleep(rule.latency_ms / 1000)
        elif rule.kind == "reset_before":
            return Reply(reset=True)
        else:
            error = fault_response(rule, operation, restart)
            if error is not None:
                return error
    return None


def _identity(
    sandbox: Sandbox, method: str, raw_path: str, segments: list[str],
    headers: Mapping[str, str], body: bytes, base: str, facts: Facts,
) -> Reply:  # fmt: skip
    """The token endpoint and the discovery documents (Entra ID's error format)."""
    from exchange_ext.sandbox import server

    graph = sandbox.graph  # type: ignore[attr-defined]
    query = {k: v[-1] for k, v in parse_qs(urlsplit(raw_path).query).items()}
    tenant = segments[0] if segments else ""
    is_token = [s.lower() for s in segments[1:]] == ["oauth2", "v2.0", "token"]
    facts.operation = "graph:token" if is_token else "graph:discovery"
    before = sandbox.faults.take("before", facts.operation, None)
    facts.faults += [f"{r.kind}#{r.id}" for r in before]
    for rule in before:
        if rule.kind == "latency":
            time.sleep(rule.latency_ms / 1000)
        elif rule.kind == "reset_before":
            return server.Reply(reset=True)
        elif rule.kind in ("http_status", "server_busy"):
            status = rule.status if rule.kind == "http_status" else 503
            error = EntraError(status, "temporarily_unavailable", 90033,
                               "A transient error has occurred. Please try again.")  # fmt: skip
            reply = _entra_reply(error, facts)
            if rule.retry_after is not None:
                reply.headers["Retry-After"] = retry_after_value(
                    rule.retry_after, rule.params.get("retry_after_format"))  # fmt: skip
            return reply
    try:
        if is_token:
            if method != "POST":
                raise EntraError(400, "invalid_request", 900561,
                                 "The endpoint only accepts POST requests.")  # fmt: skip
            form = tokens.parse_form(body)
            facts.caller = form.get("client_id")
            result = tokens.issue_token(
                graph.apps, graph.signer, tenant, form, f"{base}/{tenant}/oauth2/v2.0/token",
                sandbox.now(),
            )  # fmt: skip
            no_cache = {"Content-Type": "application/json; charset=utf-8",
                        "Cache-Control": "no-store, no-cache", "Pragma": "no-cache"}  # fmt: skip
            reply = server.Reply(200, json.dumps(result).encode(), no_cache)
        elif segments and segments[0].lower() == "common" and len(segments) == 3:
            doc = tokens.instance_discovery(base, query.get("authorization_endpoint", ""))
            reply = server.Reply(
                200, json.dumps(doc).encode(), {"Content-Type": "application/json"}
            )
        else:
            tenant_id = graph.apps.resolve_tenant(tenant)
            if tenant_id is None:
                raise EntraError(
                    400, "invalid_tenant", 90002,
                    f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant "
                    "ID and are signing into the correct cloud. Check with your subscription "
                    "administrator, this may happen if there are no active subscriptions for the "
                    "tenant.",
                )  # fmt: skip
            doc = tokens.openid_configuration(base, tenant_id, tenant)
            reply = server.Reply(
                200, json.dumps(doc).encode(), {"Content-Type": "application/json"}
            )
    except EntraError as error:
        reply = _entra_reply(error, facts)
    after = sandbox.faults.take("after", facts.operation, None)
    facts.faults += [f"{r.kind}#{r.id}" for r in after]
    return server._apply_after_faults(after, reply)


def _entra_reply(error: EntraError, facts: Facts) -> Reply:
    from exchange_ext.sandbox.server import Reply

    facts.response_code = f"AADSTS{error.aadsts}"
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    body = error.body(str(uuid.uuid4()), str(uuid.uuid4()), stamp)
    return Reply(error.status, json.dumps(body).encode(),
                 {"Content-Type": "application/json; charset=utf-8"})  # fmt: skip
