"""A mailbox move's two decisions (docs/sync-rules.md, "Mailbox moves"): which items leave the
old mailbox, and what the links become on a complete read of the new one."""

from __future__ import annotations

import dataclasses

from exchange_ext.sync.moves import links_after_move, old_mailbox_deletions
from exchange_ext.sync.records import CalendarItemType, LinkState, PsaTag, Side
from tests.unit.sync.factories import (
    INSTALLATION,
    OPTIONS,
    at,
    calendar,
    foreign,
    key,
    linked,
    ours,
)


def imported(n: int, exchange_id: str, uid: str, **changes: object):  # type: ignore[no-untyped-def]
    return linked(key(n), calendar(), exchange_id=exchange_id, origin=Side.EXCHANGE,
                  ical_uid=uid, **changes)  # fmt: skip


def test_only_our_tagged_items_leave_the_old_mailbox_without_a_change_key() -> None:
    items = [
        ours(key(1), calendar(), exchange_id="old-1"),
        foreign(calendar(), exchange_id="old-2", ical_uid="U2"),  # the user's
        foreign(calendar(), exchange_id="old-3", psa_tag=PsaTag("another-psa", key(3))),
    ]
    [op] = old_mailbox_deletions(items, OPTIONS)
    assert (op.key, op.exchange_id, op.change_key) == (key(1), "old-1", "")
    assert OPTIONS.installation_id == INSTALLATION


def test_imported_links_follow_their_uid_into_the_new_mailbox_or_are_dropped() -> None:
    baseline = {
        key(1): imported(1, "old-1", "U1"),
        key(2): imported(2, "old-2", "U2", state=LinkState.UNLINKED),
        key(3): imported(3, "old-3", "U3"),  # not in the new mailbox
        key(4): imported(4, "old-4", ""),  # stored before UIDs: its content finds it later
    }
    new = [
        foreign(calendar(), exchange_id="new-1", change_key="n1", ical_uid="U1"),
        foreign(calendar(), exchange_id="new-2", change_key="n2", ical_uid="U2"),
    ]
    changes = links_after_move(baseline, new)
    assert changes[key(1)] == dataclasses.replace(
        baseline[key(1)], exchange_id="new-1", change_key="n1"
    )
    assert changes[key(2)].exchange_id == "new-2"  # unlinked stays unlinked: never imported
    assert changes[key(2)].state is LinkState.UNLINKED
    assert (changes[key(3)], changes[key(4)]) == (None, None)


def test_occurrences_follow_their_series_uid_and_original_start() -> None:
    first, second = at(1), at(2)
    baseline = {
        key(n): imported(n, f"old-M|{n}", "SERIES", original_start=start)
        for n, start in ((1, first), (2, second))
    }
    occurrence = foreign(calendar(start=second), exchange_id="new-M|2", ical_uid="SERIES",
                         original_start=second,
                         calendar_item_type=CalendarItemType.OCCURRENCE)  # fmt: skip
    master = foreign(calendar(start=first), exchange_id="new-M", ical_uid="SERIES",
                     calendar_item_type=CalendarItemType.RECURRING_MASTER)  # fmt: skip
    changes = links_after_move(baseline, [master, occurrence])
    assert changes[key(1)] is None
    assert changes[key(2)].exchange_id == "new-M|2"


def test_psa_items_links_are_dropped_and_a_deleted_copy_stays_deleted_without_an_id() -> None:
    baseline = {
        key(1): linked(key(1), calendar(), exchange_id="old-1"),
        key(2): linked(key(2), calendar(), exchange_id="old-2", state=LinkState.EXCHANGE_DELETED),
    }
    tagged_copy = ours(key(1), calendar(), exchange_id="new-1")
    changes = links_after_move(baseline, [tagged_copy])
    assert changes[key(1)] is None  # the run's full read adopts the tagged copy
    assert changes[key(2)] == dataclasses.replace(baseline[key(2)], exchange_id="", change_key="")
