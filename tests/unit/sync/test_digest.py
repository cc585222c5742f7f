"""Digests: stable across processes, blind to what Exchange reshapes, per field group."""

from __future__ import annotations

import dataclasses
import datetime as dt
import subprocess
import sys
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange_ext.sync.digest import digest_record, normalize_text
from exchange_ext.sync.records import CalendarRecord, Digest, FieldGroup
from tests.unit.sync.factories import calendar, contact


@pytest.fixture
def record() -> CalendarRecord:
    """A visit tomorrow (from the pinned clock)."""
    return calendar("Visit", body="Line 1\nLine 2", location="Site")


def test_digest_is_a_pair_of_sha256_hex_strings_that_round_trips_as_text(
    record: CalendarRecord,
) -> None:
    digest = digest_record(record)
    assert len(digest.times) == len(digest.details) == 64
    assert Digest.parse(str(digest)) == digest


def test_digest_is_stable_across_processes(record: CalendarRecord) -> None:
    # The other processes build the same record from the same instant (they have no test clock).
    code = (
        "import datetime as dt;"
        "from tests.unit.sync.factories import calendar;"
        "from exchange_ext.sync.digest import digest_record;"
        f"start = dt.datetime.fromisoformat('{record.start.isoformat()}');"
        "print(digest_record(calendar('Visit', body='Line 1\\nLine 2', location='Site',"
        " start=start)))"
    )
    env_hash_seeds = ["1", "2"]
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True,
            env={"PYTHONHASHSEED": seed, "PYTHONPATH": "."},
        ).stdout.strip()
        for seed in env_hash_seeds
    }  # fmt: skip
    assert outputs == {str(digest_record(record))}


def test_same_instant_in_another_zone_has_the_same_digest(record: CalendarRecord) -> None:
    paris = ZoneInfo("Europe/Paris")
    moved = dataclasses.replace(
        record, start=record.start.astimezone(paris), end=record.end.astimezone(paris),
        time_zone="Europe/Paris",
    )  # fmt: skip
    assert digest_record(moved) == digest_record(record)


def test_line_endings_and_trailing_whitespace_do_not_change_the_digest(
    record: CalendarRecord,
) -> None:
    reshaped = dataclasses.replace(record, body="Line 1  \r\nLine 2\r\n\r\n")
    assert digest_record(reshaped) == digest_record(record)


def test_sub_second_precision_does_not_change_the_digest(record: CalendarRecord) -> None:
    reshaped = dataclasses.replace(record, start=record.start + dt.timedelta(microseconds=5))
    assert digest_record(reshaped) == digest_record(record)


def test_a_time_change_moves_only_the_times_part(record: CalendarRecord) -> None:
    moved = dataclasses.replace(record, end=record.end + dt.timedelta(hours=1))
    assert digest_record(moved).changed_groups(digest_record(record)) == {FieldGroup.TIMES}


def test_a_subject_change_moves_only_the_details_part(record: CalendarRecord) -> None:
    renamed = dataclasses.replace(record, subject="Other")
    assert digest_record(renamed).changed_groups(digest_record(record)) == {FieldGroup.DETAILS}


def test_contact_digest_covers_every_field() -> None:
    base = contact()
    for field in dataclasses.fields(base):
        value = ("x@y.test",) if field.name == "emails" else "changed"
        changed = dataclasses.replace(base, **{field.name: value})
        assert digest_record(changed) != digest_record(base), field.name


@settings(max_examples=100, deadline=None)
@given(st.text())
def test_normalize_text_is_idempotent(text: str) -> None:
    assert normalize_text(normalize_text(text)) == normalize_text(text)
