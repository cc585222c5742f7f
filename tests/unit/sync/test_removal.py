"""What Remove synced items deletes, as a pure decision (docs/sync-rules.md, "Removing synced
items"): only a linked copy of PSA origin that still carries this installation's tag for its
very PSA item."""

from __future__ import annotations

import datetime as dt

from exchange_ext.sync.records import (
    EMPTY_DIGEST,
    CalendarRecord,
    ExchangeItem,
    ItemKind,
    Link,
    LinkState,
    PsaKey,
    PsaTag,
    Side,
)
from exchange_ext.sync.removal import Removal, plan_removal, removable_links

US = "4f1d2c3b-0000-4000-8000-000000000001"
THEM = "9a8b7c6d-0000-4000-8000-000000000002"
START = dt.datetime(2030, 1, 7, 9, tzinfo=dt.UTC)
RECORD = CalendarRecord("Visit", "", START, START + dt.timedelta(hours=1))


def key(kind: ItemKind, psa_id: int) -> PsaKey:
    return PsaKey(kind, psa_id, 3 if kind is ItemKind.SERVICE_CALL else None)


def link(kind: ItemKind, psa_id: int, **fields) -> Link:
    values = {"exchange_id": f"AAMk{psa_id}", "change_key": "CK-old", **fields}
    return Link(key(kind, psa_id), psa_digest=EMPTY_DIGEST, exchange_digest=EMPTY_DIGEST, **values)


def item(exchange_id: str, tag: PsaTag | None, change_key: str = "CK-now") -> ExchangeItem:
    return ExchangeItem(exchange_id, change_key, RECORD, psa_tag=tag)


def test_only_linked_copies_of_psa_origin_of_the_chosen_kinds_are_candidates() -> None:
    links = [
        link(ItemKind.TODO, 4),
        link(ItemKind.APPOINTMENT, 2),
        link(ItemKind.APPOINTMENT, 1),
        link(ItemKind.CONTACT, 9),
        link(ItemKind.APPOINTMENT, 5, origin=Side.EXCHANGE),  # imported
        link(ItemKind.APPOINTMENT, 6, state=LinkState.EXCHANGE_DELETED),
        link(ItemKind.APPOINTMENT, 7, origin=Side.EXCHANGE, state=LinkState.UNLINKED),
        link(ItemKind.APPOINTMENT, 8, exchange_id=""),
    ]
    baseline = {each.key: each for each in links}
    chosen = removable_links(baseline, {ItemKind.APPOINTMENT, ItemKind.TODO})
    assert [each.key.psa_id for each in chosen] == [1, 2, 4]
    assert removable_links(baseline, set()) == []


def test_a_copy_carrying_our_tag_for_its_item_is_deleted_at_the_version_just_read() -> None:
    mine = link(ItemKind.SERVICE_CALL, 1)
    found = [item("AAMk1", PsaTag(US, mine.key), change_key="CK-now")]
    plan = plan_removal([mine], found, US)
    assert plan.delete == (Removal(mine, "CK-now"),) and plan.gone == ()


def test_a_missing_foreign_or_other_items_tag_is_never_deleted_and_counts_as_gone() -> None:
    links = [link(ItemKind.APPOINTMENT, n) for n in (1, 2, 3, 4)]
    found = [
        item("AAMk1", PsaTag(THEM, links[0].key)),  # another installation's tag
        item("AAMk2", PsaTag(US, key(ItemKind.APPOINTMENT, 99))),  # our tag, another item
        item("AAMk3", None),  # no tag (the lookup would not return it; still never deleted)
        # AAMk4: not found at all — deleted or moved away by a user
        item("AAMk-copy", PsaTag(US, links[3].key)),  # a copy carrying our tag: not linked
    ]
    plan = plan_removal(links, found, US)
    assert plan.delete == ()
    assert plan.gone == tuple(links)


def test_a_service_calls_tag_names_the_resource_whose_copy_it_is() -> None:
    mine = link(ItemKind.SERVICE_CALL, 1)
    colleague = PsaKey(ItemKind.SERVICE_CALL, 1, 4)
    plan = plan_removal([mine], [item("AAMk1", PsaTag(US, colleague))], US)
    assert plan.delete == () and plan.gone == (mine,)
