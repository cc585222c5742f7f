"""What "Remove synced items" deletes from a mailbox (docs/sync-rules.md, "Removing synced
items"), decided without I/O.

Only what the extension wrote is deleted: a link of PSA origin whose Exchange copy, read now,
still carries this installation's tag for that very PSA item. Everything else is left in the
mailbox: imported appointments (origin Exchange), a copy someone made in Outlook (another item,
untagged or not linked), and a linked item whose tag is now missing or foreign. A linked item
no longer found with our tag in its folder is treated as gone (deleted or moved away by a user,
or re-tagged): nothing is deleted and its link is dropped, so it counts as removed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from exchange_ext.sync.records import ExchangeItem, ItemKind, Link, LinkState, PsaKey, Side


@dataclass(frozen=True)
class Removal:
    """Delete ``link``'s Exchange copy, as of the version just read (``change_key``)."""

    link: Link
    change_key: str


@dataclass(frozen=True)
class RemovalPlan:
    """One batch's decision: copies to delete, and links whose copy is no longer ours."""

    delete: tuple[Removal, ...]
    gone: tuple[Link, ...]


def removable_links(baseline: Mapping[PsaKey, Link], kinds: Iterable[ItemKind]) -> list[Link]:
    """The links of ``kinds`` whose Exchange copy the extension wrote and still holds, in a
    stable order (kind, then PSA id)."""
    wanted = frozenset(kinds)
    return sorted(
        (
            link
            for link in baseline.values()
            if link.key.kind in wanted
            and link.origin is Side.PSA
            and link.state is LinkState.LINKED
            and link.exchange_id
        ),
        key=lambda link: link.key,
    )


def plan_removal(
    links: Sequence[Link], tagged: Iterable[ExchangeItem], installation_id: str
) -> RemovalPlan:
    """Which of ``links`` to delete, given the items a tag lookup found for them (``tagged``).

    A link's copy is deleted only when an item with the link's Exchange id carries exactly the
    tag the extension wrote on it (this installation, this PSA key).
    """
    ours = {
        item.exchange_id: item
        for item in tagged
        if item.psa_tag is not None and item.psa_tag.installation_id == installation_id
    }
    delete: list[Removal] = []
    gone: list[Link] = []
    for link in links:
        item = ours.get(link.exchange_id)
        if item is not None and item.psa_tag is not None and item.psa_tag.key == link.key:
            delete.append(Removal(link, item.change_key))
        else:
            gone.append(link)
    return RemovalPlan(tuple(delete), tuple(gone))
