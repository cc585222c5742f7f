"""The sandbox's HTTP(S) server: routing, the EWS request pipeline, the in-process starter.

``POST /EWS/Exchange.asmx`` (any case, as IIS matches paths) is EWS; ``/_sandbox/...`` is the
control API (loopback clients with the control token, see ``control``); ``/v1.0/...``,
``/{tenant}/oauth2/v2.0/token`` and the discovery documents are Microsoft Graph and Entra ID
(``graph.routes``, same store, faults and request log); everything else is 404. The EWS pipeline:

read body (bounded) → parse → faults "before" → Basic auth or an app's bearer token (401) →
schema-validate the request (ErrorSchemaValidation) → impersonation (ErrorNonExistentMailbox /
ErrorImpersonateUserDenied) → ``operations.dispatch`` → response envelope with
``ServerVersionInfo`` → schema-validate the response → faults "after" → request log → send
(with Content-Length; an open GetStreamingEvents stream chunked instead, one envelope per chunk,
see ``StreamBody``).

Every wait is bounded: socket timeouts per connection, a cap on requests per connection, a cap on
request size, joins with timeouts on shutdown.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import http.server
import ipaddress
import json
import logging
import os
import select
import socket
import ssl
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lxml import etree

from . import certificates, control, soap
from .accounts import Account, AccountRegistry, account_from_config
from .contract import Dispatcher, EwsError, OperationRequest, Outbox, SoapFault
from .faults import FaultRule, FaultSet, deep_document, gzip_bomb
from .schema import SchemaValidator, fatal_from_environment

log = logging.getLogger(__name__)

EWS_PATH = "/ews/exchange.asmx"
CONTROL_PREFIX = "/_sandbox/"
MAX_REQUEST_BYTES = 32 * 1024 * 1024
REFUSED_BODY_DRAIN = 1024 * 1024  # a refused control request's body is read up to this
SOCKET_TIMEOUT = 30.0  # idle keep-alive connections are closed after this
MAX_REQUESTS_PER_CONNECTION = 100_000
MAX_LOG_ENTRIES = 10_000
REALM = "PSA Exchange sandbox"
DEFAULT_CONFIG = Path(__file__).with_name("default_config.json")
# Operations that change nothing worth persisting (everything else triggers a save with --state).
# Streaming subscriptions live in memory only, as Exchange's do.
READ_ONLY_OPERATIONS = frozenset(
    {"GetFolder", "FindFolder", "FindItem", "GetItem", "ResolveNames", "ConvertId",
     "Subscribe", "Unsubscribe", "GetStreamingEvents"}
)  # fmt: skip


# ---------------------------------------------------------------------------- request log


@dataclass
class LogEntry:
    """One EWS request as the control API reports it."""

    id: int
    time: str
    caller: str | None
    mailbox: str | None
    operation: str | None
    status: int
    duration_ms: float
    fault: str | None = None
    impersonation: str | None = None
    response_code: str | None = None
    in_batch: bool = False  # a Graph request inside a $batch (not an HTTP request of its own)

    def to_public(self) -> dict[str, Any]:
        return dict(self.__dict__)


class RequestLog:
    """The last ``MAX_LOG_ENTRIES`` requests plus per-operation counters (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: collections.deque[LogEntry] = collections.deque(maxlen=MAX_LOG_ENTRIES)
        self._counters: collections.Counter[str] = collections.Counter()
        self._next_id = 1

    def record(self, **fields: Any) -> LogEntry:
        with self._lock:
            entry = LogEntry(id=self._next_id, **fields)
            self._next_id += 1
            self._entries.append(entry)
            self._counters[entry.operation or "(unparsed)"] += 1
            return entry

    def query(self, operation: str | None = None, mailbox: str | None = None) -> dict[str, Any]:
        with self._lock:
            entries = [
                e.to_public()
                for e in self._entries
                if (operation is None or e.operation == operation)
                and (mailbox is None or (e.mailbox or "") == mailbox.lower())
            ]
            return {"requests": entries, "counters": dict(self._counters)}

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._counters.clear()


# ---------------------------------------------------------------------------- sandbox state


def _new_store(clock: Any) -> Any:
    from .store import Store

    return Store(clock)


class Sandbox:
    """Everything one running sandbox shares; implements ``contract.SandboxState``.

    ``config`` is the JSON config (accounts, mailboxes, ``server_version``); ``reset()`` returns
    to it. ``now()`` is the sandbox clock: real UTC time plus an offset tests may set.
    ``graph_subscriptions`` holds the Graph change notification subscriptions (in memory only);
    it sends to ``http`` URLs only with ``allow_http_notifications`` and checks subscribers' TLS
    against ``notification_ca_files`` (the sandbox CA and an extra one, see ``start_sandbox``).
    """

    def __init__(
        self,
        config: dict[str, Any],
        *,
        validator: SchemaValidator,
        dispatcher: Dispatcher | None = None,
        store: Any = None,
        state_file: Path | None = None,
        allow_http_notifications: bool = False,
        notification_ca_files: tuple[Path, ...] = (),
    ) -> None:
        self.config = config
        self.validator = validator
        self.state_file = state_file
        self.clock_offset = dt.timedelta(0)
        self.outbox = Outbox()
        self.accounts = AccountRegistry()
        self.faults = FaultSet()
        self.requests = RequestLog()
        self.server_version = str(config.get("server_version", "auto"))
        if self.server_version not in ("auto", *soap.BUILDS):
            raise ValueError(f"server_version must be auto or one of {', '.join(soap.BUILDS)}")
        self._dispatcher = dispatcher
        self._save_lock = threading.Lock()
        # What every control API request must carry (X-Sandbox-Token); reset() keeps it.
        self.control_token = control.new_token()
        self.store = store if store is not None else self._load_store()
        from .graph.state import GraphState

        self.graph = GraphState(config)
        from .graph.subscriptions import GraphSubscriptions

        self.graph_subscriptions = GraphSubscriptions(self)
        self.graph_subscriptions.configure(
            allow_http=allow_http_notifications, ca_files=list(notification_ca_files)
        )
        if hasattr(self.store, "add_listener"):  # transport tests pass a stand-in store
            self.store.add_listener(self.graph_subscriptions.hear)
        self.streaming = self._new_streaming_hub()
        self._apply_config()

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self.clock_offset

    def _new_streaming_hub(self) -> Any:
        """EWS streaming subscriptions and connections (``operations.streaming``); None with a
        stand-in store that has no change listeners (transport tests)."""
        if not hasattr(self.store, "add_listener"):
            return None
        from .operations.streaming import StreamingHub

        return StreamingHub(self.store, self.now, self.config.get("streaming"))

    @property
    def dispatch(self) -> Dispatcher:
        if self._dispatcher is None:
            from .operations import dispatch

            self._dispatcher = dispatch
        return self._dispatcher

    def _load_store(self) -> Any:
        if self.state_file is not None and self.state_file.is_file():
            from .store import Store

            data = json.loads(self.state_file.read_text(encoding="utf-8"))
            return Store.from_json(data, self.now)
        return _new_store(self.now)

    def _apply_config(self) -> None:
        """Accounts and mailboxes from the config (mailboxes already in the store are kept)."""
        domain = str(self.config.get("domain", ""))
        self.accounts.clear()
        for entry in self.config.get("accounts", []):
            self.add_account(account_from_config(entry, domain), entry.get("display_name", ""))
        for entry in self.config.get("mailboxes", []):
            self.add_mailbox(entry["address"], entry.get("display_name", ""))

    def add_account(self, account: Account, display_name: str = "") -> None:
        self.accounts.add(account)
        if account.mailbox:
            self.store.add_mailbox(account.mailbox, display_name or account.display_name)

    def add_mailbox(self, address: str, display_name: str = "") -> None:
        self.store.add_mailbox(address.lower(), display_name)

    def reset(self) -> None:
        """Back to the config: empty store, config accounts/mailboxes, no faults, no log."""
        self.store.reset()
        self.outbox.messages.clear()
        self.faults.clear()
        self.requests.clear()
        self.validator.reset()
        self.clock_offset = dt.timedelta(0)
        self.graph.reset(self.config)
        self.graph_subscriptions.clear()
        if self.streaming is not None:
            self.streaming.reset(self.config.get("streaming"))
        self._apply_config()

    def mailbox_addresses(self) -> list[str]:
        return [m["address"] if isinstance(m, dict) else m for m in self.store.mailboxes()]

    def save(self) -> None:
        """Write the store to ``state_file`` atomically (temp file + rename); no-op without one."""
        if self.state_file is None:
            return
        with self._save_lock:
            data = json.dumps(self.store.to_json(), separators=(",", ":"))
            directory = self.state_file.parent
            directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".sandbox-state-", dir=directory)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(data)
            os.replace(tmp, self.state_file)


