"""Recording runs: counts per kind × side × action, conflicts and per-item errors.

A :class:`RunLog` collects in memory while the run works; its entries and the items it touched
(:class:`SyncRunItem`) are written with the page they belong to (in that page's transaction, one
bulk insert each, so a rolled-back page leaves no stray log), and the totals when the run ends.
Runs are pruned to the newest :data:`KEEP_RUNS` per mailbox, their items with them, and counted
into their hour (:class:`SyncRunHour`, for the Status tab's week-long chart); a run stores at
most :data:`ITEMS_PER_RUN` items and counts the rest.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Count, F
from django.db.models.functions import TruncHour
from django.utils import timezone

from exchange_ext.engine.conflict_notes import conflict_message
from exchange_ext.models import MailboxSettings, SyncLogEntry, SyncRun, SyncRunHour, SyncRunItem
from exchange_ext.sync import ops as o
from exchange_ext.sync.records import CalendarRecord, ItemKind, PsaKey, Record

KEEP_RUNS = 50
#: Items stored per run: a 20,000-item export keeps its first ones and counts the rest.
ITEMS_PER_RUN = 1000
#: Deleted items looked up by id in earlier runs for their title, per commit.
TITLE_LOOKUP = 500
Action = SyncRunItem.Action

#: How a run counts an op: its type → (side written, action); the preview counts the same way.
ACTIONS: dict[type, tuple[str, str]] = {
    o.CreateInExchange: ("exchange", "created"),
    o.UpdateInExchange: ("exchange", "updated"),
    o.DeleteInExchange: ("exchange", "deleted"),
    o.CreateInPsa: ("psa", "created"),
    o.UpdatePsa: ("psa", "updated"),
    o.DeletePsa: ("psa", "deleted"),
}


@dataclass
class RunLog:
    """What one run did so far; ``pending`` entries are not yet written."""

    run: SyncRun
    counts: dict[str, dict[str, dict[str, int]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(lambda: defaultdict(int)))
    )
    conflicts: int = 0
    errors: int = 0
    pending: list[SyncLogEntry] = field(default_factory=list)
    #: Items of the page in hand (not yet written) and those beyond the cap it counted.
    pending_items: list[SyncRunItem] = field(default_factory=list)
    pending_omitted: int = 0
    stored_items: int = 0
    omitted: int = 0

    def count(self, op: o.Op, kind: ItemKind) -> None:
        """Count a write that succeeded."""
        side, action = ACTIONS[type(op)]
        self.counts[kind.value][side][action] += 1

    def touched(self, op: o.Op, key: PsaKey, title: str = "") -> None:
        """Keep the item ``op`` wrote (or linked) for the run's page; ops that change no item
        (a refreshed baseline, an item leaving the window) are not kept."""
        if isinstance(op, o.EXCHANGE_WRITES + o.PSA_WRITES):
            side, action = ACTIONS[type(op)]
        elif isinstance(op, o.LinkItems):
            side, action = "", Action.LINKED
        elif isinstance(op, o.MarkExchangeDeleted):
            side, action = "exchange", Action.EXCHANGE_DELETED
        elif isinstance(op, o.Unlink):
            side, action = "", Action.UNLINKED
        else:
            return
        changed = getattr(op, "fields", frozenset())
        detail = ", ".join(sorted(str(group) for group in changed))
        record = getattr(op, "record", None)
        self._item(key.kind.value, key.psa_id, side, action, title or title_of(record), detail)

    def conflict(self, op: o.RecordConflict, title: str = "") -> None:
        self.conflicts += 1
        self._entry(SyncLogEntry.Level.CONFLICT, op.key, "", conflict_message(op))
        self._item(
            op.key.kind.value, op.key.psa_id, str(op.winner), Action.CONFLICT, title, op.reason
        )

    def error(
        self,
        key: PsaKey | None,
        exchange_id: str,
        message: str,
        *,
        side: str = "",
        kind: ItemKind | None = None,
        title: str = "",
    ) -> None:
        """A per-item error; ``key`` None: an item not in the PSA (``kind``: its kind)."""
        self.errors += 1
        self._entry(SyncLogEntry.Level.ERROR, key, exchange_id, message)
        item_kind = key.kind if key else kind
        if item_kind is not None:
            psa_id = key.psa_id if key else None
            self._item(item_kind.value, psa_id, side, Action.FAILED, title, message)

    def flush(self) -> None:
        """Write pending entries and items (inside the page's transaction): one bulk insert
        each, whatever the page's size (Django splits it only where the database caps the
        parameters of one statement)."""
        SyncLogEntry.objects.bulk_create(self.pending)
        SyncRunItem.objects.bulk_create(self.pending_items)
        self.stored_items += len(self.pending_items)
        self.omitted += self.pending_omitted
        self.pending = []
        self.pending_items = []
        self.pending_omitted = 0

    def discard(self) -> None:
        """Forget pending entries, items and their tallies (their page was rolled back)."""
        for entry in self.pending:
            if entry.level == SyncLogEntry.Level.CONFLICT:
                self.conflicts -= 1
            else:
                self.errors -= 1
        self.pending = []
        self.pending_items = []
        self.pending_omitted = 0

    def _item(
        self, kind: str, psa_id: int | None, side: str, action: str, title: str, detail: str
    ) -> None:
        if self.stored_items + len(self.pending_items) >= ITEMS_PER_RUN:
            self.pending_omitted += 1
            return
        self.pending_items.append(
            SyncRunItem(
                run=self.run, kind=kind, psa_id=psa_id, side=side, action=action,
                title=title[:200], detail=detail[:300],
            )
        )  # fmt: skip

    def _entry(self, level: str, key: PsaKey | None, exchange_id: str, message: str) -> None:
        self.pending.append(
            SyncLogEntry(
                run=self.run, level=level, kind=key.kind.value if key else "",
                psa_key=str(key) if key else "", exchange_id=exchange_id, message=message[:2000],
            )
        )  # fmt: skip


def start_run(mailbox: MailboxSettings | None, *, trigger: str, backend: str) -> SyncRun:
    """A new running run of ``mailbox`` (``None``: the public contacts folder job)."""
    return SyncRun.objects.create(
        mailbox_settings=mailbox, started_at=timezone.now(), trigger=trigger, backend=backend
    )


def finish_run(log: RunLog, outcome: str, error: str = "") -> SyncRun:
    """Store the totals and the outcome; prune old runs of the mailbox."""
    run = log.run
    run.finished_at = timezone.now()
    run.outcome = outcome
    run.error = error
    run.counts = _plain_dict(log.counts)
    run.conflicts = log.conflicts
    run.errors = log.errors
    run.items_omitted = log.omitted
    run.save()
    prune_runs(run.mailbox_settings_id)
    return run


def skipped_run(mailbox: MailboxSettings | None, *, trigger: str, reason: str) -> SyncRun:
    now = timezone.now()
    run = SyncRun.objects.create(
        mailbox_settings=mailbox, started_at=now, finished_at=now, trigger=trigger,
        outcome=SyncRun.Outcome.SKIPPED, error=reason,
    )  # fmt: skip
    prune_runs(mailbox.pk if mailbox else None)
    return run


def prune_runs(mailbox_id: int | None, keep: int = KEEP_RUNS) -> None:
    """Keep the newest ``keep`` runs of the mailbox (``None``: of the public folder job)."""
    old = SyncRun.objects.filter(mailbox_settings_id=mailbox_id).values_list("pk", flat=True)
    stale = list(old[keep:])
    if stale:
        with transaction.atomic():
            fold_into_hours(SyncRun.objects.filter(pk__in=stale))
            SyncRun.objects.filter(pk__in=stale).delete()


def fold_into_hours(runs: Any) -> None:
    """Add the finished ``runs`` (a queryset about to be deleted) to their hours' counts: one
    aggregate query, then one UPDATE per (hour, outcome), an INSERT for a new one. Runs still
    running are not counted (a killed worker's are closed as failed first)."""
    groups = (
        runs.exclude(outcome=SyncRun.Outcome.RUNNING)
        .order_by()
        .annotate(hour=TruncHour("started_at", tzinfo=dt.UTC))
        .values("hour", "outcome")
        .annotate(n=Count("pk"))
    )
    for group in groups:
        _add(group["hour"], group["outcome"], group["n"])


def _add(hour: dt.datetime, outcome: str, n: int) -> None:
    rows = SyncRunHour.objects.filter(hour=hour, outcome=outcome)
    if rows.update(runs=F("runs") + n):
        return
    try:
        with transaction.atomic():  # another worker may insert the same hour first
            SyncRunHour.objects.create(hour=hour, outcome=outcome, runs=n)
    except IntegrityError:
        rows.update(runs=F("runs") + n)
        return
    # A new hour: drop the hours no chart shows any more (once an hour, not per run).
    since = hour - dt.timedelta(hours=SyncRunHour.HOURS_KEPT)
    SyncRunHour.objects.filter(hour__lt=since).delete()


def recent_runs(mailbox: MailboxSettings | None, limit: int = 10) -> list[SyncRun]:
    """The newest runs with their log entries (two queries), for the profile tab."""
    if mailbox is None or mailbox.pk is None:
        return []
    runs = SyncRun.objects.filter(mailbox_settings=mailbox).prefetch_related("entries")
    return list(runs[:limit])


def known_titles(mailbox: MailboxSettings, rows: list[Any]) -> dict[tuple[str, int], str]:
    """The titles earlier runs of ``mailbox`` recorded for the items of ``rows`` (anything with
    ``kind`` and ``psa_id``: stored deletions whose PSA item is gone), newest first; one query,
    for at most :data:`TITLE_LOOKUP` items (the others stay untitled)."""
    ids = {row.psa_id for row in rows[:TITLE_LOOKUP]}
    if not ids:
        return {}
    found = (
        SyncRunItem.objects.filter(run__mailbox_settings=mailbox, psa_id__in=ids)
        .exclude(title="")
        .order_by("id")
        .values_list("kind", "psa_id", "title")
    )
    return {(kind, psa_id): title for kind, psa_id, title in found}


def title_of(record: Record | None) -> str:
    """An item's title for the logs: an appointment's subject, a contact's name."""
    if record is None:
        return ""
    if isinstance(record, CalendarRecord):
        return record.subject
    names = [getattr(record, name, "") for name in ("given_name", "surname")]
    return " ".join(n for n in names if n)


def _plain_dict(value: object) -> object:
    if isinstance(value, dict):
        return {key: _plain_dict(inner) for key, inner in value.items()}
    return value
