"""Lists of names sorted as readers expect (docs/i18n.md, "Sorted lists").

``order_by(collated("name"), "pk")`` sorts by the Unicode Collation Algorithm instead of by
code point: letters with accents and umlauts sort with their base letter ("Apfel", "Ärzte",
"Bäckerei", "Brightwater", "Zeta"), case only breaks ties.

- PostgreSQL: ``COLLATE "und-x-icu"``, ICU's root collation (PostgreSQL built with ICU, as
  Debian's is).
- SQLite: ``COLLATE psa_unicode``, a collation this module registers on each connection (on the
  ``connection_created`` signal, and again when a query needs it on a connection opened before
  this module was imported) that compares the Unicode Collation Algorithm keys of ``pyuca``.
- Other databases: the plain order of the column.

One root collation serves every language: it already puts umlauts with their base letter, as
German dictionaries do, and orders Chinese and Japanese names by code point.
"""

from __future__ import annotations

import functools
from typing import Any

from django.db.backends.signals import connection_created
from django.db.models import F
from django.db.models.functions import Collate

POSTGRES_COLLATION = "und-x-icu"
SQLITE_COLLATION = "psa_unicode"


@functools.cache
def _collator() -> Any:
    from pyuca import Collator  # loads the collation table (~0.2 s): only when first needed

    return Collator()


@functools.lru_cache(maxsize=16384)
def sort_key(text: str) -> tuple[tuple[int, ...], str]:
    """The UCA key of ``text``, then the text itself so that different texts never tie."""
    return tuple(_collator().sort_key(text)), text


def compare(left: str | None, right: str | None) -> int:
    """SQLite collation callback: negative, zero or positive as ``left`` sorts before, with
    or after ``right``."""
    a, b = sort_key(left or ""), sort_key(right or "")
    return (a > b) - (a < b)


def register(connection: Any) -> None:
    """Registers ``psa_unicode`` on a Django SQLite connection (once per raw connection)."""
    if connection.vendor != "sqlite":
        return
    connection.ensure_connection()
    raw = connection.connection
    if getattr(connection, "_psa_unicode_on", None) is raw:
        return
    # The table loads here, outside any SQLite call: loading it inside the collation callback
    # (SQLite holding its lock, another thread of the same test process waiting on it) can
    # deadlock.
    _collator()
    raw.create_collation(SQLITE_COLLATION, compare)
    connection._psa_unicode_on = raw


def _on_connection_created(sender: Any, connection: Any, **kwargs: Any) -> None:
    register(connection)


connection_created.connect(_on_connection_created, dispatch_uid="psa.i18n.collation")


class Collated(Collate):
    """A text expression ordered by the Unicode Collation Algorithm (see the module)."""

    def __init__(self, expression: Any) -> None:
        super().__init__(expression, POSTGRES_COLLATION)

    def as_sql(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:
        # Databases without a Unicode collation we know of: the column's own order.
        return compiler.compile(self.get_source_expressions()[0])

    def as_postgresql(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:
        return super().as_sql(compiler, connection, **extra_context)

    def as_sqlite(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:
        register(connection)
        extra_context["collation"] = connection.ops.quote_name(SQLITE_COLLATION)
        return super().as_sql(compiler, connection, **extra_context)


def collated(field_name: str) -> Collated:
    """``field_name`` (a text field, may span relations) in the readers' order, for
    ``order_by``: ``.order_by(collated("last_name"), collated("first_name"), "pk")``; use
    ``collated(...).desc()`` for the reverse."""
    return Collated(F(field_name))
