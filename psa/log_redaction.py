"""No secret in any log line, at any level, from our code or any library (SPEC §8).

Libraries log credentials at DEBUG: requests-oauthlib the token request's body (with
``client_secret``) and every token it obtains or adds to a request, exchangelib the request
headers (``Authorization: Basic …``/``Bearer …``) and whole bodies. Keeping their loggers above
DEBUG (``LOGGING``) cuts the volume, but a level is one setting away from DEBUG; the defence
that does not depend on any library's goodwill is :class:`RedactSecrets`, a filter on every
handler ``LOGGING`` configures. A record from any logger reaches those handlers (loggers
propagate to the root's handlers), and the filter rewrites it before it is formatted:

- the message, formatted with its arguments (so a secret in an argument is caught);
- the exception text and stack info (formatted here, so the handler prints the redacted text);

replacing, in all of them:

- the values of ``Authorization``/``Proxy-Authorization`` headers, in any rendering (a dict
  repr, a raw header line, JSON);
- ``Bearer …``/``Basic …`` credentials anywhere;
- the values of ``access_token``, ``refresh_token``, ``id_token``, ``client_secret``,
  ``client_assertion``, ``password``, ``passwd`` as form/query parameters (``name=value``) and
  as JSON or Python dict entries (``"name": "value"``);
- JWTs (``eyJ….….…``: Entra ID access tokens, client assertions);
- PEM private keys;
- every value registered with :func:`remember_secret` (the extension registers each stored
  secret it decrypts and each access token it obtains), in its plain, URL- and JSON-escaped
  forms.

:func:`redact` is the same rewriting for any text.
"""

from __future__ import annotations

import collections
import json
import logging
import re
import threading
from urllib.parse import quote, quote_plus

REDACTED = "[REDACTED]"
#: Shorter values are not remembered: they would blank out ordinary words.
MIN_SECRET_LENGTH = 4
#: Remembered values kept (least recently remembered dropped first; tokens expire anyway).
MAX_REMEMBERED = 512

_SECRET_NAMES = r"access_token|refresh_token|id_token|client_secret|client_assertion|passw(?:or)?d"
_SCHEMES = r"Bearer|Basic|Negotiate|NTLM|Digest"
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # PEM private keys (also inside reprs, where the newlines are "\n").
    (
        re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S),
        "[REDACTED PRIVATE KEY]",
    ),
    # Header values: 'Authorization': 'Bearer x' / Authorization: Basic x / "authorization":"x".
    (
        re.compile(
            rf"(?i)\b((?:proxy-)?authorization['\"]?\s*[:=]\s*['\"]?(?:(?:{_SCHEMES})\s+)?)"
            rf"[^'\"\r\n]+"
        ),
        rf"\1{REDACTED}",
    ),
    # Credentials after an auth scheme anywhere (not a challenge's realm=…).
    (
        re.compile(rf"(?i)\b({_SCHEMES})\s+(?!realm\b)[A-Za-z0-9\-._~+/]{{8,}}=*"),
        rf"\1 {REDACTED}",
    ),
    # name=value in a form body or a query string.
    (re.compile(rf"(?i)\b({_SECRET_NAMES})=[^&\s'\"]+"), rf"\1={REDACTED}"),
    # "name": "value" in JSON and 'name': 'value' in a Python repr.
    (
        re.compile(rf"""(?i)(['"](?:{_SECRET_NAMES})['"]\s*:\s*)(['"])(?:\\.|(?!\2).)*\2"""),
        rf"\1\2{REDACTED}\2",
    ),
    # JWTs (three base64url parts, the first a JSON object: "eyJ").
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"), REDACTED),
)

_lock = threading.Lock()
_remembered: collections.OrderedDict[str, None] = collections.OrderedDict()
# The remembered values, longest first (a value inside a longer one is replaced after it).
# Plain substring search, not one regex alternation: it is an order of magnitude faster on
# the megabyte-long lines a DEBUG log holds (whole SOAP bodies).
_remembered_values: tuple[str, ...] = ()


def remember_secret(value: str | None) -> None:
    """Redact ``value`` (and its escaped forms) from every log line from now on."""
    if not value or len(value) < MIN_SECRET_LENGTH:
        return
    global _remembered_values
    forms = {value, quote_plus(value), quote(value, safe=""), json.dumps(value)[1:-1]}
    forms.add(repr(value)[1:-1])
    with _lock:
        added = False
        for form in forms:
            if form in _remembered:
                _remembered.move_to_end(form)
                continue
            _remembered[form] = None
            added = True
        while len(_remembered) > MAX_REMEMBERED:
            _remembered.popitem(last=False)
            added = True
        if added:
            _remembered_values = tuple(sorted(_remembered, key=len, reverse=True))


def forget_secrets() -> None:
    """Forget every remembered value (tests)."""
    global _remembered_values
    with _lock:
        _remembered.clear()
        _remembered_values = ()


def redact(text: str) -> str:
    """``text`` with every secret shape and remembered value replaced by ``[REDACTED]``."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    for value in _remembered_values:
        if value in text:
            text = text.replace(value, REDACTED)
    return text


_exception_formatter = logging.Formatter()


class RedactSecrets(logging.Filter):
    """A handler filter that rewrites each record it sees with :func:`redact`; never drops one.

    Installed on handlers (``LOGGING["handlers"][…]["filters"]``), not on loggers: a logger's
    filters see only records logged to that very logger, a handler's see every record that
    propagates to it, from any library's logger.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_secrets_redacted", False):
            return True
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: keep what there is, redacted, not a crash
            message = f"{record.msg!s} {record.args!r}"
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = _exception_formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        record._secrets_redacted = True
        return True
