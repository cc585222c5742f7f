"""Remove synced items: delete from a mailbox what the extension wrote there, on an
administrator's request (docs/sync-rules.md, "Removing synced items").

The request (which item kinds) is stored on the mailbox's settings when the administrator
confirms, together with switching those kinds — or the whole resource — off, so no run puts
the items back (:mod:`exchange_ext.jobs.removals`). A removal run then goes through the one
runner (:mod:`exchange_ext.engine.runner`): it takes the mailbox's lease, so it never runs beside
a sync (a busy lease is a skipped run; the request stays pending and is queued again), and it
is recorded in the mailbox's sync log with the trigger ``removal``.

Per batch of links: look the tags up (``find_by_tag``), let the pure rule decide
(:mod:`exchange_ext.sync.removal`), delete (the backends' delete never sends a meeting
cancellation), then drop the links of what is gone in one fenced transaction. A copy Exchange
refused to delete keeps its link and is an entry in the run's log, so repeating the action
retries exactly those. The run stops between batches at its time budget and the request stays
pending: the task queues the rest at once.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import Count
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from exchange_ext.backends.base import (
    BackendError,
    ConflictError,
    ExchangeBackend,
    FolderKind,
    ItemDeletion,
    MailboxSession,
    WriteResult,
)
from exchange_ext.engine import leases
from exchange_ext.engine.links import folder_of, load_baseline, save_links
from exchange_ext.engine.runner import DEFAULT_BUDGET_SECONDS, Job, run_job
from exchange_ext.engine.runs import RunLog
from exchange_ext.models import ExchangeConfig, ItemLink, MailboxSettings, SyncRun
from exchange_ext.sync.records import ItemKind, Link, PsaTag
from exchange_ext.sync.removal import Removal, plan_removal, removable_links

logger = logging.getLogger(__name__)

Outcome = SyncRun.Outcome

#: The resource's switch that stops exporting each kind (its MS Exchange tab's fields).
KIND_SWITCHES: dict[ItemKind, str] = {
    ItemKind.APPOINTMENT: "export_appointments",
    ItemKind.SERVICE_CALL: "export_service_calls",
    ItemKind.TODO: "export_todos",
    ItemKind.CONTACT: "export_contacts",
}


def parse_kinds(text: str) -> frozenset[ItemKind]:
    """The kinds stored in ``MailboxSettings.removal_kinds`` (unknown names are ignored)."""
    names = {name.strip() for name in text.split(",")}
    return frozenset(kind for kind in ItemKind if kind.value in names)


def format_kinds(kinds: Iterable[ItemKind]) -> str:
    """``kinds`` as stored in ``MailboxSettings.removal_kinds`` (in :class:`ItemKind` order)."""
    chosen = set(kinds)
    return ",".join(kind.value for kind in ItemKind if kind in chosen)


def removable_counts(mailbox: MailboxSettings | None) -> dict[ItemKind, int]:
    """Per kind, how many copies a removal would delete now: the links that
    :func:`~exchange_ext.sync.removal.removable_links` selects (one query)."""
    counts = dict.fromkeys(ItemKind, 0)
    if mailbox is None or mailbox.pk is None:
        return counts
    rows = (
        ItemLink.objects.filter(
            mailbox_settings=mailbox, origin=ItemLink.Origin.PSA, state=ItemLink.State.LINKED
        )
        .exclude(exchange_id="")
        .values_list("kind")
        .annotate(n=Count("pk"))
    )
    for kind, n in rows:
        if kind in counts:
            counts[ItemKind(kind)] = n
    return counts


def run_removal(
    mailbox_settings_id: int,
    *,
    backend: ExchangeBackend | None = None,
    budget_seconds: float = DEFAULT_BUDGET_SECONDS,
    lease_seconds: float | None = None,
) -> SyncRun | None:
    """Serve the mailbox's pending removal request once; its run, or ``None`` when nothing is
    requested. Never raises for backend or per-item errors (they are the run's outcome)."""
    mailbox = MailboxSettings.objects.select_related("resource").get(pk=mailbox_settings_id)
    if not mailbox.removal_requested_at:
        return None
    job = _RemovalJob(mailbox, ExchangeConfig.load(), backend, budget_seconds, lease_seconds)
    return run_job(job, trigger=SyncRun.Trigger.REMOVAL)


@dataclass(frozen=True)
class RemovalProgress:
    """What the resource's page shows of removals: the pending request, the run removing now,
    the latest finished run."""

    pending: frozenset[ItemKind]
    requested_at: dt.datetime | None
    running: SyncRun | None
    latest: SyncRun | None

    @property
    def removed_so_far(self) -> int:
        return removed_count(self.running) if self.running else 0


def removal_progress(mailbox: MailboxSettings | None) -> RemovalProgress:
    """The resource page's removal state (at most two queries)."""
    if mailbox is None or mailbox.pk is None:
        return RemovalProgress(frozenset(), None, None, None)
    runs = SyncRun.objects.filter(
        mailbox_settings=mailbox, trigger=SyncRun.Trigger.REMOVAL
    ).exclude(outcome=Outcome.SKIPPED)
    newest = list(runs.prefetch_related("entries")[:2])
    running = next((run for run in newest if run.outcome == Outcome.RUNNING), None)
    latest = next((run for run in newest if run.outcome != Outcome.RUNNING), None)
    pending = parse_kinds(mailbox.removal_kinds) if mailbox.removal_requested_at else frozenset()
    return RemovalProgress(pending, mailbox.removal_requested_at, running, latest)


def removed_count(run: SyncRun, action: str = "") -> int:
    """Copies a removal run took out of the mailbox: deleted now, or found already gone
    (``action``: only one of ``deleted``, ``gone``)."""
    actions = (action,) if action else ("deleted", "gone")
    return sum(run.side_total("exchange", name) for name in actions)


# --- the job --------------------------------------------------------------------------------


class _RemovalJob(Job):
    """One removal run as the runner runs it: the mailbox's lease, batches under a budget."""

    mailbox: MailboxSettings
    busy_reason = gettext_lazy(
        "A sync of this mailbox is running; the removal of synced items waits for it and "
        "starts again within a minute."
    )

    def __init__(
        self,
        mailbox: MailboxSettings,
        config: ExchangeConfig,
        backend: ExchangeBackend | None,
        budget_seconds: float,
        lease_seconds: float | None,
    ) -> None:
        self.mailbox, self.config, self.backend = mailbox, config, backend
        self.budget_seconds, self.lease_seconds = budget_seconds, lease_seconds
        self.backend_name = backend.name if backend else config.backend_name
        self.kinds = parse_kinds(mailbox.removal_kinds)
        self.requested_at = mailbox.removal_requested_at
        self.in_flight: tuple[Link, ...] = ()
        self.log: RunLog | None = None

    def claim(self) -> int | None:
        return leases.claim(self.mailbox.pk, self.budget_seconds, self.lease_seconds)

    def release(self, token: int) -> None:
        leases.release(self.mailbox.pk, token)

    def run(self, token: int, log: RunLog, started: dt.datetime) -> tuple[str, str]:
        self.log = log
        deadline = time.monotonic() + self.budget_seconds
        links = removable_links(load_baseline(self.mailbox), self.kinds)
        if not links:
            self.served(token)
            return Outcome.OK, ""
        backend = self.backend or _default_backend(self.config, self.mailbox)
        with backend.open_session(self.mailbox.effective_mailbox) as session:
            for index, (folder, batch) in enumerate(_batches(links, session.max_batch)):
                # Every run removes one batch at least, so a short budget still progresses.
                if index and time.monotonic() >= deadline:
                    message = _("Stopped at the time budget; the removal continues at once.")
                    return Outcome.PARTIAL, message
                self.remove_batch(session, folder, batch, token, log)
        self.served(token)
        return (Outcome.PARTIAL if log.errors else Outcome.OK), ""

    def describe_failure(self, error: BackendError) -> str:
        # Not the sync's words ("the next run retries"): a removal is repeated by hand.
        what = what_failed(error)
        again = _(
            "The items not removed stay in the mailbox, still synced; use Remove synced items "
            "again to retry."
        )
        return f"{what or _('The removal failed.')} {again}"

    def failed(self, token: int, error: BackendError, message: str, started: dt.datetime) -> None:
        # The copies of the batch in hand stay linked: listed, and the request is served (the
        # administrator repeats the action once the cause is fixed; nothing retries blindly).
        logger.info("removal of synced items of mailbox %s failed: %s", self.mailbox.pk, message)
        if self.log is not None:
            reason = _("Not removed: %s") % what_failed(error)
            for link in self.in_flight:
                self.log.error(link.key, link.exchange_id, reason)
            self.log.flush()
        self.served(token)

    # --- one batch --------------------------------------------------------------------------

    def remove_batch(
        self,
        session: MailboxSession,
        folder: FolderKind,
        batch: list[Link],
        token: int,
        log: RunLog,
    ) -> None:
        self.in_flight = tuple(batch)
        installation_id = str(self.config.installation_id)
        found = session.find_by_tag(folder, [PsaTag(installation_id, link.key) for link in batch])
        tagged = (item for items in found.values() for item in items)
        plan = plan_removal(batch, tagged, installation_id)
        deletions = [ItemDeletion(r.link.exchange_id, r.change_key) for r in plan.delete]
        results = session.delete(folder, deletions) if deletions else []
        deleted = [r.link for r, result in zip(plan.delete, results, strict=True) if result.ok]
        refused = [(r, res) for r, res in zip(plan.delete, results, strict=True) if not res.ok]
        self.commit(token, log, [*deleted, *plan.gone], refused)
        self.in_flight = ()
        _tally(log, deleted, "deleted")
        _tally(log, plan.gone, "gone")
        SyncRun.objects.filter(pk=log.run.pk).update(counts=_plain(log.counts))  # progress

    def commit(
        self,
        token: int,
        log: RunLog,
        dropped: list[Link],
        refused: list[tuple[Removal, WriteResult]],
    ) -> None:
        """Drop the links of what is gone and log what was refused, fenced by the lease."""
        try:
            with transaction.atomic():
                for removal, result in refused:
                    link = removal.link
                    log.error(link.key, link.exchange_id, _refusal(result))
                save_links(self.mailbox, {link.key: None for link in dropped})
                log.flush()
                leases.check(self.mailbox.pk, token)
        except BaseException:
            log.discard()
            raise

    def served(self, token: int) -> None:
        """The request is done with; a newer one (other kinds added meanwhile) stays."""
        MailboxSettings.objects.filter(
            pk=self.mailbox.pk, lease_token=token, removal_requested_at=self.requested_at
        ).update(removal_kinds="", removal_requested_at=None)


def what_failed(error: BackendError) -> str:
    """An error in a few words, for the log entry of each item it kept in the mailbox."""
    return " ".join(part for part in (error.alert or error.plain, error.detail) if part)


def _batches(links: list[Link], size: int) -> Iterator[tuple[FolderKind, list[Link]]]:
    by_folder: dict[FolderKind, list[Link]] = defaultdict(list)
    for link in links:
        by_folder[folder_of(link.key.kind)].append(link)
    for folder, folder_links in by_folder.items():
        for start in range(0, len(folder_links), max(size, 1)):
            yield folder, folder_links[start : start + size]


def _refusal(result: WriteResult) -> str:
    if isinstance(result.error, ConflictError):
        return _("Not removed: changed in Exchange while we deleted it; repeat the removal.")
    reason = result.error.message if result.error else _("unknown")
    return _("Not removed: Exchange refused to delete it (%s).") % reason


def _tally(log: RunLog, links: Iterable[Link], action: str) -> None:
    for link in links:
        log.counts[link.key.kind.value]["exchange"][action] += 1


def _plain(counts: Any) -> dict[str, Any]:
    return {kind: {side: dict(acts) for side, acts in by.items()} for kind, by in counts.items()}


def _default_backend(config: ExchangeConfig, mailbox: MailboxSettings) -> ExchangeBackend:
    from exchange_ext.backends import factory  # lazy: the factory imports every backend

    return factory.backend_for(config, mailbox_settings=mailbox)
