"""HTTP to Microsoft Graph: one ``requests`` session, a per-call retry budget, typed errors.

Rules (docs/sync-rules.md, "Backends"; https://learn.microsoft.com/graph/throttling,
https://learn.microsoft.com/graph/errors):

- TLS is verified against :func:`exchange_ext.backends.tls.ca_bundle_path` (certifi + the operator's
  ``EXCHANGE_CA_BUNDLE``); the address Graph's host resolves to is checked on every new
  connection (:mod:`exchange_ext.backends.addresses`; a refusal is
  :class:`~exchange_ext.backends.base.AddressRefused`, raised as is); redirects are never
  followed, and ``@odata.nextLink``/``deltaLink`` URLs are only fetched when they point at the
  configured Graph host (a token never travels to another host).
- 429, 503 and 504 are retried after ``Retry-After`` (delay-seconds or an HTTP-date; a short
  exponential pause when absent) as long as the wait fits in the call's budget; past it, 429
  (and a 503/504 that named a delay) is :class:`Throttled` with that delay, else
  :class:`Unavailable`.
- Whole-call errors: 401 → :class:`AppCredentialsRefused` (the app's token: every mailbox's
  problem); 403 ``ErrorAccessDenied`` →
  :class:`ImpersonationDenied` when an application access policy / RBAC scope keeps the app out
  of this mailbox, else :class:`AuthFailed` (a missing application permission); 404
  ``ErrorInvalidUser``/``MailboxNotEnabledForRESTAPI`` → :class:`MailboxNotFound`; 410,
  ``syncStateNotFound``, ``resyncRequired`` → :class:`SyncStateExpired`; connection errors,
  timeouts, other 5xx and unreadable bodies → :class:`Unavailable`.
- Tokens and secrets are never logged; error messages carry Graph's error code and message only.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests

from exchange_ext.backends.base import (
    AppCredentialsRefused,
    AuthFailed,
    BackendError,
    ImpersonationDenied,
    ItemUnreadable,
    MailboxNotFound,
    ResponseTooLarge,
    SyncStateExpired,
    Throttled,
    Unavailable,
)
from exchange_ext.backends.tls import TrustedCAAdapter, ca_bundle_path

logger = logging.getLogger(__name__)

#: Graph's most requests in one JSON batch (https://learn.microsoft.com/graph/json-batching).
BATCH_LIMIT = 20
RETRIED_STATUSES = frozenset({429, 503, 504})
# Without Retry-After, 503/504 are retried after 1, 2, 4 … seconds (capped).
FALLBACK_PAUSE = 1.0
FALLBACK_PAUSE_CAP = 30.0
_MAILBOX_CODES = frozenset({"ErrorInvalidUser", "MailboxNotEnabledForRESTAPI"})
_EXPIRED_CODES = frozenset({"syncStateNotFound", "resyncRequired", "SyncStateInvalid"})
# Graph's words when an application access policy or RBAC scope blocks the mailbox
# (https://learn.microsoft.com/graph/auth-limit-mailbox-access).
_SCOPE_MARKERS = ("accesspolicy", "access to odata is disabled", "application policy")

PERMISSION_ADVICE = (
    "grant Calendars.ReadWrite and Contacts.ReadWrite application permissions (with admin "
    "consent) to the app registration"
)


@dataclass(frozen=True)
class GraphReply:
    """One HTTP (or inner batch) response: status, headers (lower-case names), JSON body."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def error_code(self) -> str:
        return error_code(self.body)

    @property
    def error_message(self) -> str:
        error = self.body.get("error") if isinstance(self.body, dict) else None
        return str(error.get("message", "")) if isinstance(error, dict) else ""


@dataclass(frozen=True)
class BatchRequest:
    """One inner request of a ``$batch``; ``url`` is relative to the version (``/users/…``)."""

    method: str
    url: str
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)


# Per-item error codes of an item that exists but cannot be read now.
ITEM_ERROR_CODES = frozenset({"ErrorItemCorrupt", "ErrorCorruptData"})


def error_code(body: Any) -> str:
    error = body.get("error") if isinstance(body, dict) else None
    return str(error.get("code", "")) if isinstance(error, dict) else ""


