"""What stands between exchangelib and the wire: the retry budget and the response check.

Both live in one :class:`SyncRetryPolicy`, because exchangelib hands every HTTP response to
``retry_policy.raise_response_errors(response)`` before parsing it (``util.post_ratelimited``),
and the policy belongs to one ``Configuration`` — so unlike the class-global
``BaseProtocol.HTTP_ADAPTER_CLS`` (owned by :mod:`exchange_ext.backends.ews.tls`), nothing here
changes how other exchangelib users in the process behave.

Traps handled (docs/reliability.md, "#E1", "#E2", "#1", "#3"):

- **E1, truncated responses.** exchangelib parses with a *recovering* lxml parser: a cut
  SyncFolderItems response parses as a success, its new SyncState is kept and the changes after
  the cut are lost. Every SOAP response is first parsed here with a strict parser; a body that
  is not one complete, well-formed ``soap:Envelope`` raises :class:`IncompleteResponse`, which
  the backend reports as ``Unavailable`` — so no page (and no state) is built from it.
- **E2, 401 under fault tolerance.** exchangelib's ``FaultTolerance`` treats a 401 as throttling
  and retries it for up to ``max_wait``. A 401 is raised here as ``UnauthorizedError`` at once.
- **A bounded budget.** ``FaultTolerance`` only caps a *single* wait; the doubling waits of a
  run can add up to twice ``max_wait``. Here the waits of one backend call add up to at most
  ``budget_seconds``; the next wait that would exceed it raises ``RateLimitError`` (→
  ``Throttled`` with the server's requested wait).
- **429.** exchangelib reports an HTTP 429 as a malformed response and never retries it; here it
  is throttling, honouring ``Retry-After``.
- **Size and depth** (SPEC §8). The body's size was bounded while it was read
  (:mod:`exchange_ext.backends.limits`: on the wire and decoded, so a gzip bomb stops
  inflating at the limit); here a body is parsed only within ``MAX_DECODED_BYTES`` and refused
  when its elements nest deeper than ``MAX_XML_DEPTH`` — both as
  :class:`~exchange_ext.backends.base.ResponseTooLarge`, before exchangelib's own parser
  (``huge_tree`` too) sees the document.
"""

from __future__ import annotations

from typing import Any

from exchangelib.errors import ErrorServerBusy, RateLimitError, UnauthorizedError
from exchangelib.protocol import FaultTolerance
from lxml import etree

from exchange_ext.backends.base import ResponseTooLarge
from exchange_ext.backends.limits import MAX_XML_DEPTH, check_decoded_size

SOAP_ENVELOPE = "{http://schemas.xmlsoap.org/soap/envelope/}Envelope"
SOAP_BODY = "{http://schemas.xmlsoap.org/soap/envelope/}Body"

# recover=False is the point: a cut or broken body must fail, not be patched up. No entities,
# no DTD, no network. huge_tree lifts libxml2's 10 MB cap on one text node (a long item body
# is legitimate); what it also lifts is bounded here instead: the document's size (checked
# before parsing) and its depth (libxml2 stops at 2048 levels with huge_tree, _TOO_DEEP at
# MAX_XML_DEPTH).
_STRICT_PARSER = etree.XMLParser(
    recover=False,
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    huge_tree=True,
)
# True when some element sits deeper than MAX_XML_DEPTH levels (evaluated in C, one pass per
# level over that level's elements only).
_TOO_DEEP = etree.XPath("boolean(" + "/*" * (MAX_XML_DEPTH + 1) + ")")


class IncompleteResponse(Exception):
    """A response body that is not one complete, well-formed SOAP envelope."""


def check_envelope(content: bytes) -> None:
    """Raise :class:`IncompleteResponse` unless ``content`` is a complete SOAP envelope, and
    :class:`~exchange_ext.backends.base.ResponseTooLarge` when it is too big or too deep."""
    check_decoded_size(content, "Exchange")
    try:
        root = etree.fromstring(content, _STRICT_PARSER)
    except etree.XMLSyntaxError as error:
        if "excessive depth" in str(error).lower():
            raise _too_deep() from None
        raise IncompleteResponse(f"the response is not well-formed XML: {error}") from None
    if _TOO_DEEP(root):
        raise _too_deep()
    if root.getroottree().docinfo.doctype:
        raise IncompleteResponse("the response carries a DTD (SOAP forbids one)")
    if root.tag != SOAP_ENVELOPE or root.find(SOAP_BODY) is None:
        raise IncompleteResponse(f"the response is not a SOAP envelope (root {root.tag})")


def _too_deep() -> ResponseTooLarge:
    return ResponseTooLarge(f"the response nests elements deeper than {MAX_XML_DEPTH} levels")


def _looks_like_xml(content: bytes) -> bool:
    return content.lstrip()[:1] == b"<"


def _retry_after(response: Any) -> float | None:
    try:
        value = float(response.headers.get("Retry-After", ""))
    except ValueError:
        return None
    return value if value > 0 else None


class SyncRetryPolicy(FaultTolerance):
    """Fault tolerance with a total wait budget per call, fail-fast auth, and the E1 check.

    :meth:`start_call` resets the budget; the backend calls it at the start of every public
    method, so one slow call cannot borrow the patience of the next.
    """

    def __init__(self, budget_seconds: float) -> None:
        super().__init__(max_wait=budget_seconds)
        self.spent_seconds = 0.0

    def start_call(self) -> None:
        self.spent_seconds = 0.0

    def back_off(self, seconds: float | None) -> None:
        wait = self.DEFAULT_BACKOFF if seconds is None else float(seconds)
        if self.spent_seconds + wait > self.max_wait:
            raise RateLimitError("Retry budget exhausted", wait=wait)
        self.spent_seconds += wait
        super().back_off(wait)

    def raise_response_errors(self, response: Any) -> None:
        if response.status_code == 401:
            # A wrong password is not throttling: fail now (E2), before any retry or lockout.
            raise UnauthorizedError(f"Invalid credentials for {response.url}")
        if response.status_code == 429:
            raise ErrorServerBusy("Caused by HTTP 429 response", back_off=_retry_after(response))
        if response.status_code == 200 and not getattr(response, "_content_consumed", True):
            # A stream (GetStreamingEvents): its envelopes are checked one by one as they
            # arrive (the backend's _GetStreamingEvents), never read whole here.
            return
        super().raise_response_errors(response)
        # Only 200 and XML 500 (SOAP faults) reach exchangelib's parser; check those (E1).
        content = response.content or b""
        if response.status_code == 200 or _looks_like_xml(content):
            check_envelope(content)
