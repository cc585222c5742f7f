"""Typed readers for settings that come from the environment.

Every reader takes the variable name and an embedded default, so the product runs with no
environment at all (SQLite, ORM broker, console email) and is configured for production by
setting variables only.
"""

from __future__ import annotations

import os

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
