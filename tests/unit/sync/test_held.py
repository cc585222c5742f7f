"""The rules of deferred and held deletions shared by the engine and the harness (sync/held.py)."""

from __future__ import annotations

from dataclasses import replace

from exchange_ext.sync import ops as o
from exchange_ext.sync.held import (
    DeferredOp,
    confirm_ops,
    deferred_of,
    holds,
    restore_ops,
    revived,
)
from exchange_ext.sync.records import ItemKind, LinkState
from tests.unit.sync.factories import OPTIONS, calendar, key, linked


def test_a_destructive_op_round_trips_through_its_record() -> None:
    link = linked(key(1), calendar(), exchange_id="AAMk1", change_key="ck1")
    for op in (
        o.DeleteInExchange(key(1), "AAMk1", "ck1", "deleted in the PSA"),
        o.DeletePsa(key(1), "AAMk1", "deleted in Exchange"),
        o.MarkExchangeDeleted(replace(link, state=LinkState.EXCHANGE_DELETED), "copy gone"),
        o.Unlink(replace(link, state=LinkState.UNLINKED), "unlinked only"),
    ):
        assert confirm_ops([deferred_of(op)], {key(1): link}) == [op]


def test_restore_keeps_everything_and_exports_psa_items_again() -> None:
    link = linked(key(1), calendar(), exchange_id="AAMk1", change_key="ck1")
    gone = deferred_of(o.MarkExchangeDeleted(link, "copy gone"))
    deleted = deferred_of(o.DeleteInExchange(key(1), "AAMk1", "ck1", "deleted in the PSA"))
    assert restore_ops([gone], {key(1): link}) == [o.Forget(key(1), "restored: exported again")]
    [unlink] = restore_ops([deleted], {key(1): link})
    assert isinstance(unlink, o.Unlink) and unlink.link.state is LinkState.UNLINKED


def test_a_copy_of_ours_without_a_link_is_still_deleted() -> None:
    """An orphan copy (its PSA item gone, its link lost) is deleted when its pass ends; a
    record of another kind without a link has nothing left to do."""
    orphan = deferred_of(o.DeleteInExchange(key(5), "AAMk5", "ck5", "orphan"))
    assert confirm_ops([orphan], {}) == [o.DeleteInExchange(key(5), "AAMk5", "ck5", "orphan")]
    assert confirm_ops([replace(orphan, op=DeferredOp.DELETE_PSA)], {}) == []


def test_only_a_write_that_succeeded_revives_an_item() -> None:
    link = linked(key(1), calendar(), exchange_id="AAMk1", change_key="ck1")
    update = o.UpdateInExchange(key(1), "AAMk1", "ck1", calendar(), frozenset(), link, "edited")
    assert revived([update]) == {key(1)}
    assert revived([update], failed={key(1)}) == set()
    assert revived([o.Forget(key(1), "left the window")]) == set()


def test_a_relink_of_an_item_the_page_deletes_again_revives_nothing() -> None:
    """Found under a new id, or seen at a new version, and still deleted by the same page: its
    stored deletion stays as it is (held stays held)."""
    link = linked(key(1), calendar(), exchange_id="AAMk1", change_key="ck2")
    relink = o.Relink(link, "seen at a new version; its deletion waits")
    assert revived([relink]) == {key(1)}
    assert revived([relink], deleted={key(1)}) == set()


def test_deletions_join_a_held_set_whatever_their_number() -> None:
    one = [o.DeletePsa(key(1), "AAMk1", "deleted in Exchange")]
    assert not holds(one, 10, OPTIONS, already_held=False)
    assert holds(one, 10, OPTIONS, already_held=True)
    many = [o.DeletePsa(key(n, ItemKind.TODO), f"AAMk{n}", "gone") for n in range(30)]
    assert holds(many, 40, OPTIONS, already_held=False)
