"""Validation of the General tab's values, shared by forms and services (README,
"Configuring the MS Exchange extension").

Every function either returns the normalized value or raises
:class:`django.core.exceptions.ValidationError` with a message written for the admin.
"""

from __future__ import annotations

import ipaddress
import os
import re

import idna
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.validators import EmailValidator
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

MAX_PASSWORD_LENGTH = 128
ALLOWED_PORTS_ENV = "EXCHANGE_ALLOWED_PORTS"
DEFAULT_ALLOWED_PORTS = (443, 2610)

PASSWORD_TOO_LONG_MESSAGE = _(
    "This password is %(length)d characters long; Exchange accepts at most %(limit)d here."
)
HOST_ONLY_MESSAGE = _(
    "Enter the host name only, e.g. mail.example.com — without https:// or a path."
)
IP_LITERAL_MESSAGE = _(
    "IP addresses are not allowed: enter the server's host name, which must match its TLS "
    "certificate."
)
# Characters that mean the admin pasted a URL (scheme, path, query, fragment, userinfo).
_URL_PARTS = re.compile(r"[/?#@\\]")
_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
# WHATWG URL: a host whose last label is a number (decimal, or 0x hex) is parsed as IPv4, and
# inet_aton-style resolvers accept 127.1, 0x7f.0.0.1 or 2130706433 — none may pass as a name.
_NUMERIC_LABEL = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)$")


def validate_password_length(value: str) -> None:
    """Refuse a password longer than :data:`MAX_PASSWORD_LENGTH`, saying so.

    The limit is checked here, on the server, and never as an HTML ``maxlength``: a browser
    cuts a longer paste silently, and Exchange then refuses the cut password as a wrong one.
    """
    if len(value) > MAX_PASSWORD_LENGTH:
        raise ValidationError(
            PASSWORD_TOO_LONG_MESSAGE,
            code="password_too_long",
            params={"length": len(value), "limit": MAX_PASSWORD_LENGTH},
        )


def allowed_ports() -> list[int]:
    """The ports a server address may name: ``EXCHANGE_ALLOWED_PORTS`` (read now) or 443, 2610."""
    raw = os.environ.get(ALLOWED_PORTS_ENV, "").strip()
    if not raw:
        return list(DEFAULT_ALLOWED_PORTS)
    try:
        ports = [int(part) for part in raw.split(",") if part.strip()]
    except ValueError:
        raise ImproperlyConfigured(
            f"{ALLOWED_PORTS_ENV} must be comma-separated port numbers, e.g. 443,2610"
        ) from None
    if not ports or any(not 0 < port < 65536 for port in ports):
        raise ImproperlyConfigured(f"{ALLOWED_PORTS_ENV} must list ports between 1 and 65535")
    return ports


def validate_server_address(value: str) -> str:
    """Return ``host[:port]`` with the host lower-cased (IDNA A-label), or raise ValidationError.

    Rejects schemes, paths, queries, credentials and whitespace, IP literals of every spelling
    (v4, v6, bracketed v6, and numeric forms resolvers read as IPv4), invalid DNS names, and
    ports outside :func:`allowed_ports`.
    """
    value = (value or "").strip()
    if not value:
        raise ValidationError(_("Enter the Exchange server's host name."), code="required")
    if "://" in value or _URL_PARTS.search(value) or any(ch.isspace() for ch in value):
        raise ValidationError(HOST_ONLY_MESSAGE, code="not_host")
    host, port = _split_port(value)
    _reject_ip_literal(host)
    normalized = _normalize_host_name(host)
    if port is None:
        return normalized
    _check_port(port)
    return f"{normalized}:{port}"


def _split_port(value: str) -> tuple[str, str | None]:
    if value.startswith("["):  # only IPv6 literals are bracketed
        raise ValidationError(IP_LITERAL_MESSAGE, code="ip_literal")
    if value.count(":") > 1:  # an unbracketed IPv6 literal
        _reject_ip_literal(value)
        raise ValidationError(HOST_ONLY_MESSAGE, code="not_host")
    host, sep, port = value.partition(":")
    return host, (port if sep else None)


