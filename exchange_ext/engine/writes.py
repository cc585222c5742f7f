"""What every sync run does with a plan once it is made: the Exchange writes, in batches under
the time budget (:class:`ExchangeWriter`), then the PSA writes in plan order and the links they
leave (:class:`LinkBook`).

Shared by the mailbox cycle (:mod:`exchange_ext.engine.cycle`) and the public contacts folder
job (:mod:`exchange_ext.engine.public_folder`); what they need of a run is
:class:`RunContext`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from exchange_ext.backends.base import (
    ConflictError,
    FolderKind,
    ItemChange,
    ItemDeletion,
    ItemNotFound,
    MailboxSession,
    NewItem,
    WriteResult,
)
from exchange_ext.engine import psa_store
from exchange_ext.engine.runs import RunLog, title_of
from exchange_ext.models import MailboxSettings
from exchange_ext.sync import ops as o
from exchange_ext.sync.planner import rule_of_link
from exchange_ext.sync.policy import OnExchangeDelete
from exchange_ext.sync.records import ItemKind, Link, LinkState, PsaKey

# --- Exchange writes ------------------------------------------------------------------------


class RunContext(Protocol):
    """What the writer and the link book need of a run: a mailbox cycle or the public folder
    job (whose plans, one-way PSA → Exchange, hold no PSA writes: ``mailbox`` is ``None``)."""

    @property
    def mailbox(self) -> MailboxSettings | None: ...
    @property
    def log(self) -> RunLog: ...
    @property
    def deadline(self) -> float: ...
    def require_session(self) -> MailboxSession: ...


@dataclass
class ExchangeWriter:
    """Sends a plan's Exchange ops in batches; returns op index → result (None: not sent,
    the time budget ran out first)."""

    cycle: RunContext
    folder: FolderKind

    def write(self, ops: Sequence[o.Op]) -> dict[int, WriteResult | None]:
        results: dict[int, WriteResult | None] = {}
        session = self.cycle.require_session()
        for op_type, send in (
            (o.CreateInExchange, self.create),
            (o.UpdateInExchange, self.update),
            (o.DeleteInExchange, self.delete),
        ):
            indexed = [(i, op) for i, op in enumerate(ops) if isinstance(op, op_type)]
            for start in range(0, len(indexed), session.max_batch):
                batch = indexed[start : start + session.max_batch]
                if time.monotonic() >= self.cycle.deadline:
                    results.update((i, None) for i, _ in batch)
                    continue
                sent = send([op for _, op in batch])
                results.update(zip((i for i, _ in batch), sent, strict=True))
        return results

    def create(self, ops: list[Any]) -> list[WriteResult]:
        items = [NewItem(op.record, op.tag) for op in ops]
        return self.cycle.require_session().create(self.folder, items)

    def update(self, ops: list[Any]) -> list[WriteResult]:
        changes = [ItemChange(op.exchange_id, op.change_key, op.record, op.fields) for op in ops]
        return self.cycle.require_session().update(self.folder, changes)

    def delete(self, ops: list[Any]) -> list[WriteResult]:
        deletions = [ItemDeletion(op.exchange_id, op.change_key) for op in ops]
        return self.cycle.require_session().delete(self.folder, deletions)


# --- PSA writes and the links they leave ----------------------------------------------------


@dataclass
class LinkBook:
    """Replays a plan in order: applies PSA ops, and works out each key's link to persist.

    An item's ops are applied in plan order; after its first failure the rest of that item's
    ops are not applied (each op's baseline assumes the ones before it succeeded), so its last
    good baseline is kept and the next run takes it from there.
    """

    cycle: RunContext
    baseline: dict[PsaKey, Link]
    written: dict[int, WriteResult | None]
    counted: list[tuple[o.Op, ItemKind]]
    changes: dict[PsaKey, Link | None] = field(default_factory=dict)
    failed: set[PsaKey] = field(default_factory=set)
    #: Titles of the plan's items by (kind, PSA id), for the run's item list (ops without a
    #: record of their own: deletes, links, conflicts).
    titles: dict[tuple[str, int], str] = field(default_factory=dict)

    def title(self, key: PsaKey) -> str:
        return self.titles.get((key.kind.value, key.psa_id), "")

    def replay(self, ops: Sequence[o.Op]) -> dict[PsaKey, Link | None]:
        for index, op in enumerate(ops):
            key = _key_of(op)
            if key is not None and key in self.failed:
                continue
            self.step(index, op, key)
        return self.changes

    def step(self, index: int, op: o.Op, key: PsaKey | None) -> None:
        if isinstance(op, o.EXCHANGE_WRITES):
            self.exchange_step(index, op)
        elif isinstance(op, o.PSA_WRITES):
            self.psa_step(op)
        elif isinstance(op, o.RecordConflict):
            self.cycle.log.conflict(op, self.title(op.key))
        elif isinstance(op, o.Forget):
            self.changes[op.key] = None
        else:
            self.changes[op.link.key] = op.link
            self.cycle.log.touched(op, op.link.key, self.title(op.link.key))

    def exchange_step(
        self, index: int, op: o.CreateInExchange | o.UpdateInExchange | o.DeleteInExchange
    ) -> None:
        result = self.written.get(index)
        if result is not None and self.gone_unseen(op, result):
            return
        if result is None or not result.ok:
            self.fail(op.key, _exchange_id_of(op), result)
            return
        self.counted.append((op, op.key.kind))
        self.cycle.log.touched(op, op.key, self.title(op.key))
        if isinstance(op, o.CreateInExchange):
            self.changes[op.key] = op.link_after(result.exchange_id, result.change_key)
        elif isinstance(op, o.UpdateInExchange):
            self.changes[op.key] = op.link_after(result.change_key)
        else:
            current = self.changes.get(op.key, self.baseline.get(op.key))
            # Deleting a duplicate twin leaves the key's own link in place.
            if current is None or current.exchange_id == op.exchange_id:
                self.changes[op.key] = None

    def gone_unseen(self, op: o.Op, result: WriteResult) -> bool:
        """An update found the Exchange copy of a PSA item deleted although the feed never said
        so (a delete right after our create: the feed coalesces create + delete into nothing).
        Record it as an Exchange delete, as if the feed had reported it: not reflected, and the
        PSA change re-exports the item on the next run (docs/sync-rules.md, "Deletes"). Imported
        items keep the error: their feed reports the delete, which then deletes them in the PSA.
        """
        if not isinstance(op, o.UpdateInExchange) or not isinstance(result.error, ItemNotFound):
            return False
        link = self.changes.get(op.key, self.baseline.get(op.key))
        if link is None or rule_of_link(link).on_exchange_delete is OnExchangeDelete.DELETE_IN_PSA:
            return False
        self.changes[op.key] = replace(link, state=LinkState.EXCHANGE_DELETED)
        self.failed.add(op.key)  # the rest of its ops assumed the copy exists
        return True

    def psa_step(self, op: o.CreateInPsa | o.UpdatePsa | o.DeletePsa) -> None:
        # Each action runs in its own savepoint: a failed item leaves no half-write.
        mailbox = self.cycle.mailbox
        assert mailbox is not None, "a run without a mailbox plans no PSA writes"
        outcome = psa_store.apply_psa_op(mailbox, op)
        if not outcome.ok:
            key = op.key if not isinstance(op, o.CreateInPsa) else None
            exchange_id = op.link.exchange_id if isinstance(op, o.CreateInPsa) else ""
            title = title_of(op.record) if not isinstance(op, o.DeletePsa) else ""
            self.cycle.log.error(
                key, exchange_id, f"Not saved in the PSA: {outcome.error}", side="psa",
                kind=op.kind if isinstance(op, o.CreateInPsa) else None,
                title=title or (self.title(key) if key else ""),
            )  # fmt: skip
            if key is not None:
                self.failed.add(key)
            return
        self.counted.append((op, op.kind if isinstance(op, o.CreateInPsa) else op.key.kind))
        if isinstance(op, o.CreateInPsa):
            assert outcome.psa_id is not None
            link = op.link_after(outcome.psa_id)
            self.changes[link.key] = link
            self.cycle.log.touched(op, link.key)
        elif isinstance(op, o.UpdatePsa):
            self.changes[op.key] = op.link
        else:
            self.changes[op.key] = None
        if not isinstance(op, o.CreateInPsa):
            self.cycle.log.touched(op, op.key, self.title(op.key))

    def fail(self, key: PsaKey, exchange_id: str, result: WriteResult | None) -> None:
        self.failed.add(key)
        if result is None:
            return  # not sent (time budget): retried next run, not an error
        error = result.error
        if isinstance(error, ConflictError):
            message = "Changed in Exchange while we wrote it; it is re-read on the next run."
        else:
            message = f"Exchange refused the change: {error.message if error else 'unknown'}"
        self.cycle.log.error(key, exchange_id, message, side="exchange", title=self.title(key))


def _key_of(op: o.Op) -> PsaKey | None:
    if isinstance(op, o.CreateInPsa):
        return None
    if isinstance(op, o.LinkItems | o.Relink | o.MarkExchangeDeleted | o.Unlink):
        return op.link.key
    return op.key


def _exchange_id_of(op: Any) -> str:
    return getattr(op, "exchange_id", "")
