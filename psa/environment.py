"""Typed readers for settings that come from the environment.

Every reader takes the variable name and an embedded default, so the product runs with no
environment at all (SQLite, ORM broker, console email) and is configured for production by
setting variables only.
"""

from __future__ import annotations

import ipaddress
import os
import re

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    """Return the variable's value, or ``default`` when it is unset."""
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    """Parse a boolean flag; anything but the usual spellings is a configuration error."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {raw!r}")


def env_int(name: str, default: int) -> int:
    """Parse an integer; a non-integer value is a configuration error naming the variable."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {raw!r}") from None


def env_list(name: str, default: str = "", separator: str = ",") -> list[str]:
    """Split a separated list, dropping blanks: ``"a, b,,c"`` → ``["a", "b", "c"]``."""
    raw = os.environ.get(name, default)
    return [part.strip() for part in raw.split(separator) if part.strip()]


def env_networks(name: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """Parse comma-separated networks in CIDR notation (``127.0.0.0/8,::1/128``); empty when
    unset. A malformed entry, or one with host bits set (``127.0.0.1/8``), is a configuration
    error naming the variable and the entry."""
    networks = []
    for part in env_list(name):
        try:
            networks.append(ipaddress.ip_network(part))
        except ValueError as error:
            raise ImproperlyConfigured(
                f"{name} must be comma-separated networks in CIDR notation, e.g. "
                f"127.0.0.0/8,::1/128; {part!r} is not one ({error})"
            ) from None
    return tuple(networks)


# How Django names a request header in ``request.META``: ``X-Forwarded-For`` → HTTP_X_FORWARDED_FOR.
_META_KEY = re.compile(r"[A-Z][A-Z0-9_]*")


def env_meta_key(name: str) -> str:
    """A ``request.META`` key such as ``HTTP_X_FORWARDED_FOR``, or ``""`` when unset."""
    raw = os.environ.get(name, "").strip()
    if raw and not _META_KEY.fullmatch(raw):
        raise ImproperlyConfigured(
            f"{name} must name a request header as Django's request.META does, "
            f"e.g. HTTP_X_FORWARDED_FOR, not {raw!r}"
        )
    return raw


def env_header_value(name: str) -> tuple[str, str] | None:
    """Parse ``HEADER,VALUE`` (``HTTP_X_FORWARDED_PROTO,https``) into a pair; None when unset."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    parts = [part.strip() for part in raw.split(",")]
    header, value = parts if len(parts) == 2 else ("", "")
    if not (header.startswith("HTTP_") and _META_KEY.fullmatch(header) and value):
        raise ImproperlyConfigured(
            f"{name} must be HEADER,VALUE with the header as Django's request.META names it, "
            f"e.g. HTTP_X_FORWARDED_PROTO,https, not {raw!r}"
        )
    return header, value
