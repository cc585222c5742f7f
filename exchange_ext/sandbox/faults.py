"""Fault injection: rules that make the next N matching EWS requests misbehave.

A rule matches on the operation name (or ``*``) and optionally on the mailbox the request is for.
It fires ``count`` times (``None`` = until removed). Rules fire in two phases:

- ``before`` the request is applied: ``latency``, ``server_busy`` (SOAP fault ErrorServerBusy with
  BackOffMilliseconds), ``http_status`` (500, 503 with Retry-After, 401, 429...),
  ``reset_before`` (the connection is reset and nothing is applied);
- Graph only: ``delta_gone`` (410 Gone with ``syncStateNotFound`` or, with ``code``
  ``resyncRequired``, that error) fires only on requests carrying a ``$deltatoken`` or
  ``$skiptoken``; the token stays usable, so the client's restart is what is tested.
- ``after`` the request was applied: ``reset_after`` (the write happened, the client never hears
  of it), ``truncate`` (the body is cut at ``bytes``), ``malformed`` (the body is not XML),
  ``gzip_bomb`` (the answer, ``Content-Encoding: gzip``, inflates to ``inflated_mib`` MiB: the
  real answer with that much whitespace after its first tag, so only a reader's limit stops
  it), ``deep_document`` (the answer is replaced by one whose elements — or, for Graph, JSON
  arrays — nest ``depth`` levels deep), ``warning`` (not implemented; see docs/sandbox.md).

Latency combines with one other fault; of the other kinds, the first matching rule per phase
wins. How Exchange throttles is described in
https://learn.microsoft.com/exchange/client-developer/exchange-web-services/ews-throttling-in-exchange

Graph requests match on their ``graph:*`` operation names (``graph:calendarView.delta``,
``graph:events.create``, ``graph:token``, ``graph:batch`` …; see ``graph.routes``). For them an
``http_status`` rule answers with Graph's JSON error body (429 ``ApplicationThrottled``, 503
``serviceNotAvailable`` …) and ``retry_after_format`` ``"http-date"`` sends ``Retry-After`` as
an HTTP-date instead of delay-seconds: https://learn.microsoft.com/graph/throttling
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import itertools
import threading
from dataclasses import dataclass, field
from typing import Any

BEFORE_KINDS = ("latency", "server_busy", "http_status", "reset_before", "delta_gone")
AFTER_KINDS = ("reset_after", "truncate", "malformed", "gzip_bomb", "deep_document")
KINDS = BEFORE_KINDS + AFTER_KINDS
MAX_LATENCY_MS = 120_000  # bounded: a rule can never hang a worker thread for long
HTTP_STATUSES = (400, 401, 403, 404, 429, 500, 502, 503, 504)
DELTA_CODES = ("syncStateNotFound", "resyncRequired")
RETRY_AFTER_FORMATS = ("seconds", "http-date")
MAX_INFLATED_MIB = 16_384  # a bomb's decoded size; its body on the wire is ~1/1000 of it


@dataclass
class FaultRule:
    """One injected fault; ``remaining`` None means unlimited."""

    id: int
    kind: str
    operation: str = "*"
    mailbox: str | None = None
    remaining: int | None = 1
    fired: int = 0
    latency_ms: int = 0
    back_off_ms: int = 1000
    status: int = 503
    retry_after: int | None = None
    bytes: int = 100
    declared: str = "truncated"  # truncate: Content-Length of the cut body, or "full" (then close)
    params: dict[str, Any] = field(default_factory=dict)

    def matches(
        self, operation: str | None, mailbox: str | None, delta_token: bool = False
    ) -> bool:
        if self.remaining == 0:
            return False
        if self.kind == "delta_gone" and not delta_token:
            return False
        if self.operation != "*" and self.operation != operation:
            return False
        return self.mailbox is None or (mailbox or "").lower() == self.mailbox

    def to_public(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "kind": self.kind,
            "operation": self.operation,
            "mailbox": self.mailbox,
            "remaining": self.remaining,
            "fired": self.fired,
        }
        data.update(_KIND_FIELDS[self.kind](self))
        return data


_KIND_FIELDS = {
    "latency": lambda r: {"latency_ms": r.latency_ms},
    "server_busy": lambda r: {"back_off_ms": r.back_off_ms},
    "http_status": lambda r: {
        "status": r.status,
        "retry_after": r.retry_after,
        "retry_after_format": r.params.get("retry_after_format", "seconds"),
    },
    "reset_before": lambda r: {},
    "reset_after": lambda r: {},
    "truncate": lambda r: {"bytes": r.bytes, "declared": r.declared},
    "malformed": lambda r: {},
    "gzip_bomb": lambda r: {"inflated_mib": r.params.get("inflated_mib", 1024)},
    "deep_document": lambda r: {"depth": r.params.get("depth", 10_000)},
    "delta_gone": lambda r: {"code": r.params.get("code", "syncStateNotFound")},
}


def _int(entry: dict[str, Any], key: str, default: int | None, low: int, high: int) -> int | None:
    value = entry.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{key} must be an integer between {low} and {high}")
    return value


def rule_from_json(rule_id: int, entry: dict[str, Any]) -> FaultRule:
    """Validate a control-API fault description; ValueError with a readable message on bad input."""
    if not isinstance(entry, dict):
        raise ValueError("a fault must be a JSON object")
    kind = entry.get("kind")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}")
    operation = entry.get("operation", "*")
    mailbox = entry.get("mailbox")
    if not isinstance(operation, str) or not operation:
        raise ValueError("operation must be an EWS operation name or '*'")
    if mailbox is not None and not isinstance(mailbox, str):
        raise ValueError("mailbox must be an SMTP address")
    status = _int(entry, "status", 503, 400, 599)
    if kind == "http_status" and status not in HTTP_STATUSES:
        raise ValueError(f"status must be one of {HTTP_STATUSES}")
    params: dict[str, Any] = {}
    code = entry.get("code", "syncStateNotFound")
    if kind == "delta_gone":
        if code not in DELTA_CODES:
            raise ValueError(f"code must be one of {', '.join(DELTA_CODES)}")
        params["code"] = code
    retry_format = entry.get("retry_after_format", "seconds")
    if retry_format not in RETRY_AFTER_FORMATS:
        raise ValueError(f"retry_after_format must be one of {', '.join(RETRY_AFTER_FORMATS)}")
    if retry_format != "seconds":
        params["retry_after_format"] = retry_format
    if kind == "gzip_bomb":
        params["inflated_mib"] = _int(entry, "inflated_mib", 1024, 1, MAX_INFLATED_MIB)
    if kind == "deep_document":
        params["depth"] = _int(entry, "depth", 10_000, 1, 1_000_000)
    declared = entry.get("declared", "truncated")
    if declared not in ("truncated", "full"):
        raise ValueError("declared must be 'truncated' or 'full'")
    return FaultRule(
        id=rule_id,
        kind=kind,
        operation=operation,
        mailbox=mailbox.lower() if mailbox else None,
        remaining=_int(entry, "count", 1, 1, 1_000_000),
        latency_ms=_int(entry, "latency_ms", 0, 0, MAX_LATENCY_MS) or 0,
        back_off_ms=_int(entry, "back_off_ms", 1000, 0, 3_600_000) or 0,
        status=status or 503,
        retry_after=_int(entry, "retry_after", None, 0, 86_400),
        bytes=_int(entry, "bytes", 100, 0, 100_000_000) or 0,
        declared=declared,
        params=params,
    )


class FaultSet:
    """The active rules. Thread-safe: matching and decrementing happen under one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._ids = itertools.count(1)

    def add(self, entry: dict[str, Any]) -> FaultRule:
        with self._lock:
            rule = rule_from_json(next(self._ids), entry)
            self._rules.append(rule)
            return rule

    def remove(self, rule_id: int) -> bool:
        with self._lock:
            before = len(self._rules)
            self._rules = [r for r in self._rules if r.id != rule_id]
            return len(self._rules) != before

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r.to_public() for r in self._rules]

    def take(
        self,
        phase: str,
        operation: str | None,
        mailbox: str | None,
        *,
        delta_token: bool = False,
        kinds: tuple[str, ...] | None = None,
    ) -> list[FaultRule]:
        """Consume the rules that fire now in ``phase`` (``before``/``after``).

        ``delta_token``: the request carries a Graph delta/skip token (``delta_gone`` rules fire
        only then); ``kinds`` restricts the kinds considered (inner requests of a ``$batch``).

        Returns copies: at most one latency rule and at most one other rule, in rule order.
        Each returned rule's count has been decremented atomically with the match; spent rules
        stay listed (with ``remaining`` 0) so the control API shows what fired.
        """
        phase_kinds = BEFORE_KINDS if phase == "before" else AFTER_KINDS
        fired: list[FaultRule] = []
        with self._lock:
            for rule in self._rules:
                if rule.kind not in phase_kinds or (kinds is not None and rule.kind not in kinds):
                    continue
                if not rule.matches(operation, mailbox, delta_token):
                    continue
                if any(_slot(f.kind) == _slot(rule.kind) for f in fired):
                    continue
                if rule.remaining is not None:
                    rule.remaining -= 1
                rule.fired += 1
                fired.append(dataclasses.replace(rule))
        return fired