def load_config(path: Path | None = None) -> dict[str, Any]:
    """The JSON config at ``path`` (default: the shipped default_config.json)."""
    return json.loads(Path(path or DEFAULT_CONFIG).read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------- EWS pipeline


@dataclass
class Reply:
    """What the handler sends; ``reset`` means: reset the connection instead of answering."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    reset: bool = False
    declared_length: int | None = None  # a Content-Length larger than the body (then hang up)
    stream: StreamBody | None = None  # a chunked response of envelopes (GetStreamingEvents)


@dataclass
class Exchange:
    """The facts of one EWS request gathered along the pipeline (for the log)."""

    caller: str | None = None
    mailbox: str | None = None
    operation: str | None = None
    impersonation: str | None = None
    faults: list[str] = field(default_factory=list)
    response_code: str | None = None


def handle_ews(sandbox: Sandbox, body: bytes, headers: Any, facts: Exchange) -> Reply:
    """Run the EWS pipeline for one request body and return the reply to send."""
    parsed: soap.ParsedRequest | None = None
    parse_error: SoapFault | None = None
    try:
        parsed = soap.parse_request(body)
    except SoapFault as fault:
        parse_error = fault
    if parsed is not None:
        facts.operation = parsed.name
        facts.impersonation = parsed.impersonation.value if parsed.impersonation else None
    facts.mailbox = (facts.impersonation or headers.get("X-AnchorMailbox") or "").lower() or None
    before = sandbox.faults.take("before", facts.operation, facts.mailbox)
    facts.faults += [_fault_label(r) for r in before]
    early = _apply_before_faults(before)
    if early is not None:
        busy = any(rule.kind == "server_busy" for rule in before)
        facts.response_code = "ErrorServerBusy" if busy else None
        return early
    account = _caller(sandbox, headers.get("Authorization"))
    if account is None:
        return _unauthorized()
    facts.caller = account.login
    facts.mailbox = facts.mailbox or account.mailbox
    try:
        if parse_error is not None:
            raise parse_error
        assert parsed is not None
        request = _authorize(sandbox, parsed, account, facts)
        payload = sandbox.dispatch(request, sandbox)
    except SoapFault as fault:
        facts.response_code = fault.code
        return _fault_reply(fault)
    except EwsError as err:  # an operation let one escape: still answer like Exchange would
        facts.response_code = err.code
        return _fault_reply(SoapFault(err.code, err.message))
    if not isinstance(payload, etree._Element):  # an EventStream (GetStreamingEvents)
        return _stream_reply(sandbox, parsed, payload, facts)
    return _finish(sandbox, parsed, payload, facts)


def _caller(sandbox: Sandbox, authorization: str | None) -> Account | None:
    """Who sends the request: an account's Basic credentials, or an app's bearer token for
    Exchange Online (app-only OAuth, ``full_access_as_app``); None answers 401."""
    if (authorization or "").strip()[:7].lower() == "bearer ":
        return sandbox.graph.ews_caller(authorization, sandbox.now())
    return sandbox.accounts.authenticate(authorization)


def _authorize(
    sandbox: Sandbox, parsed: soap.ParsedRequest, account: Account, facts: Exchange
) -> OperationRequest:
    _validate_request(sandbox, parsed)
    mailbox = account.mailbox
    if parsed.impersonation is not None:
        mailbox = _impersonated_mailbox(sandbox, account, parsed.impersonation)
    facts.mailbox = mailbox
    return OperationRequest(
        name=parsed.name,
        body=parsed.operation,
        caller=account.login,
        mailbox=mailbox,
        impersonating=parsed.impersonation is not None,
        requested_version=parsed.version,
        time_zone_id=parsed.time_zone_id,
    )


def _validate_request(sandbox: Sandbox, parsed: soap.ParsedRequest) -> None:
    # Header elements the sandbox does not model (none are sent by exchangelib) are not checked.
    headers = [
        e for e in parsed.header_elements if etree.QName(e).localname in soap.HEADER_ELEMENTS
    ]
    known = [*headers, parsed.operation]
    failures = sandbox.validator.check("request", parsed.name, known)
    if failures:
        first = failures[0]
        raise soap.SchemaValidationFault(first.message, first.line, first.position)


def _impersonated_mailbox(sandbox: Sandbox, account: Account, target: soap.Impersonation) -> str:
    """The mailbox an ExchangeImpersonation header names, or the fault Exchange would raise.

    https://learn.microsoft.com/exchange/client-developer/exchange-web-services/how-to-identify-the-account-to-impersonate
    """
    address = _resolve_identity(sandbox, target)
    if address is None:
        raise SoapFault(
            "ErrorNonExistentMailbox",
            f"The SMTP address has no mailbox associated with it: {target.value}",
        )
    if not account.impersonation:
        raise SoapFault(
            "ErrorImpersonateUserDenied",
            "The account does not have permission to impersonate the requested user.",
        )
    return address


def _resolve_identity(sandbox: Sandbox, target: soap.Impersonation) -> str | None:
    value = target.value.lower()
    if target.kind in ("PrimarySmtpAddress", "SmtpAddress", "PrincipalName"):
        if sandbox.store.has_mailbox(value):
            return value
        if target.kind == "PrincipalName":  # a UPN: the login of an account owning a mailbox
            owner = next((a for a in sandbox.accounts.all() if a.matches_login(value)), None)
            return owner.mailbox if owner and owner.mailbox else None
    return None  # SIDs are not modelled


def _finish(
    sandbox: Sandbox, parsed: soap.ParsedRequest, payload: etree._Element, facts: Exchange
) -> Reply:
    info = soap.server_version_info(sandbox.server_version, parsed.version)
    envelope = soap.response_envelope(payload, info)
    facts.response_code = _first_response_code(payload)
    header_info = envelope[0][0]
    checked = _schema_form(parsed.name, payload)
    failures = sandbox.validator.check("response", parsed.name, [header_info, checked])
    if failures and sandbox.validator.fatal:
        facts.response_code = "ErrorInternalServerError"
        return _fault_reply(
            SoapFault(
                "ErrorInternalServerError",
                f"Sandbox response failed schema validation: {failures[0].message}",
            )
        )
    if parsed.name not in READ_ONLY_OPERATIONS:
        sandbox.save()
    reply = Reply(200, soap.serialize(envelope), {"Content-Type": "text/xml; charset=utf-8"})
    after = sandbox.faults.take("after", facts.operation, facts.mailbox)
    facts.faults += [_fault_label(r) for r in after]
    return _apply_after_faults(after, reply)


# ---------------------------------------------------------------------------- streamed responses


def _schema_form(operation: str | None, payload: etree._Element) -> etree._Element:
    """What to validate of an answer: GetStreamingEvents answers carry Exchange's
    ``m:Notification``, which the schema declares as ``t:Notification``
    (``operations.streaming.schema_form``); every other answer as it is."""
    if operation != "GetStreamingEvents":
        return payload
    from .operations.streaming import schema_form

    return schema_form(payload)


class StreamAborted(Exception):
    """A streamed response must end without its last chunk: the connection is broken off."""


class StreamBody:
    """The chunks of a streamed GetStreamingEvents answer: one complete envelope per chunk.

    ``stream`` is an ``operations.streaming.EventStream``. Every envelope carries
    ``h:ServerVersionInfo`` and is validated in the schema's form before it is sent; with fatal
    validation a violation breaks the stream off. ``fault``: an after-phase ``truncate`` rule
    (the stream breaks after ``bytes`` bytes) or ``malformed`` (the first envelope is not XML).
    """

    def __init__(
        self, sandbox: Sandbox, parsed: soap.ParsedRequest, stream: Any,
        fault: FaultRule | None = None,
    ) -> None:  # fmt: skip
        self._sandbox = sandbox
        self._operation = parsed.name
        self._info = soap.server_version_info(sandbox.server_version, parsed.version)
        self._stream = stream
        self._fault = fault

    def opening(self) -> bytes:
        """The first envelope alone (for the faults that replace the whole answer)."""
        return self._envelope(self._stream.opening_payload())

    def chunks(self, client_gone: Callable[[], bool]) -> Iterator[bytes]:
        """Yield envelopes until ``Closed`` or until ``client_gone()``; StreamAborted when the
        connection must break (dropped by the control API, truncated, invalid)."""
        kind = self._fault.kind if self._fault else None
        left = self._fault.bytes if kind == "truncate" and self._fault else None
        for index, payload in enumerate(self._stream.payloads(client_gone)):
            data = self._envelope(payload)
            if index == 0 and kind == "malformed":
                data = data[: len(data) // 2] + b"<&broken></unbalanced>" + data[len(data) // 2 :]
            if left is not None and len(data) >= left:
                if left:
                    yield data[:left]
                raise StreamAborted("truncated by a fault rule")
            if left is not None:
                left -= len(data)
            yield data
        if self._stream.dropped:
            raise StreamAborted("dropped through the control API")

    def _envelope(self, payload: etree._Element) -> bytes:
        envelope = soap.response_envelope(payload, self._info)
        checked = [envelope[0][0], _schema_form(self._operation, payload)]
        failures = self._sandbox.validator.check("response", self._operation, checked)
        if failures and self._sandbox.validator.fatal:
            raise StreamAborted(f"schema violation: {failures[0].message}")
        # No XML declaration: each chunk is one envelope of a longer answer.
        return etree.tostring(envelope, encoding="utf-8")

    def close(self) -> None:
        self._stream.close()


def _stream_reply(
    sandbox: Sandbox, parsed: soap.ParsedRequest, stream: Any, facts: Exchange
) -> Reply:
    """A chunked answer; after-phase faults apply to it as to any answer."""
    facts.response_code = "NoError"
    after = sandbox.faults.take("after", facts.operation, facts.mailbox)
    facts.faults += [_fault_label(r) for r in after]
    headers = {"Content-Type": "text/xml; charset=utf-8"}
    if after and after[0].kind not in ("truncate", "malformed"):
        # reset_after, gzip_bomb, deep_document: on the opening envelope, as for any answer.
        first = StreamBody(sandbox, parsed, stream).opening()
        stream.close()
        return _apply_after_faults(after, Reply(200, first, headers))
    body = StreamBody(sandbox, parsed, stream, after[0] if after else None)
    return Reply(200, headers=headers, stream=body)


def _first_response_code(payload: etree._Element) -> str | None:
    code = payload.find(".//{*}ResponseCode")
    return code.text if code is not None else None


def _fault_label(rule: FaultRule) -> str:
    return f"{rule.kind}#{rule.id}"


def _apply_before_faults(rules: list[FaultRule]) -> Reply | None:
    for rule in rules:
        if rule.kind == "latency":
            time.sleep(rule.latency_ms / 1000)
        elif rule.kind == "server_busy":
            return _fault_reply(
                SoapFault(
                    "ErrorServerBusy",
                    "The server cannot service this request right now. Try again later.",
                    back_off_ms=rule.back_off_ms,
                )
            )
        elif rule.kind == "http_status":
            return _status_reply(rule)
        elif rule.kind == "reset_before":
            return Reply(reset=True)
    return None


def _apply_after_faults(rules: list[FaultRule], reply: Reply) -> Reply:
    for rule in rules:
        if rule.kind == "reset_after":
            return Reply(reset=True)
        if rule.kind == "truncate":
            cut = reply.body[: rule.bytes]
            declared = len(reply.body) if rule.declared == "full" else None
            return Reply(reply.status, cut, reply.headers, declared_length=declared)
        if rule.kind == "malformed":
            middle = len(reply.body) // 2
            broken = reply.body[:middle] + b"<&broken></unbalanced>" + reply.body[middle:]
            return Reply(reply.status, broken, reply.headers)
        if rule.kind == "gzip_bomb":
            bomb = gzip_bomb(reply.body, int(rule.params.get("inflated_mib", 1024)))
            return Reply(reply.status, bomb, {**reply.headers, "Content-Encoding": "gzip"})
        if rule.kind == "deep_document":
            as_json = "json" in reply.headers.get("Content-Type", "").lower()
            deep = deep_document(as_json, int(rule.params.get("depth", 10_000)))
            return Reply(reply.status, deep, reply.headers)
    return reply


def _status_reply(rule: FaultRule) -> Reply:
    headers = {"Content-Type": "text/html; charset=utf-8"}
    if rule.status == 401:
        headers["WWW-Authenticate"] = f'Basic realm="{REALM}"'
    if rule.retry_after is not None:
        headers["Retry-After"] = str(rule.retry_after)
    text = f"<html><body><h1>HTTP {rule.status}</h1>Injected by the sandbox.</body></html>"
    return Reply(rule.status, text.encode(), headers)


def _unauthorized() -> Reply:
    # https://learn.microsoft.com/exchange/client-developer/exchange-web-services/authentication-and-ews-in-exchange
    headers = {"WWW-Authenticate": f'Basic realm="{REALM}"', "Content-Type": "text/plain"}
    return Reply(401, b"401 Unauthorized", headers)


def _fault_reply(fault: SoapFault) -> Reply:
    body = soap.serialize(soap.fault_envelope(fault))
    return Reply(500, body, {"Content-Type": "text/xml; charset=utf-8"})


# ---------------------------------------------------------------------------- HTTP layer


class SandboxHTTPServer(http.server.ThreadingHTTPServer):
    """Threaded server; TLS handshakes happen in the worker thread, never in the accept loop."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], sandbox: Sandbox, tls: ssl.SSLContext | None):
        self.sandbox = sandbox
        self.tls = tls
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, RequestHandler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(SOCKET_TIMEOUT)
        if self.tls is not None:
            try:
                request = self.tls.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError) as exc:
                # A client refusing our certificate lands here (the selfsigned negative test).
                log.debug("TLS handshake with %s failed: %s", client_address, exc)
                with contextlib.suppress(OSError):
                    request.close()
                return
        super().finish_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection from %s ended with an error", client_address, exc_info=True)


