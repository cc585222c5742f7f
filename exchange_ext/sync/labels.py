"""The words the extension writes into Exchange items, as data (SPEC §1, "Languages").

The pure core builds the subjects and bodies of exported service calls and to-dos
(:mod:`exchange_ext.sync.mapping`) but knows no Django, so no translation catalogue: the engine
translates these patterns into the resource's language (:mod:`exchange_ext.engine.labels`) and
hands them in through :class:`~exchange_ext.sync.records.SyncOptions`. The defaults are the
English text, so a record built without labels reads as it always did.

Each pattern takes named ``%(…)s`` placeholders (the form translators know from gettext); a
value is substituted once and never read as a pattern itself.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ItemLabels:
    """Translated patterns for the text of exported items (English by default)."""

    #: The subject of a service call's copy; ``account``.
    service_call_subject: str = "Service call: %(account)s"
    #: A to-do's subject; ``action`` (its action type) and ``summary`` (first description line).
    todo_subject: str = "%(action)s: %(summary)s"
    #: Body lines; ``name``, ``phone``, ``number`` and ``title``, ``contact``.
    account_line: str = "Account: %(name)s"
    phone_line: str = "Phone: %(phone)s"
    ticket_line: str = "Ticket %(number)s: %(title)s"
    contact_line: str = "Contact: %(contact)s"
    #: The deep link closing every exported body; ``url``.
    open_in_psa: str = "Open in PSA: %(url)s"

    def render(self, label: str, /, **values: str) -> str:
        """The pattern of field ``label`` with ``values`` put in; a broken translation (an
        unknown placeholder, a stray ``%``) falls back to the English pattern."""
        try:
            return str(getattr(self, label)) % values
        except (KeyError, ValueError, TypeError):
            return str(getattr(ENGLISH, label)) % values


#: The English labels (what a record built without labels carries).
ENGLISH = ItemLabels()
