"""What the planner decides: one op per write or bookkeeping step, each with its reason.

Ops carry everything the applier needs (ids, change keys, records, the groups to write) and
the baseline to persist once they succeeded, so the applier decides nothing. Ops of one item
come in the order they must be applied; each op's baseline is valid on its own, so a crash
or failure between two ops of an item leaves a state the next run converges from.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace

from exchange_ext.sync.records import (
    FieldGroup,
    ItemKind,
    Link,
    PsaKey,
    PsaTag,
    Record,
    Side,
)


@dataclass(frozen=True)
class CreateInExchange:
    """Create the item in Exchange, tagged; then persist :meth:`link_after`."""

    key: PsaKey
    record: Record
    tag: PsaTag
    link: Link  # exchange_id and change_key are filled from the backend's result
    reason: str

    def link_after(self, exchange_id: str, change_key: str) -> Link:
        return replace(self.link, exchange_id=exchange_id, change_key=change_key)


@dataclass(frozen=True)
class UpdateInExchange:
    """Write ``fields`` of ``record`` over the item if ``change_key`` is still current."""

    key: PsaKey
    exchange_id: str
    change_key: str
    record: Record
    fields: frozenset[FieldGroup]
    link: Link  # change_key is filled from the backend's result
    reason: str

    def link_after(self, change_key: str) -> Link:
        return replace(self.link, change_key=change_key)


@dataclass(frozen=True)
class DeleteInExchange:
    """Delete the item in Exchange (never a cancellation); then drop the link."""

    key: PsaKey
    exchange_id: str
    change_key: str
    reason: str


@dataclass(frozen=True)
class CreateInPsa:
    """Create a PSA item (an imported appointment); then persist :meth:`link_after`.

    ``read_only``: the resource only attends the meeting, so the PSA must not offer edits.
    """

    kind: ItemKind
    record: Record
    read_only: bool
    link: Link  # its key's psa_id is a placeholder until the PSA item exists
    reason: str

    def link_after(self, psa_id: int) -> Link:
        return replace(self.link, key=PsaKey(self.kind, psa_id))


@dataclass(frozen=True)
class UpdatePsa:
    """Write ``fields`` of ``record`` into the PSA item (through its actions, origin exchange)."""

    key: PsaKey
    record: Record
    fields: frozenset[FieldGroup]
    link: Link
    reason: str


@dataclass(frozen=True)
class DeletePsa:
    """Delete the PSA item (through its actions, origin exchange); then drop the link."""

    key: PsaKey
    exchange_id: str
    reason: str


@dataclass(frozen=True)
class LinkItems:
    """Adopt: persist a link between existing items (a tagged twin, or an import re-found)."""

    link: Link
    reason: str


@dataclass(frozen=True)
class Relink:
    """Persist a refreshed baseline (new change key, id or digests); no write to either side."""

    link: Link
    reason: str


@dataclass(frozen=True)
class MarkExchangeDeleted:
    """Persist the link in state exchange_deleted: the Exchange copy is gone, the PSA item stays."""

    link: Link
    reason: str


@dataclass(frozen=True)
class Unlink:
    """Persist the link in state unlinked: the Exchange item stays, and is never re-imported."""

    link: Link
    reason: str


@dataclass(frozen=True)
class Forget:
    """Drop the link: the item left the window (nothing is deleted anywhere)."""

    key: PsaKey
    reason: str


@dataclass(frozen=True)
class RecordConflict:
    """Log that both sides changed ``fields``; ``winner``'s values were kept.

    ``psa`` and ``exchange``: each side's content when the conflict was found (Exchange's in
    PSA terms), so the log can say what was kept and what was dropped; ``None`` when unknown.
    """

    key: PsaKey
    fields: frozenset[FieldGroup]
    winner: Side
    reason: str
    psa: Record | None = None
    exchange: Record | None = None


Op = (
    CreateInExchange
    | UpdateInExchange
    | DeleteInExchange
    | CreateInPsa
    | UpdatePsa
    | DeletePsa
    | LinkItems
    | Relink
    | MarkExchangeDeleted
    | Unlink
    | Forget
    | RecordConflict
)

EXCHANGE_WRITES = (CreateInExchange, UpdateInExchange, DeleteInExchange)
PSA_WRITES = (CreateInPsa, UpdatePsa, DeletePsa)
#: Ops that lose a linked item on one side; withheld when the mass-delete guard trips.
DESTRUCTIVE = (DeleteInExchange, DeletePsa, MarkExchangeDeleted, Unlink)


@dataclass(frozen=True)
class Plan:
    """The ops of one run for one mailbox, in order.

    ``guard_tripped``: the mass-delete guard withheld ``withheld`` (destructive ops only);
    the other ops are safe to apply. ``counts`` maps op class names to how many there are.
    """

    ops: tuple[Op, ...]
    guard_tripped: bool = False
    withheld: tuple[Op, ...] = ()

    @property
    def counts(self) -> Counter[str]:
        return Counter(type(op).__name__ for op in self.ops)

    @property
    def writes(self) -> tuple[Op, ...]:
        """The ops that write to the PSA or to Exchange (quiescence means none)."""
        return tuple(op for op in self.ops if isinstance(op, EXCHANGE_WRITES + PSA_WRITES))