def whole_call_error(reply: GraphReply, mailbox: str = "") -> BackendError | None:
    """The session-wide error a reply means, or ``None`` when it concerns one item only.

    Used for top-level responses and for inner ``$batch`` responses alike (a 401 inside a
    batch is as fatal as outside it).
    """
    status, code = reply.status, reply.error_code
    detail = f"{code}: {reply.error_message}".strip(": ")
    if status == 401:
        # The token is the app registration's, the same for every mailbox.
        return AppCredentialsRefused(f"Microsoft Graph refused the access token ({detail})")
    if status == 403 and code in ("ErrorAccessDenied", "Authorization_RequestDenied", ""):
        return access_denied_error(reply.error_message, mailbox)
    if status == 404 and code in _MAILBOX_CODES:
        return MailboxNotFound(f"no Exchange Online mailbox {mailbox} ({detail})")
    if status == 410 or code in _EXPIRED_CODES:
        return SyncStateExpired(f"the delta token is no longer valid ({detail})")
    if code in ITEM_ERROR_CODES:
        # The item exists but cannot be read now: never "gone" (docs/sync-rules.md, "Deletes").
        return ItemUnreadable(detail)
    if status >= 500 and status not in RETRIED_STATUSES:
        return Unavailable(f"Microsoft Graph answered {status} ({detail})")
    return None


def access_denied_error(message: str, mailbox: str) -> BackendError:
    """403 ErrorAccessDenied: outside the app's mailbox scope, or a missing permission."""
    if any(marker in message.lower() for marker in _SCOPE_MARKERS):
        return ImpersonationDenied(
            f"The app may not access the mailbox {mailbox or '(unknown)'}: it is outside the "
            "application access policy (RBAC for Applications scope) set for this app in "
            "Exchange Online. Add the mailbox to the scope's group."
        )
    return AuthFailed(f"Microsoft Graph denied access: {PERMISSION_ADVICE}.")


