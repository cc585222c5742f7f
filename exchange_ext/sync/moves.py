"""A mailbox move: what becomes of the links and of the old mailbox's items when an
administrator gives a resource another mailbox address (docs/sync-rules.md, "Mailbox moves").

Two pure decisions, applied by the engine (``exchange_ext/engine/moves.py``) before the first
run on the new address, and by the test harness the same way:

- :func:`old_mailbox_deletions`: every item of the old mailbox that this installation tagged
  goes (a delete without a change key: they are ours, whatever Outlook did to them). Imported
  items there are the user's and stay.
- :func:`links_after_move`: the links as the new mailbox needs them, decided on a complete
  read of it. A PSA item's link is dropped: the run's full read of the new mailbox adopts a
  tagged copy already there or creates one. An imported item's link follows the item of the
  same identity (iCalendar UID, plus the original start for an occurrence) in the new
  mailbox, or is dropped — the PSA item stays, unlinked; nothing is deleted. A PSA item whose
  copy the user had deleted keeps that state, without an id (re-exported on its next PSA
  change, as before the move).

Both are idempotent, so a move interrupted anywhere is simply done again by the next run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

from exchange_ext.sync.ops import DeleteInExchange
from exchange_ext.sync.records import (
    CalendarItemType,
    ExchangeItem,
    Link,
    LinkState,
    PsaKey,
    Side,
    SyncOptions,
)


def old_mailbox_deletions(
    items: Iterable[ExchangeItem], options: SyncOptions
) -> list[DeleteInExchange]:
    """Deletes of every item in ``items`` (a full read of the old mailbox) tagged by us."""
    deletions: dict[str, DeleteInExchange] = {}
    for item in items:
        tag = item.psa_tag
        if tag is None or tag.installation_id != options.installation_id:
            continue
        reason = "the resource's mailbox moved: our copy leaves the old mailbox"
        deletions[item.exchange_id] = DeleteInExchange(tag.key, item.exchange_id, "", reason)
    return list(deletions.values())


def links_after_move(
    baseline: Mapping[PsaKey, Link], items: Iterable[ExchangeItem]
) -> dict[PsaKey, Link | None]:
    """The change to every link (``None``: dropped) for the move to the mailbox whose every
    item (series expanded in the window) is ``items``."""
    by_identity: dict[str, ExchangeItem] = {}
    for item in sorted(items, key=lambda item: item.exchange_id, reverse=True):
        if item.psa_tag is None and item.identity is not None and not _is_master(item):
            by_identity[item.identity] = item  # the lowest id wins
    changes: dict[PsaKey, Link | None] = {}
    for key, link in baseline.items():
        if link.origin is Side.EXCHANGE:
            found = by_identity.pop(link.identity, None) if link.identity else None
            changes[key] = _follow(link, found) if found is not None else None
        elif link.state is LinkState.EXCHANGE_DELETED:
            changes[key] = replace(link, exchange_id="", change_key="")
        else:
            changes[key] = None
    return changes


def _follow(link: Link, item: ExchangeItem) -> Link:
    # The content digests stay: what differs in the new mailbox's copy syncs as a change.
    return replace(link, exchange_id=item.exchange_id, change_key=item.change_key)


def _is_master(item: ExchangeItem) -> bool:
    return item.calendar_item_type is CalendarItemType.RECURRING_MASTER