def _reject_ip_literal(host: str) -> None:
    candidate = host.rstrip(".").lower()
    try:
        ipaddress.ip_address(candidate.split("%")[0])
    except ValueError:
        pass
    else:
        raise ValidationError(IP_LITERAL_MESSAGE, code="ip_literal")
    last_label = candidate.rsplit(".", 1)[-1]
    if candidate and _NUMERIC_LABEL.match(last_label):
        raise ValidationError(IP_LITERAL_MESSAGE, code="ip_literal")


def _normalize_host_name(host: str) -> str:
    invalid = ValidationError(
        _("Enter a valid host name, e.g. mail.example.com."), code="invalid_host"
    )
    host = host.lower().removesuffix(".")
    try:
        ascii_host = idna.encode(host, uts46=True).decode("ascii") if host else ""
    except idna.IDNAError:
        raise invalid from None
    if not ascii_host or len(ascii_host) > 253:
        raise invalid
    if not all(_LABEL.match(label) for label in ascii_host.split(".")):
        raise invalid
    _reject_ip_literal(ascii_host)
    return ascii_host


def _check_port(port: str) -> None:
    ports = allowed_ports()
    allowed = ", ".join(str(p) for p in ports)
    if not port.isdigit() or int(port) not in ports:
        raise ValidationError(
            _(
                "Port %(port)s is not allowed: use one of %(allowed)s "
                "(operators set the allowed ports with %(setting)s)."
            ),
            code="port",
            params={
                "port": port or gettext("(empty)"),
                "allowed": allowed,
                "setting": ALLOWED_PORTS_ENV,
            },
        )


def validate_notification_emails(value: str) -> list[str]:
    """Split a semicolon-separated list into validated addresses; blank gives ``[]``.

    Spaces and a trailing ``;`` are tolerated. CR, LF, NUL and other control characters,
    commas and anything else that is not one bare address per entry are refused, so nothing can
    inject a mail header. The error names the offending entries.
    """
    value = value or ""
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value.replace("\t", " ")):
        raise ValidationError(
            _("Line breaks and control characters are not allowed in the address list."),
            code="control",
        )
    entries = [entry.strip() for entry in value.split(";")]
    addresses = [entry for entry in entries if entry]
    if any("," in entry for entry in addresses):
        raise ValidationError(
            _("Separate addresses with semicolons, not commas: %(bad)s"),
            code="comma",
            params={"bad": "; ".join(a for a in addresses if "," in a)},
        )
    validator = EmailValidator()
    bad = [address for address in addresses if not _is_valid_email(validator, address)]
    if bad:
        raise ValidationError(
            _("Not a valid email address: %(bad)s"),
            code="invalid",
            params={"bad": "; ".join(bad)},
        )
    return addresses


def _is_valid_email(validator: EmailValidator, address: str) -> bool:
    if any(ch.isspace() or ch in '<>"()[]:' for ch in address):
        return False  # bare addresses only: no display names, quoted parts or literals
    try:
        validator(address)
    except ValidationError:
        return False
    return True


def validate_credentials_domain(username: str, domain: str) -> None:
    """Check that the login names its domain exactly once; errors are attached to ``domain``.

    The domain may come from the username (``DOMAIN\\user`` or ``user@domain``) or from the
    Domain field. Neither → "required"; both, naming different domains → "conflict". A UPN
    (``user@northwind.example``) agrees with ``northwind.example`` and with its first label
    ``NORTHWIND`` (the usual NetBIOS name).
    """
    username = (username or "").strip()
    domain = (domain or "").strip()
    if not username:
        return  # "username required" is the form's error, not this one
    carried = _domains_in_username(username)
    if not carried and not domain:
        raise ValidationError(
            {
                "domain": gettext(
                    "Enter the domain, or write the username as DOMAIN\\user or user@domain."
                )
            }
        )
    if carried and domain and domain.lower() not in carried:
        raise ValidationError(
            {
                "domain": gettext("The domain %(domain)s does not match the one in the username.")
                % {"domain": domain}
            }
        )


def _domains_in_username(username: str) -> set[str]:
    if "\\" in username:
        return {username.split("\\", 1)[0].lower()}
    if "@" in username:
        dns = username.rsplit("@", 1)[1].lower()
        return {dns, dns.split(".", 1)[0]}
    return set()
