"""Whole runs through the test harness and a MemoryBackend: quiescence, crashes, expiry, series."""

from __future__ import annotations

import dataclasses

import pytest

from exchange_ext.backends.base import FolderKind, Unavailable
from exchange_ext.backends.memory import MemoryBackend
from exchange_ext.sync.records import ItemKind, PsaKey, occurrence_id
from tests import clock
from tests.unit.sync.factories import OPTIONS, at, calendar, contact, key, psa_item
from tests.unit.sync.harness import Crash, SyncHarness

MAILBOX = "tech@example.test"


def harness(page_size: int = 3) -> SyncHarness:
    backend = MemoryBackend([MAILBOX], page_size=page_size)
    h = SyncHarness(backend, MAILBOX, OPTIONS)
    for n in range(1, 6):
        h.psa.add(psa_item(key(n), calendar(f"Visit {n}", days=n)))
    h.psa.add(psa_item(key(6, ItemKind.TODO), calendar("Call back", days=2)))
    h.psa.add(psa_item(key(7, ItemKind.CONTACT), contact()))
    backend.put(MAILBOX, calendar("Dentist", days=3))
    return h


def ours_in_exchange(h: SyncHarness) -> list[PsaKey]:
    return sorted(i.psa_tag.key for i in h.backend.items_of(MAILBOX) if i.psa_tag)


def test_second_run_without_edits_plans_nothing() -> None:
    h = harness()
    first = h.run(clock.now())
    assert first.counts == {"CreateInExchange": 7, "CreateInPsa": 1}
    writes = h.backend.writes()
    assert h.run(clock.now()).ops == ()
    assert h.backend.writes() == writes


def test_expired_state_triggers_a_full_reread_that_adopts_instead_of_duplicating() -> None:
    h = harness()
    h.run(clock.now())
    h.backend.expire_states()
    with pytest.raises(Exception, match="expired"):
        h.run(clock.now())
    h.states.clear()  # the engine's reaction to SyncStateExpired
    assert h.run(clock.now()).writes == ()
    assert len(ours_in_exchange(h)) == 7
    assert h.run(clock.now()).ops == ()


def test_lost_links_are_rebuilt_from_tags_with_zero_writes() -> None:
    h = harness()
    h.run(clock.now())
    h.links.clear()
    h.states.clear()
    result = h.run(clock.now())
    assert result.writes == ()
    assert result.counts == {"LinkItems": 8}


@pytest.mark.parametrize("crash_at", range(8))
def test_a_crash_at_any_op_then_a_rerun_converges_without_duplicates(crash_at: int) -> None:
    h = harness()
    with pytest.raises(Crash):
        h.run(clock.now(), crash_at=crash_at)
    h.run(clock.now())
    assert ours_in_exchange(h) == sorted(k for k in h.psa.items if k.psa_id <= 7)
    assert len(h.psa.items) == 8  # the Dentist import exists once
    assert h.run(clock.now()).ops == ()


def test_a_failed_page_never_advances_the_sync_state() -> None:
    h = harness(page_size=2)
    h.run(clock.now())
    state = dict(h.states)
    for n in range(5):
        h.backend.put(MAILBOX, calendar(f"New {n}", days=4))
    # The second page of changes fails (a reset connection, or a truncated response).
    h.backend.fail_next(Unavailable("truncated"), operations=["read_changes"], after=1)
    with pytest.raises(Unavailable):
        h.run(clock.now())
    # The first page was committed with its state (each page is); the failed page's state was
    # never stored, so the next run reads that page again.
    assert h.states != state
    h.run(clock.now())
    assert sorted(i.record.subject for i in h.psa.items.values() if i.origin == "exchange") == [
        "Dentist", "New 0", "New 1", "New 2", "New 3", "New 4",
    ]  # fmt: skip
    assert h.run(clock.now()).ops == ()


def test_recurring_series_with_a_modified_and_a_deleted_occurrence() -> None:
    h = SyncHarness(MemoryBackend([MAILBOX]), MAILBOX, OPTIONS)
    series = h.backend.put_series(MAILBOX, calendar("Stand-up"), [at(d) for d in range(-1, 20)])
    h.run(clock.now())
    imported = {i.record.start for i in h.psa.items.values()}
    assert imported == {at(d) for d in range(-1, 14)}  # up to recurring_days ahead
    h.backend.edit(
        MAILBOX, occurrence_id(series, at(3)), calendar("Stand-up (long)", days=3, hours=2)
    )
    h.backend.remove(MAILBOX, occurrence_id(series, at(5)))
    h.run(clock.now())
    by_start = {i.record.start: i.record for i in h.psa.items.values()}
    assert at(5) not in by_start
    assert by_start[at(3)].subject == "Stand-up (long)"
    assert h.run(clock.now()).ops == ()


def test_server_side_change_key_bumps_are_absorbed() -> None:
    h = harness()
    h.run(clock.now())
    for item in h.backend.items_of(MAILBOX, FolderKind.CALENDAR)[:3]:
        h.backend.bump_change_key(MAILBOX, item.exchange_id)
    assert h.run(clock.now()).writes == ()
    assert h.run(clock.now()).ops == ()


def test_steady_state_sends_no_meeting_messages() -> None:
    h = harness()
    for _ in range(3):
        h.run(clock.now())
    assert h.backend.meeting_messages_sent == 0


def test_item_ageing_out_of_the_window_is_forgotten_on_both_sides() -> None:
    h = harness()
    h.run(clock.now())
    result = h.run(at(OPTIONS.past_days + 3))  # the visits of days 1 and 2 and the to-do aged out
    assert result.counts == {"Forget": 3}
    assert len(ours_in_exchange(h)) == 7


def test_a_rejected_item_does_not_stop_the_others_and_is_retried_next_run() -> None:
    h = harness()
    h.backend.reject_if = lambda record: (
        "too large" if getattr(record, "subject", "") == "Visit 2" else None
    )
    h.run(clock.now())
    assert len(h.item_errors) == 1
    assert key(2) not in h.links and key(3) in h.links
    h.backend.reject_if = None
    assert h.run(clock.now()).counts == {"CreateInExchange": 1}
    assert h.run(clock.now()).ops == ()


def test_an_outlook_edit_between_read_and_write_is_not_overwritten_and_converges() -> None:
    h = harness()
    h.run(clock.now())
    visit = h.psa.items[key(1)]
    h.psa.add(
        dataclasses.replace(visit, record=dataclasses.replace(visit.record, body="PSA notes"))
    )
    exchange_id = h.links[key(1)].exchange_id
    moved = dataclasses.replace(visit.record, start=at(1, 3), end=at(1, 4))
    h.before_apply = lambda: h.backend.edit(MAILBOX, exchange_id, moved)
    h.run(clock.now())
    # (Every page plans the PSA edit again until the page with the Outlook edit is read.)
    assert {type(r.error).__name__ for r in h.item_errors} == {"ConflictError"}
    h.before_apply = None
    h.run(clock.now())  # reads the Outlook edit: times flow back, the PSA notes flow out
    [item] = [i for i in h.backend.items_of(MAILBOX) if i.exchange_id == exchange_id]
    assert (item.record.start, item.record.body) == (at(1, 3), "PSA notes")
    assert h.psa.items[key(1)].record.start == at(1, 3)
    assert h.run(clock.now()).ops == ()