def retry_after_seconds(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """``Retry-After`` as seconds: delay-seconds or an HTTP-date (RFC 9110 §10.2.3)."""
    raw = (headers.get("retry-after") or "").strip()
    if not raw:
        return None
    if raw.isdigit():
        return float(raw)
    try:
        moment = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    current = time.time() if now is None else now
    return max(0.0, moment.timestamp() - current)


class TimeoutSession(requests.Session):
    """A Session that verifies TLS with our CA bundle, never redirects, always times out, and
    connects only to addresses the server name may resolve to (:class:`TrustedCAAdapter`,
    exchangelib's transport too: loopback and link-local refused unless
    ``EXCHANGE_ALLOWED_NETWORKS`` lists them). Graph's requests and msal's token requests use it.
    """

    def __init__(self, timeout: float | tuple[float, float]) -> None:
        super().__init__()
        adapter = TrustedCAAdapter()
        self.mount("https://", adapter)
        self.mount("http://", adapter)
        self.verify = ca_bundle_path()
        self.max_redirects = 0
        self.default_timeout = timeout

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", self.default_timeout)
        kwargs["allow_redirects"] = False
        # Per request: with trust_env, REQUESTS_CA_BUNDLE would override the session's verify.
        kwargs["verify"] = self.verify
        return super().request(method, url, *args, **kwargs)


class GraphHttp:
    """Graph requests for one session: bearer token, budget, retries, error mapping.

    ``token`` returns a current access token (cached by :mod:`.auth`). ``budget`` is
    the most seconds one public backend call waits for throttling; :meth:`start_call` opens a
    new budget. ``sleep``/``clock`` are seams for tests.
    """

    def __init__(
        self,
        base_url: str,
        token: Callable[[], str],
        *,
        mailbox: str = "",
        budget_seconds: float = 120.0,
        timeout: float | tuple[float, float] = (10.0, 60.0),
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.root = f"{self.base_url}/v1.0"
        self._token = token
        self.mailbox = mailbox
        self.budget_seconds = budget_seconds
        self.session = TimeoutSession(timeout)
        self.sleep = sleep
        self.clock = clock
        self.deadline = clock() + budget_seconds
        self.requests_sent = 0

    def start_call(self) -> None:
        self.deadline = self.clock() + self.budget_seconds

    def close(self) -> None:
        self.session.close()

    # --- single requests ----------------------------------------------------------------------

    def get(self, url: str, params: Mapping[str, str] | None = None, **kw: Any) -> GraphReply:
        """GET a path below ``/v1.0`` or an absolute link on the Graph host; raises on errors
        that concern the whole call, returns item-level ones (404, 412, 400 …)."""
        return self.send("GET", url, params=params, **kw)

    def send(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        retry_on_reset: bool | None = None,
    ) -> GraphReply:
        """One request with retries for 429/503/504 within the budget.

        ``retry_on_reset``: whether a lost connection may be retried (default: for GET only —
        a POST is only safe to replay when every create in it carries a ``transactionId``).
        """
        full_url = self._absolute(url)
        retry_reset = method == "GET" if retry_on_reset is None else retry_on_reset
        attempt = 0
        while True:
            reply = self._once(method, full_url, params, body, headers, retry_reset and attempt < 2)
            if reply is None:  # connection lost, retry allowed
                attempt += 1
                self._pause(None, attempt, status=0)
                continue
            if reply.status not in RETRIED_STATUSES:
                error = whole_call_error(reply, self.mailbox)
                if error is not None:
                    raise error
                return reply
            attempt += 1
            self._pause(retry_after_seconds(reply.headers), attempt, status=reply.status)

    def _once(
        self,
        method: str,
        url: str,
        params: Mapping[str, str] | None,
        body: Any,
        headers: Mapping[str, str] | None,
        may_retry: bool,
    ) -> GraphReply | None:
        all_headers = {"Authorization": f"Bearer {self._token()}", "Accept": "application/json"}
        all_headers.update(headers or {})
        try:
            self.requests_sent += 1
            response = self.session.request(
                method, url, params=params, json=body, headers=all_headers
            )
        except requests.exceptions.SSLError as error:
            raise Unavailable(f"TLS verification of Microsoft Graph failed: {error}") from None
        except requests.exceptions.RequestException as error:
            if may_retry and self.clock() < self.deadline:
                logger.info("Graph connection lost (%s); retrying", type(error).__name__)
                return None
            raise Unavailable(f"Microsoft Graph could not be reached: {error}") from None
        return _reply(response)

    def _pause(self, retry_after: float | None, attempt: int, *, status: int) -> None:
        wait = retry_after
        if wait is None:
            wait = min(FALLBACK_PAUSE * 2 ** (attempt - 1), FALLBACK_PAUSE_CAP)
        if self.clock() + wait > self.deadline:
            if status == 429 or (status in RETRIED_STATUSES and retry_after is not None):
                raise Throttled(
                    f"Microsoft Graph asked to wait {wait:.0f} s (HTTP {status})",
                    retry_after_seconds=max(wait, 1.0),
                )
            raise Unavailable(f"Microsoft Graph is unavailable (HTTP {status or 'reset'})")
        logger.info("Graph answered %s; waiting %.1f s", status or "reset", wait)
        self.sleep(wait)

    def _absolute(self, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            return f"{self.root}/{url.lstrip('/')}"
        given, ours = urlsplit(url), urlsplit(self.base_url)
        if (given.scheme, given.netloc.lower()) != (ours.scheme, ours.netloc.lower()):
            # A link elsewhere would carry our bearer token to another host.
            raise Unavailable(f"Microsoft Graph returned a link to another host: {given.netloc}")
        return url

    # --- $batch -------------------------------------------------------------------------------

    def batch(
        self, requests_: Sequence[BatchRequest], *, replay_safe: bool = False
    ) -> list[GraphReply]:
        """Send ``requests_`` in ``$batch`` posts of at most 20; replies in input order.

        https://learn.microsoft.com/graph/json-batching

        Inner 429/503/504 are sent again (in a later batch) after their ``Retry-After`` while
        the budget lasts; an inner request still throttled when it runs out keeps its 429
        reply (the caller makes it that item's error). Inner whole-call errors (401, 403, a
        missing mailbox) are raised. ``replay_safe``: the batch may be re-posted after a lost
        connection (GETs, or creates that all carry a ``transactionId``).
        """
        replies: list[GraphReply | None] = [None] * len(requests_)
        pending = list(range(len(requests_)))
        attempt = 0
        while pending:
            retry: list[int] = []
            waits: list[float] = []
            for start in range(0, len(pending), BATCH_LIMIT):
                chunk = pending[start : start + BATCH_LIMIT]
                answered = self._post_batch(requests_, chunk, replay_safe)
                for index, reply in zip(chunk, answered, strict=True):
                    replies[index] = reply
                    if reply.status in RETRIED_STATUSES:
                        retry.append(index)
                        waits.append(retry_after_seconds(reply.headers) or 0.0)
            if not retry:
                break
            attempt += 1
            wait = max(waits) or min(FALLBACK_PAUSE * 2 ** (attempt - 1), FALLBACK_PAUSE_CAP)
            if self.clock() + wait > self.deadline:
                break  # the still-throttled replies stand as they are
            self.sleep(wait)
            pending = retry
        return [reply if reply is not None else GraphReply(0) for reply in replies]

    def _post_batch(
        self, requests_: Sequence[BatchRequest], chunk: Sequence[int], replay_safe: bool
    ) -> list[GraphReply]:
        payload = {"requests": [_inner(str(index), requests_[index]) for index in chunk]}
        outer = self.send(
            "POST", "$batch", body=payload,
            headers={"Content-Type": "application/json"}, retry_on_reset=replay_safe,
        )  # fmt: skip
        if outer.status != 200 or not isinstance(outer.body, dict):
            raise Unavailable(f"Microsoft Graph rejected a $batch ({outer.status})")
        by_id = _inner_replies(outer.body)
        missing = [index for index in chunk if str(index) not in by_id]
        if missing:
            # Never build results from an incomplete answer.
            raise Unavailable("Microsoft Graph's $batch answer lacks some responses")
        replies = [by_id[str(index)] for index in chunk]
        for reply in replies:
            if reply.status not in RETRIED_STATUSES:
                error = whole_call_error(reply, self.mailbox)
                if error is not None:
                    raise error
        return replies


def _inner(request_id: str, request: BatchRequest) -> dict[str, Any]:
    inner: dict[str, Any] = {"id": request_id, "method": request.method, "url": request.url}
    headers = dict(request.headers)
    if request.body is not None:
        # "headers must include Content-Type when a body is present" (json-batching).
        headers.setdefault("Content-Type", "application/json")
        inner["body"] = request.body
    if headers:
        inner["headers"] = headers
    return inner


def _inner_replies(body: dict[str, Any]) -> dict[str, GraphReply]:
    found: dict[str, GraphReply] = {}
    for entry in body.get("responses") or ():
        if not isinstance(entry, dict) or "id" not in entry:
            continue
        headers = {str(k).lower(): str(v) for k, v in (entry.get("headers") or {}).items()}
        try:
            status = int(entry.get("status", 0))
        except (TypeError, ValueError):
            status = 0
        found[str(entry["id"])] = GraphReply(status, headers, entry.get("body"))
    return found


def _reply(response: requests.Response) -> GraphReply:
    headers = {k.lower(): v for k, v in response.headers.items()}
    if 300 <= response.status_code < 400:
        raise Unavailable(f"Microsoft Graph answered a redirect ({response.status_code})")
    if not response.content:
        return GraphReply(response.status_code, headers, None)
    try:
        body = json.loads(response.content)
    except RecursionError:
        # JSON nested past Python's recursion limit (Graph nests a dozen levels): refused like
        # an oversized body (exchange_ext/backends/limits.py).
        raise ResponseTooLarge("Microsoft Graph sent JSON nested too deeply to read") from None
    except ValueError:
        if response.status_code >= 500 or response.status_code in RETRIED_STATUSES:
            return GraphReply(response.status_code, headers, None)
        raise Unavailable(
            f"Microsoft Graph sent an unreadable body (HTTP {response.status_code})"
        ) from None
    return GraphReply(response.status_code, headers, body)
