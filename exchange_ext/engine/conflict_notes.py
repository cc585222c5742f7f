"""What a conflict log entry stores, so the run log can tell it in plain words (issue 15, item 4).

A conflict's :class:`~exchange_ext.models.SyncLogEntry` keeps, in its ``message``, the planner's
English reason on the first line (what the Django admin and plain listings show) and, on the
second, a JSON note: the contested field groups, the winning side and each side's values of
those groups when the conflict was found (times as ISO instants, the subject), plus the item's
title then (a snapshot: the item may be renamed or deleted later). Entries written before the
note existed hold the reason only; :func:`read_note` returns ``None`` for them and the reader
falls back to what it can derive (the key, the link's origin).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from exchange_ext.sync import ops as o
from exchange_ext.sync.records import CalendarRecord, ContactRecord, Record

#: Cut long subjects: the note must fit the entry (messages are cut at 2000 characters).
MAX_TEXT = 200


@dataclass(frozen=True)
class SideValues:
    """One side's values of the contested groups (empty strings: not contested or unknown)."""

    start: str = ""  # ISO 8601 instants
    end: str = ""
    all_day: bool = False
    subject: str = ""


@dataclass(frozen=True)
class ConflictNote:
    """The structured part of a conflict entry."""

    fields: tuple[str, ...]
    winner: str  # "psa" or "exchange"
    title: str = ""
    psa: SideValues = field(default_factory=SideValues)
    exchange: SideValues = field(default_factory=SideValues)


def conflict_message(op: o.RecordConflict) -> str:
    """The entry's message: the reason, then the JSON note (see the module docstring)."""
    groups = sorted(group.value for group in op.fields)
    note = {
        "fields": groups,
        "winner": op.winner.value,
        "title": _title(op.psa) or _title(op.exchange),
        "psa": _values(op.psa, groups),
        "exchange": _values(op.exchange, groups),
    }
    return f"{op.reason}\n{json.dumps(note, ensure_ascii=False)}"


def read_note(message: str) -> ConflictNote | None:
    """The note of a conflict entry's message; ``None`` for a reason-only (older) entry or a
    note that does not parse (cut short, edited by hand)."""
    _, _, rest = message.partition("\n")
    try:
        data = json.loads(rest)
        return ConflictNote(
            fields=tuple(str(name) for name in data["fields"]),
            winner=str(data["winner"]),
            title=str(data.get("title", "")),
            psa=SideValues(**_known(data.get("psa") or {})),
            exchange=SideValues(**_known(data.get("exchange") or {})),
        )
    except (ValueError, KeyError, TypeError):
        return None


def reason_of(message: str) -> str:
    """The entry's first line: the reason in English."""
    return message.partition("\n")[0]


def _title(record: Record | None) -> str:
    if isinstance(record, CalendarRecord):
        return record.subject[:MAX_TEXT]
    if isinstance(record, ContactRecord):
        return f"{record.given_name} {record.surname}".strip()[:MAX_TEXT]
    return ""


def _values(record: Record | None, groups: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if isinstance(record, CalendarRecord):
        if "times" in groups:
            values.update(
                start=record.start.isoformat(), end=record.end.isoformat(),
                all_day=record.is_all_day,
            )  # fmt: skip
        if "details" in groups:
            values["subject"] = record.subject[:MAX_TEXT]
    elif isinstance(record, ContactRecord) and "details" in groups:
        values["subject"] = _title(record)
    return values


def _known(values: dict[str, Any]) -> dict[str, Any]:
    names = SideValues.__dataclass_fields__
    return {name: value for name, value in values.items() if name in names}