class RequestHandler(http.server.BaseHTTPRequestHandler):
    """Routes requests; keeps connections alive (exchangelib reuses one per session)."""

    protocol_version = "HTTP/1.1"
    server_version = "Microsoft-IIS/10.0"
    sys_version = ""
    server: SandboxHTTPServer

    def handle(self) -> None:
        # The base class loops until the client closes; bound it.
        self.close_connection = True
        self.handle_one_request()
        for _ in range(MAX_REQUESTS_PER_CONNECTION):
            if self.close_connection:
                return
            self.handle_one_request()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def do_POST(self) -> None:
        self._route("POST")

    def do_GET(self) -> None:
        self._route("GET")

    def do_PATCH(self) -> None:
        self._route("PATCH")

    def do_DELETE(self) -> None:
        self._route("DELETE")

    def do_PUT(self) -> None:
        self._route("PUT")

    def _route(self, method: str) -> None:
        path = self.path.split("?", 1)[0]
        if path.lower() == EWS_PATH:
            if method != "POST":
                self._send(Reply(405, b"EWS accepts POST only", {"Allow": "POST"}))
                return
            self._ews()
        elif path.startswith(CONTROL_PREFIX) or path == CONTROL_PREFIX.rstrip("/"):
            self._control(method)
        elif _graph_routes().is_graph_path(path):
            self._graph(method)
        else:
            self._send(Reply(404, b"Not found", {"Content-Type": "text/plain"}))

    def _read_body(self) -> bytes | None:
        length_text = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding") or length_text is None:
            self.close_connection = True  # the body's end is unknown: nothing after it is usable
            self._send(Reply(411, b"Content-Length required", {"Content-Type": "text/plain"}))
            return None
        try:
            length = int(length_text)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_REQUEST_BYTES:
            # Read (and drop) a moderately oversized body first: closing with unread data makes
            # the kernel send a reset, and the client would never see the 413.
            if 0 < length <= 2 * MAX_REQUEST_BYTES:
                self._discard(length)
            else:
                self.close_connection = True
            self._send(Reply(413, b"Request too large", {"Content-Type": "text/plain"}))
            return None
        return self.rfile.read(length)

    def _discard(self, length: int) -> None:
        left = length
        while left > 0:  # bounded: at most length/64 KiB reads, each under the socket timeout
            chunk = self.rfile.read(min(left, 65536))
            if not chunk:
                break
            left -= len(chunk)

    def _ews(self) -> None:
        started = time.monotonic()
        body = self._read_body()
        if body is None:
            return
        sandbox = self.server.sandbox
        facts = Exchange()
        try:
            reply = handle_ews(sandbox, body, self.headers, facts)
        except Exception:  # never a traceback to the client; the log keeps it
            log.exception("EWS request failed inside the sandbox")
            reply = _fault_reply(SoapFault("ErrorInternalServerError", "Sandbox internal error"))
            facts.response_code = "ErrorInternalServerError"
        # Logged before sending: a client that has its answer may read the log at once.
        sandbox.requests.record(
            time=dt.datetime.now(dt.UTC).isoformat(),
            caller=facts.caller,
            mailbox=facts.mailbox,
            operation=facts.operation,
            status=0 if reply.reset else reply.status,
            duration_ms=round((time.monotonic() - started) * 1000, 2),
            fault=",".join(facts.faults) or None,
            impersonation=facts.impersonation,
            response_code=facts.response_code,
        )
        self._send(reply)

    def _graph(self, method: str) -> None:
        started = time.monotonic()
        body = b""
        if method in ("POST", "PATCH", "PUT"):
            read = self._read_body()
            if read is None:
                return
            body = read
        sandbox = self.server.sandbox
        routes = _graph_routes()
        facts = routes.Facts()
        scheme = "https" if self.server.tls is not None else "http"
        base = f"{scheme}://{self.headers.get('Host') or 'localhost'}"
        try:
            reply = routes.handle(sandbox, method, self.path, self.headers, body, base, facts)
        except Exception:  # never a traceback to the client; the log keeps it
            log.exception("Graph request failed inside the sandbox")
            facts.response_code = "InternalServerError"
            reply = _json_reply(500, {"error": {"code": "InternalServerError",
                                                "message": "Sandbox internal error"}})  # fmt: skip
        sandbox.requests.record(
            time=dt.datetime.now(dt.UTC).isoformat(),
            caller=facts.caller,
            mailbox=facts.mailbox,
            operation=facts.operation,
            status=0 if reply.reset else reply.status,
            duration_ms=round((time.monotonic() - started) * 1000, 2),
            fault=",".join(facts.faults) or None,
            response_code=facts.response_code,
        )
        self._send(reply)

    def _control(self, method: str) -> None:
        if not _is_loopback(self.client_address[0]):
            self._refuse("the control API is for loopback clients only")
            return
        scheme = "https" if self.server.tls is not None else "http"
        port = self.server.server_address[1]
        refused = control.refusal(
            self.server.sandbox.control_token, self.headers, scheme=scheme, port=port
        )
        if refused is not None:
            self._refuse(refused)
            return
        body = b""
        if method in ("POST", "PATCH", "PUT"):
            read = self._read_body()
            if read is None:
                return
            body = read
        status, payload = control.handle(self.server.sandbox, method, self.path, body)
        self._send(_json_reply(status, payload))

    def _refuse(self, message: str) -> None:
        """403, then hang up; a body up to 1 MiB is drained first so the client sees the 403."""
        self.close_connection = True
        with contextlib.suppress(ValueError):
            length = int(self.headers.get("Content-Length") or 0)
            if 0 < length <= REFUSED_BODY_DRAIN and not self.headers.get("Transfer-Encoding"):
                self._discard(length)
        reply = _json_reply(403, {"error": message})
        reply.headers["Connection"] = "close"
        self._send(reply)

    def _send(self, reply: Reply) -> None:
        if reply.reset:
            self._reset_connection()
            return
        if reply.stream is not None:
            self._send_stream(reply, reply.stream)
            return
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        declared = reply.declared_length if reply.declared_length is not None else len(reply.body)
        self.send_header("Content-Length", str(declared))
        if declared != len(reply.body):
            self.close_connection = True  # the rest of the body never comes: hang up after it
        self.end_headers()
        self.wfile.write(reply.body)
        self.wfile.flush()

    def _send_stream(self, reply: Reply, body: StreamBody) -> None:
        """Chunked, as Exchange streams notifications: no Content-Length, one chunk per
        envelope, the last chunk after ``Closed``. A broken-off stream resets the connection,
        as a restart or a network drop would; a client that left frees this thread at once."""
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for data in body.chunks(self._client_gone):
                self.wfile.write(b"%X\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except StreamAborted as exc:
            log.debug("stream to %s broken off: %s", self.client_address, exc)
            self._reset_connection()
        except OSError:  # the client went away while we wrote: nobody to answer any more
            self.close_connection = True
        finally:
            body.close()

    def _client_gone(self) -> bool:
        """Whether the client of a stream closed its end. It sends nothing while it waits for
        the answer, so anything readable (end of file, a TLS close, stray bytes) means it is
        gone; the connection is not reused after that."""
        try:
            readable = _readable(self.connection)
        except (OSError, ValueError):
            readable = True
        if readable:
            self.close_connection = True
        return readable

    def _reset_connection(self) -> None:
        """Close with SO_LINGER 0 so the client sees a TCP RST (ConnectionResetError)."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.rfile.close()  # drops the makefile reference that would keep the fd open
        sock = self.connection
        raw = sock
        if isinstance(sock, ssl.SSLSocket):
            # Skip the TLS close_notify: an abrupt reset, not an orderly shutdown.
            raw = socket.socket(fileno=sock.detach())
        with contextlib.suppress(OSError):
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with contextlib.suppress(OSError):
            raw.close()
        self.rfile = _ClosedReader()  # type: ignore[assignment]
        self.wfile = _ClosedWriter()  # type: ignore[assignment]


class _ClosedReader:
    def readline(self, *_: Any) -> bytes:
        return b""

    def close(self) -> None:
        pass


class _ClosedWriter:
    closed = True

    def write(self, data: bytes) -> int:
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def _readable(sock: socket.socket) -> bool:
    """Whether ``sock`` has something to read (or hung up), without waiting. poll() where there
    is one: select() fails on descriptors above 1023, which a busy sandbox reaches."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLIN | select.POLLPRI)
        return bool(poller.poll(0))
    return bool(select.select([sock], [], [], 0)[0])


def _graph_routes() -> Any:
    from .graph import routes

    return routes


def _is_loopback(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def _json_reply(status: int, payload: Any) -> Reply:
    body = json.dumps(payload, indent=1, default=str).encode("utf-8")
    return Reply(status, body, {"Content-Type": "application/json"})


# ---------------------------------------------------------------------------- starter


def tls_context(
    mode: str, cert_dir: Path | None = None
) -> tuple[ssl.SSLContext | None, Path | None]:
    """Server TLS context for ``ca`` / ``selfsigned`` (None for ``none``) and the CA file."""
    if mode == "none":
        return None, None
    paths = certificates.ensure_certificates(mode, cert_dir)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(paths.cert_file, paths.key_file)
    return context, paths.ca_file


class SandboxHandle:
    """A running sandbox: ``url``, ``control_url``, ``ca_file``, ``state``; ``stop()`` it."""

    def __init__(self, server: SandboxHTTPServer, thread: threading.Thread, scheme: str,
                 host: str, ca_file: Path | None) -> None:  # fmt: skip
        self.server = server
        self.thread = thread
        self.state = server.sandbox
        self.ca_file = ca_file
        self.stopped = False
        self.port = server.server_address[1]
        # The certificate names localhost; for plain HTTP the bound address is used as is.
        name = (
            "localhost" if scheme == "https" and host in ("127.0.0.1", "::1", "localhost") else host
        )
        if ":" in name:
            name = f"[{name}]"
        self.base_url = f"{scheme}://{name}:{self.port}"
        self.url = f"{self.base_url}/EWS/Exchange.asmx"
        self.control_url = f"{self.base_url}/_sandbox"

    @property
    def control_token(self) -> str:
        """The token every control API request must carry (``control_headers``)."""
        return str(self.state.control_token)

    @property
    def control_headers(self) -> dict[str, str]:
        """``{"X-Sandbox-Token": token}``: pass as ``headers=`` with every control request."""
        return {control.TOKEN_HEADER: self.control_token}

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, close the socket, save the state; bounded by ``timeout``; idempotent."""
        if self.stopped:
            return
        self.stopped = True
        self.server.shutdown()
        self.server.server_close()
        if self.state.streaming is not None:  # open EWS streams break off, as at a restart
            self.state.streaming.drop()
        self.thread.join(timeout)
        self.state.graph_subscriptions.stop()
        self.state.save()

    def __enter__(self) -> SandboxHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_sandbox(
    config: dict[str, Any] | None = None,
    tls: str = "ca",
    port: int = 0,
    state_file: str | Path | None = None,
    validate: bool | str = True,
    *,
    host: str = "127.0.0.1",
    cert_dir: str | Path | None = None,
    dispatcher: Dispatcher | None = None,
    store: Any = None,
    control_token: str | None = None,
    allow_http_notifications: bool = False,
    notification_ca_file: str | Path | None = None,
    streaming: dict[str, Any] | None = None,
) -> SandboxHandle:
    """Start a sandbox in a background thread and return its handle.

    ``validate``: True (count schema violations), False (no validation) or ``"fatal"`` (a
    response violation becomes an HTTP 500 fault); ``EXCHANGE_SANDBOX_SCHEMA_FATAL=1`` also
    makes it fatal. ``dispatcher``/``store`` replace the real operations/store (transport tests).
    ``control_token``: a fixed control API token (default: a new random one, see ``control``).
    Graph change notifications go to ``https`` endpoints only, as Graph sends them, unless
    ``allow_http_notifications`` (the demo's plain-HTTP web server); subscribers' certificates
    are checked against the sandbox CA plus ``notification_ca_file`` when given.
    ``streaming``: EWS streaming settings over the config's ``streaming`` section, e.g.
    ``{"minute_seconds": 0.5}`` (see ``operations.streaming.StreamingSettings``).
    """
    if tls not in ("ca", "selfsigned", "none"):
        raise ValueError("tls must be ca, selfsigned or none")
    validator = SchemaValidator(
        enabled=bool(validate), fatal=validate == "fatal" or fatal_from_environment()
    )
    context, ca_file = tls_context(tls, Path(cert_dir) if cert_dir else None)
    trusted = [p for p in (ca_file, notification_ca_file) if p is not None]
    config = dict(config if config is not None else load_config())
    if streaming:
        config["streaming"] = {**config.get("streaming", {}), **streaming}
    sandbox = Sandbox(
        config,
        validator=validator,
        dispatcher=dispatcher,
        store=store,
        state_file=Path(state_file) if state_file else None,
        allow_http_notifications=allow_http_notifications,
        notification_ca_files=tuple(Path(p) for p in trusted),
    )
    if control_token is not None:
        sandbox.control_token = control.check_token_form(control_token)
    server = SandboxHTTPServer((host, port), sandbox, context)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="exchange-sandbox",
        daemon=True,
    )  # fmt: skip
    thread.start()
    return SandboxHandle(server, thread, "http" if tls == "none" else "https", host, ca_file)
