"""Outbound HTTP(S) from the sandbox to a subscriber's endpoints, as Microsoft Graph makes it.

Two calls, both ``POST`` over a fresh connection (no pooling: a subscriber sees each request as
Graph sends it), each bounded by a timeout:

- ``handshake(url, ...)``: the validation request Graph sends before it creates a subscription,
  ``POST {url}?validationToken={url-encoded opaque token}`` with an empty ``text/plain`` body;
  the endpoint must answer 200 with exactly the decoded token as its body, within 10 seconds.
  A failure raises the ``GraphError`` the subscription request then gets (400).
  https://learn.microsoft.com/graph/change-notifications-delivery-webhooks#notificationurl-validation
- ``deliver(url, payload, ...)``: a batch of change or lifecycle notifications as JSON; the
  result says whether the endpoint took it (any 2xx) or why not.

TLS is always verified (hostname included) against ``trust_context``: the sandbox's own CA plus
an optional extra CA file, so a subscriber can serve a certificate from either. Nothing is ever
sent to a URL that ``check_url`` refused: ``https`` only, unless the sandbox was started with
``allow_http_notifications`` (plain ``http`` for the demo's local web server).
"""

from __future__ import annotations

import http.client
import json
import ssl
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from .errors import GraphError

MAX_RESPONSE_BYTES = 64 * 1024  # what is read of a subscriber's answer
VALIDATION_TIMEOUT = 10.0  # Graph's limit for the validation answer
DELIVERY_TIMEOUT = 3.0  # Graph's HTTP client timeout for notifications
JSON_TYPE = "application/json; charset=utf-8"


def trust_context(ca_files: Iterable[Path]) -> ssl.SSLContext:
    """A client TLS context (TLS 1.2+, hostname checks) trusting exactly ``ca_files``, or the
    system's default roots when there are none; ValueError for a file that holds no CA."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    files = list(ca_files)
    for path in files:
        try:
            context.load_verify_locations(cafile=str(path))
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"cannot trust the CA file {path}: {exc}") from None
    if not files:
        context.load_default_certs()
    return context


def check_url(url: Any, name: str, allow_http: bool) -> str:
    """``url`` if the sandbox may send to it; otherwise the 400 Graph answers."""
    # Graph's wording for these: "NotificationUrl scheme='http' is not supported." and
    # "Invalid notification url='...'." (code InvalidRequest).
    label = name[0].upper() + name[1:]
    if not isinstance(url, str) or not url:
        raise GraphError(400, "InvalidRequest", f"Invalid {_spaced(name)}='{url}'.")
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("https", "http"):
        raise GraphError(400, "InvalidRequest", f"Invalid {_spaced(name)}='{url}'.")
    if parts.scheme.lower() == "http" and not allow_http:
        raise GraphError(400, "InvalidRequest", f"{label} scheme='http' is not supported.")
    try:
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        raise GraphError(400, "InvalidRequest", f"Invalid {_spaced(name)}='{url}'.") from None
    if not parts.hostname or parts.username or parts.password or parts.fragment:
        raise GraphError(400, "InvalidRequest", f"Invalid {_spaced(name)}='{url}'.")
    return url


def _spaced(name: str) -> str:
    # notificationUrl → "notification url", as in Graph's message
    return "".join(f" {c.lower()}" if c.isupper() else c for c in name)


@dataclass(frozen=True)
class Outcome:
    """What became of one POST: the HTTP status (None when no answer came) or the error."""

    status: int | None
    body: bytes = b""
    error: str | None = None
    timed_out: bool = False

    @property
    def accepted(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def post(
    url: str, body: bytes, content_type: str, timeout: float, context: ssl.SSLContext
) -> Outcome:
    """POST ``body`` to ``url`` on a new connection; never raises for network trouble."""
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host = parts.hostname or ""
    connection: http.client.HTTPConnection
    if parts.scheme.lower() == "https":
        connection = http.client.HTTPSConnection(host, parts.port, timeout=timeout, context=context)
    else:
        connection = http.client.HTTPConnection(host, parts.port, timeout=timeout)
    started = time.monotonic()
    try:
        connection.request(
            "POST", target, body=body,
            headers={"Content-Type": content_type, "Content-Length": str(len(body))},
        )  # fmt: skip
        response = connection.getresponse()
        data = response.read(MAX_RESPONSE_BYTES)
        status = response.status
    except TimeoutError:
        return Outcome(None, error=f"no answer within {timeout:g} s", timed_out=True)
    except (OSError, http.client.HTTPException) as exc:
        return Outcome(None, error=f"{type(exc).__name__}: {exc}")
    finally:
        connection.close()
    if time.monotonic() - started > timeout:
        # A server that trickles its answer byte by byte stays under the socket timeout.
        return Outcome(status, data, f"answer took longer than {timeout:g} s", timed_out=True)
    return Outcome(status, data)


def new_validation_token() -> str:
    """An opaque token shaped like Graph's (it holds spaces and colons, so a subscriber that
    does not URL-decode it fails as it would with Graph)."""
    return (
        "Validation: Testing client application reachability for subscription Request-Id: "
        f"{uuid.uuid4()}"
    )


def handshake(url: str, timeout: float, context: ssl.SSLContext) -> None:
    """Run the validation handshake with ``url``; the GraphError (400) on any failure."""
    token = new_validation_token()
    separator = "&" if urlsplit(url).query else "?"
    target = f"{url}{separator}validationToken={quote(token, safe='')}"
    outcome = post(target, b"", "text/plain; charset=utf-8", timeout, context)
    if outcome.timed_out:
        raise GraphError(400, "InvalidRequest", "Subscription validation request timed out.")
    if outcome.status is None:
        raise GraphError(
            400, "ValidationError",
            "Subscription validation request failed. The notification endpoint could not be "
            f"reached: {outcome.error}",
        )  # fmt: skip
    if outcome.status != 200:
        raise GraphError(
            400, "ValidationError",
            "Subscription validation request failed. Notification endpoint must respond with "
            "200 OK to validation request.",
        )  # fmt: skip
    if outcome.body.decode("utf-8", "replace") != token:
        raise GraphError(
            400, "ValidationError",
            "Subscription validation request failed. Response must exactly match validationToken "
            "query parameter.",
        )  # fmt: skip


def deliver(
    url: str, notifications: list[dict[str, Any]], timeout: float, context: ssl.SSLContext
) -> Outcome:
    """POST ``{"value": notifications}`` (a changeNotificationCollection) to ``url``."""
    body = json.dumps({"value": notifications}).encode("utf-8")
    return post(url, body, JSON_TYPE, timeout, context)
