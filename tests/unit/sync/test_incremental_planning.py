"""Incremental planning (docs/performance.md, "Incremental planning"): which links a page of
changes concerns, and a harness run that plans just those keys and checks them against the
whole plan (the state machine does the same over random histories)."""

from __future__ import annotations

import datetime as dt

from exchange_ext.backends.memory import MemoryBackend
from exchange_ext.sync.records import CalendarRecord, ExchangeView, PsaItem, PsaTag
from exchange_ext.sync.scope import touched_keys
from tests import clock
from tests.unit.sync.factories import INSTALLATION, OPTIONS, calendar, foreign, key, linked, ours
from tests.unit.sync.harness import SyncHarness

MAILBOX = "tech@example.test"


def test_a_page_touches_the_links_of_its_items_deletions_series_and_uids_and_our_tags():
    by_id = linked(key(1), calendar("A"), exchange_id="ex1")
    by_uid = linked(key(2), calendar("B"), exchange_id="old-id", ical_uid="uid-2")
    occurrence = linked(key(3), calendar("C"), exchange_id="master|20270101T090000Z")
    deleted = linked(key(4), calendar("D"), exchange_id="ex4")
    untouched = linked(key(5), calendar("E"), exchange_id="ex5", ical_uid="uid-5")
    view = ExchangeView(
        items=(
            foreign(calendar("A2"), exchange_id="ex1"),
            foreign(calendar("B"), exchange_id="new-id", ical_uid="uid-2"),
            ours(key(6), calendar("F"), exchange_id="ex6"),
        ),
        deleted=frozenset({"master", "ex4"}),
    )
    links = [by_id, by_uid, occurrence, deleted, untouched]
    assert touched_keys(links, view, OPTIONS) == {key(1), key(2), key(3), key(4), key(6)}


def test_another_installations_tag_names_no_key():
    item = foreign(calendar("X"), exchange_id="ex7", psa_tag=PsaTag("elsewhere", key(7)))
    assert touched_keys([], ExchangeView(items=(item,)), OPTIONS) == set()
    assert INSTALLATION != "elsewhere"


def test_a_quiet_page_touches_nothing():
    links = [linked(key(n), calendar(str(n)), exchange_id=f"ex{n}") for n in range(50)]
    assert touched_keys(links, ExchangeView(), OPTIONS) == set()


def test_after_a_psa_edit_the_next_run_plans_that_key_alone_and_agrees_with_the_whole_plan():
    now = clock.now()
    harness = SyncHarness(MemoryBackend([MAILBOX], page_size=4), MAILBOX, OPTIONS)
    for n in range(6):
        start = now + dt.timedelta(days=1 + n)
        record = CalendarRecord(f"Visit {n}", "", start, start + dt.timedelta(hours=1))
        harness.psa.add(PsaItem(harness.psa.new_key(key().kind), record))
    harness.run(now)  # a full read: the whole plan, six creates
    assert harness.incremental_checks == 0
    quiet = harness.run(now)  # our creates echoed back, page by page: each page checked
    checked = harness.incremental_checks
    assert quiet.ops == () and checked > 0
    edited = sorted(harness.psa.items)[2]
    item = harness.psa.items[edited]
    assert isinstance(item.record, CalendarRecord)
    harness.psa.add(PsaItem(edited, calendar("Visit 2 (moved)", start=item.record.start)))
    run = harness.run(now)
    assert harness.incremental_checks > checked
    assert [type(op).__name__ for op in run.ops] == ["UpdateInExchange"]
    assert {op.key for op in run.ops} == {edited}


def test_a_full_read_over_pages_plans_the_pages_between_its_first_and_last_by_their_keys():
    now = clock.now()
    backend = MemoryBackend([MAILBOX], page_size=4)
    harness = SyncHarness(backend, MAILBOX, OPTIONS)
    for n in range(10):  # three pages: whole, by keys (checked against whole), whole
        start = now + dt.timedelta(days=1 + n % 5, hours=n)
        backend.put(MAILBOX, CalendarRecord(f"Visit {n}", "", start, start + dt.timedelta(hours=1)))
    first = harness.run(now)
    assert [type(op).__name__ for op in first.ops] == ["CreateInPsa"] * 10
    assert harness.incremental_checks == 1 and not harness.full_seen
    harness.drop_states()  # read in full again: every item linked, nothing to do
    renamed = backend.reidentify(MAILBOX)  # and under new ids: re-identified on every page
    again = harness.run(now)
    assert harness.incremental_checks == 2
    assert [type(op).__name__ for op in again.ops] == ["Relink"] * 10
    assert {link.exchange_id for link in harness.links.values()} == set(renamed.values())
    assert harness.run(now).ops == ()