def _slot(kind: str) -> str:
    return "latency" if kind == "latency" else "terminal"


# ---------------------------------------------------------------------------- hostile bodies

_MIB = 1024 * 1024
SOAP_ENVELOPE_START = (
    b'<?xml version="1.0" encoding="utf-8"?>'
    b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
)
SOAP_ENVELOPE_END = b"</s:Body></s:Envelope>"


@functools.cache
def _whitespace_member() -> bytes:
    """One gzip member inflating to 1 MiB of spaces (about 1 KB: deflate's best ratio)."""
    return gzip.compress(b" " * _MIB, compresslevel=9, mtime=0)


def gzip_bomb(body: bytes, inflated_mib: int) -> bytes:
    """``body`` gzip-compressed with ``inflated_mib`` MiB of whitespace after its first tag (XML)
    or bracket (JSON): a valid answer for a reader with unlimited memory, ~1/1000 of that on
    the wire. Concatenated gzip members (RFC 1952 §2.2) keep building it cheap."""
    stripped = body.lstrip()
    mark = b">" if stripped[:1] == b"<" else (b"{" if stripped[:1] == b"{" else b"[")
    cut = body.find(mark) + 1  # 0 when absent: the whitespace goes first
    head, tail = body[:cut], body[cut:]
    return (
        gzip.compress(head, mtime=0)
        + _whitespace_member() * inflated_mib
        + gzip.compress(tail, mtime=0)
    )


def deep_document(as_json: bool, depth: int) -> bytes:
    """A SOAP envelope whose body nests ``depth`` elements, or a Graph-like JSON object whose
    ``value`` nests ``depth`` arrays."""
    if as_json:
        return b'{"value":' + b"[" * depth + b"]" * depth + b"}"
    return SOAP_ENVELOPE_START + b"<x>" * depth + b"</x>" * depth + SOAP_ENVELOPE_END
