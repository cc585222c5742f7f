"""Recording runs: counts per kind × side × action, conflicts and per-item errors.

A :class:`RunLog` collects in memory while the run works; its entries are written with the page
they belong to (in that page's transaction, so a rolled-back page leaves no stray log), and the
totals when the run ends. Runs are pruned to the newest :data:`KEEP_RUNS` per mailbox.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from django.utils import timezone

from exchange_ext.models import MailboxSettings, SyncLogEntry, SyncRun
from exchange_ext.sync import ops as o
from exchange_ext.sync.records import ItemKind, PsaKey

KEEP_RUNS = 50

_ACTIONS: dict[type, tuple[str, str]] = {
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

    def count(self, op: o.Op, kind: ItemKind) -> None:
        """Count a write that succeeded."""
        side, action = _ACTIONS[type(op)]
        self.counts[kind.value][side][action] += 1

    def conflict(self, op: o.RecordConflict) -> None:
        self.conflicts += 1
        self._entry(SyncLogEntry.Level.CONFLICT, op.key, "", op.reason)

    def error(self, key: PsaKey | None, exchange_id: str, message: str) -> None:
        self.errors += 1
        self._entry(SyncLogEntry.Level.ERROR, key, exchange_id, message)

    def flush(self) -> None:
        """Write pending entries (inside the page's transaction)."""
        SyncLogEntry.objects.bulk_create(self.pending)
        self.pending = []

    def discard(self) -> None:
        """Forget pending entries and their tallies (their page was rolled back)."""
        for entry in self.pending:
            if entry.level == SyncLogEntry.Level.CONFLICT:
                self.conflicts -= 1
            else:
                self.errors -= 1
        self.pending = []

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
        SyncRun.objects.filter(pk__in=stale).delete()


def recent_runs(mailbox: MailboxSettings | None, limit: int = 10) -> list[SyncRun]:
    """The newest runs with their log entries (two queries), for the profile tab."""
    if mailbox is None or mailbox.pk is None:
        return []
    runs = SyncRun.objects.filter(mailbox_settings=mailbox).prefetch_related("entries")
    return list(runs[:limit])


def _plain_dict(value: object) -> object:
    if isinstance(value, dict):
        return {key: _plain_dict(inner) for key, inner in value.items()}
    return value
