"""Content digests of records: what "changed" means.

A digest covers exactly the synced fields of a record, per field group, in a canonical form
that is stable across runs, processes and Python versions: JSON with sorted keys, datetimes as
UTC ISO-8601, text with the normalizations Exchange applies itself (CRLF → LF, trailing
whitespace per line and at the end dropped), so a value Exchange hands back reshaped is not
mistaken for a user edit. ``time_zone`` is not covered: the instants are what must agree.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import fields
from enum import Enum

from exchange_ext.sync.records import CalendarRecord, Digest, Record

# The fields that make up the TIMES group; every other synced field is a DETAIL.
TIME_FIELDS = ("start", "end", "is_all_day")
_UNCOMPARED = frozenset({"time_zone"})


def digest_record(record: Record) -> Digest:
    """Return the per-group digest of ``record``. Never raises for a valid record."""
    values = canonical_values(record)
    times = {name: value for name, value in values.items() if name in TIME_FIELDS}
    details = {name: value for name, value in values.items() if name not in TIME_FIELDS}
    return Digest(_hash(type(record).__name__, times), _hash(type(record).__name__, details))


def canonical_values(record: Record) -> dict[str, object]:
    """The compared fields of ``record`` in canonical, JSON-ready form."""
    return {
        f.name: canonical_value(getattr(record, f.name))
        for f in fields(record)
        if f.name not in _UNCOMPARED
    }


def canonical_value(value: object) -> object:
    """One field value in canonical form (see the module docstring)."""
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).replace(microsecond=0).isoformat()
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, str):
        return normalize_text(value)
    if isinstance(value, tuple):
        return [canonical_value(item) for item in value]
    return value


def normalize_text(text: str) -> str:
    """Text as Exchange stores it: LF line endings, no trailing whitespace per line or at end."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "\n".join(line.rstrip() for line in lines).rstrip()


def _hash(record_type: str, values: dict[str, object]) -> str:
    payload = json.dumps([record_type, values], sort_keys=True, ensure_ascii=True)
    return hashlib.sha256(payload.encode("ascii")).hexdigest()


def times_equal(a: CalendarRecord, b: CalendarRecord) -> bool:
    """Whether two calendar records agree on their times (instants and all-day flag)."""
    return digest_record(a).times == digest_record(b).times
