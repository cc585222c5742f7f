"""**Preview next sync** (SPEC §3.3): what the next run of a mailbox would create, update and
delete on each side, computed with the run's planner, without writing anything.

Per folder the preview reads Exchange's current view *in full* (``read_changes`` from no
state, page by page, then the recurring window, as a full read's last page does), loads the
folder's links and PSA items, and calls :func:`exchange_ext.sync.planner.plan` exactly as the
cycle plans a full read (its per-plan guard off: the engine counts over the whole pass). A
full plan is the whole truth the incremental run converges to: in steady state the next run's
incremental plan performs the same writes. The destructive ops are then counted against the
mass-delete guard as the end of the pass counts them (``sync.held.holds``): a set the guard
would hold is shown as held, not as deletions.

What it never does (the contract its tests check): no Exchange write (only reads: the
session's ``read_changes``, ``read_window``), no sync state or PSA cursor stored (the read
starts from no state and its new states are dropped), no link, held deletion, run or log
written, no mailbox status change, and **no lease taken**: claiming bumps the fencing token
(a write), and a preview cannot harm a run that starts meanwhile, since it writes nothing.
It refuses instead while a run holds the lease (its counts would be stale at once), and
whenever a run would be skipped (:class:`PreviewRefused`).

Bounded: ``budget_seconds`` (a folder whose read did not finish in time is not planned: its
absences would read as deletions; the preview says it is incomplete) and ``max_listed``
items shown per group (the counts are always complete).

Backend errors are caught here, as the runner catches a run's, and returned in the runs'
plain words (:meth:`BackendError.in_plain_words` and its ``hint``); nothing is recorded.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext

from exchange_ext.backends.base import BackendError, ExchangeBackend, FolderKind, MailboxSession
from exchange_ext.engine import held, psa_store
from exchange_ext.engine import status as mailbox_status
from exchange_ext.engine.links import folder_of, known_versions, load_baseline, synced_folders
from exchange_ext.engine.runner import MAX_PAGES_PER_FOLDER
from exchange_ext.engine.runs import ACTIONS
from exchange_ext.models import ExchangeConfig, FolderSyncState, MailboxSettings
from exchange_ext.sync import held as deferred
from exchange_ext.sync import ops as o
from exchange_ext.sync.planner import plan
from exchange_ext.sync.records import (
    CalendarItemType,
    CalendarRecord,
    ExchangeItem,
    ExchangeView,
    ItemKind,
    Link,
    LinkState,
    PsaItem,
    PsaKey,
    SyncOptions,
)
from exchange_ext.sync.windows import window_for

#: A preview answers a waiting administrator: shorter than a run's budget.
PREVIEW_BUDGET_SECONDS = 60.0
#: Items listed per group on the page (the counts cover every op).
MAX_LISTED = 20

SIDES = ("psa", "exchange")
VERBS = ("created", "updated", "deleted")


class PreviewRefused(Exception):
    """The preview cannot run now; ``str(error)`` says why, in plain words."""


@dataclass(frozen=True)
class PreviewItem:
    """One op as the page lists it: the item's title, its start (appointments), its kind and
    the planner's reason."""

    title: str
    when: dt.datetime | None
    kind: ItemKind
    reason: str


@dataclass
class PreviewGroup:
    """The ops of one side × action (``side``: psa/exchange; ``action``: created/updated/
    deleted, as a run's counts); ``items``: the first :data:`MAX_LISTED`."""

    side: str
    action: str
    count: int = 0
    items: list[PreviewItem] = field(default_factory=list)


@dataclass
class Preview:
    """What the next run would do. ``error``/``hint``: a backend error stopped the preview
    (plain words; then the groups are empty). ``unread``: folders whose read the time limit
    cut short (not planned). ``held``: deletions the guard would hold instead of applying;
    ``already_held``: the mailbox holds deletions already (new ones join them)."""

    groups: list[PreviewGroup]
    conflicts: PreviewGroup
    held: PreviewGroup
    already_held: bool = False
    unread: list[FolderKind] = field(default_factory=list)
    error: str = ""
    hint: str = ""

    @property
    def complete(self) -> bool:
        return not self.error and not self.unread

    @property
    def total(self) -> int:
        return sum(group.count for group in self.groups)

    def counts(self) -> dict[str, dict[str, int]]:
        """side → action → count, the shape of a run's per-kind counts summed over kinds."""
        return {side: {g.action: g.count for g in self.groups if g.side == side} for side in SIDES}

    def group(self, side: str, action: str) -> PreviewGroup:
        return next(g for g in self.groups if g.side == side and g.action == action)


def preview_sync(
    mailbox_settings_id: int,
    *,
    backend: ExchangeBackend | None = None,
    now: dt.datetime | None = None,
    budget_seconds: float = PREVIEW_BUDGET_SECONDS,
    max_listed: int = MAX_LISTED,
) -> Preview:
    """Compute the preview of the mailbox's next run; write nothing anywhere.

    Raises :class:`PreviewRefused` when a run would be skipped or one is running now. Backend
    errors are returned in :attr:`Preview.error` (the runs' plain words), never raised.
    ``backend``: defaults to the one a run builds (``backends.factory.backend_for``).
    """
    mailbox = MailboxSettings.objects.select_related("resource__user").get(pk=mailbox_settings_id)
    config = ExchangeConfig.load()
    refusal = why_not_previewable(mailbox, config)
    if refusal:
        raise PreviewRefused(refusal)
    options = psa_store.sync_options(config, mailbox)
    work = _Preview(mailbox, options, now or timezone.now(), time.monotonic() + budget_seconds)
    result = _empty()
    try:
        work.run(backend or _default_backend(config, mailbox), result, max_listed)
    except BackendError as error:
        # What was planned before the error is dropped: a partial count would mislead.
        return replace(_empty(), error=error.in_plain_words(), hint=str(error.hint))
    return result


def _empty() -> Preview:
    return Preview(
        groups=[PreviewGroup(side, action) for side in SIDES for action in VERBS],
        conflicts=PreviewGroup("both", "conflict"),
        held=PreviewGroup("both", "held"),
    )


def why_not_previewable(mailbox: MailboxSettings, config: ExchangeConfig) -> str:
    """Why no preview now, in plain words (``""``: it may run): what skips a run
    (``cycle._MailboxJob.why_not_runnable``), a pending mailbox move (the next run moves items
    first, which a plan cannot show), and a run holding the lease. Reads only."""
    if not config.enabled:
        return gettext("The MS Exchange integration is turned off; nothing syncs.")
    if not mailbox.sync_enabled:
        return gettext("Sync is not enabled for this resource; there is no next sync to preview.")
    if inactive := mailbox_status.inactive_reason(mailbox):
        return inactive
    if mailbox_status.stopped(mailbox):
        return mailbox_status.stop_reason(mailbox)
    if mailbox.previous_mailbox:
        return gettext(
            "The mailbox address changed: the next sync moves the items to the new mailbox "
            "first. Preview again after it."
        )
    if sync_running(mailbox):
        return gettext("A sync of this mailbox is running now. Preview again when it has finished.")
    return ""


def sync_running(mailbox: MailboxSettings) -> bool:
    """Whether a run holds the mailbox's lease now (read-only: ``leases.claim`` bumps the
    token, a preview must not)."""
    fresh = MailboxSettings.objects.filter(pk=mailbox.pk)
    until = fresh.values_list("lease_expires_at", flat=True).first()
    return until is not None and until > timezone.now()


def _default_backend(config: ExchangeConfig, mailbox: MailboxSettings) -> ExchangeBackend:
    from exchange_ext.backends import factory  # lazy: the factory imports every backend

    return factory.backend_for(config, mailbox_settings=mailbox)


class _OutOfTime(Exception):
    """The preview's budget ran out while reading a folder."""


@dataclass
class _Preview:
    mailbox: MailboxSettings
    options: SyncOptions
    now: dt.datetime
    deadline: float

    @property
    def plan_options(self) -> SyncOptions:
        # As the cycle: the planner's per-plan guard is off; the pass's guard is counted here.
        return replace(self.options, guard_overridden=True)

    def folders(self) -> list[FolderKind]:
        """The folders a run reads (``links.synced_folders``)."""
        return synced_folders(self.options)

    def run(self, backend: ExchangeBackend, result: Preview, max_listed: int) -> None:
        result.already_held = held.is_held(self.mailbox)
        with backend.open_session(self.mailbox.effective_mailbox) as session:
            for folder in self.folders():
                try:
                    view = self.read(session, folder)
                except _OutOfTime:
                    result.unread.append(folder)
                    continue
                self.plan_folder(folder, view, result, max_listed)

    def read(self, session: MailboxSession, folder: FolderKind) -> ExchangeView:
        """The folder as a full read sees it, every page and the recurring window; the new
        states the pages return are dropped (never stored)."""
        window = window_for(self.options, self.now)
        known = known_versions(self.mailbox)
        items: list[ExchangeItem] = []
        unchanged: list[str] = []
        state: str | None = None
        for _ in range(MAX_PAGES_PER_FOLDER):
            self.check_time()
            page = session.read_changes(folder, state, window, known)
            items += [*page.created, *page.updated]
            unchanged += page.unchanged
            if not page.more_available or page.new_state == state:
                break
            state = page.new_state
        masters = {
            item.exchange_id
            for item in items
            if item.calendar_item_type is CalendarItemType.RECURRING_MASTER
        }
        if folder is FolderKind.CALENDAR:
            self.check_time()
            occurrences = [item for item in session.read_window(folder, window) if item.master_id]
            masters |= {item.master_id for item in occurrences if item.master_id}
            items += occurrences
        else:
            masters = set()
        return ExchangeView(
            items=tuple(items),
            full_read=True,
            expanded_series=frozenset(masters),
            unchanged=frozenset(unchanged),
        )

    def check_time(self) -> None:
        if time.monotonic() >= self.deadline:
            raise _OutOfTime

    def plan_folder(
        self, folder: FolderKind, view: ExchangeView, result: Preview, max_listed: int
    ) -> None:
        """Plan the folder as the cycle plans a full read, then sort the ops into groups."""
        baseline = {k: v for k, v in load_baseline(self.mailbox).items() if _in(k, folder)}
        window = window_for(self.options, self.now)
        psa = psa_store.load_psa_items(self.mailbox, self.options, window)
        psa = {k: v for k, v in psa.items() if _in(k, folder)}
        ops = list(plan(baseline, psa, view, self.plan_options, self.now).ops)
        ops = self.with_decisions(folder, ops, baseline)
        destructive = [op for op in ops if isinstance(op, o.DESTRUCTIVE)]
        already = held.is_held(self.mailbox, folder.value)
        base = _pass_base(self.mailbox, folder, baseline)
        holding = bool(destructive) and deferred.holds(
            destructive, base, self.options, already_held=already
        )
        describe = _Describer(psa, view)
        for op in ops:
            if holding and isinstance(op, o.DESTRUCTIVE):
                if isinstance(op, o.DeleteInExchange | o.DeletePsa):
                    _add(result.held, describe(op), max_listed)
                continue
            if isinstance(op, o.RecordConflict):
                _add(result.conflicts, describe(op), max_listed)
            elif type(op) in ACTIONS:
                side, action = ACTIONS[type(op)]
                _add(result.group(side, action), describe(op), max_listed)

    def with_decisions(
        self, folder: FolderKind, ops: list[o.Op], baseline: Mapping[PsaKey, Link]
    ) -> list[o.Op]:
        """An administrator's Confirm/Restore of held deletions is carried out by the next run
        before it reads (``cycle._Cycle.apply_decisions``): the decided keys show the
        decision's ops instead of what the plan alone would do with them."""
        confirmed = held.rows(self.mailbox, folder.value, held.State.CONFIRMED)
        restored = held.rows(self.mailbox, folder.value, held.State.RESTORED)
        if not (confirmed or restored):
            return ops
        decided = held.to_ops(confirmed, baseline) + held.restore_ops(restored, baseline)
        keys = {deferred.key_of(op) for op in decided}
        return decided + [op for op in ops if deferred.key_of(op) not in keys]


def _in(key: PsaKey, folder: FolderKind) -> bool:
    return folder_of(key.kind) is folder


def _pass_base(
    mailbox: MailboxSettings, folder: FolderKind, baseline: Mapping[PsaKey, Link]
) -> int:
    """The guard's base as the pass's end counts it: the synced items when the pass began (a
    pass in progress keeps it), else the folder's synced items now."""
    stored = FolderSyncState.objects.filter(mailbox_settings=mailbox, folder=folder.value)
    base = stored.values_list("pass_base", flat=True).first()
    if base is not None:
        return int(base)
    return sum(1 for link in baseline.values() if link.state is LinkState.LINKED)


def _add(group: PreviewGroup, item: PreviewItem, max_listed: int) -> None:
    group.count += 1
    if len(group.items) < max_listed:
        group.items.append(item)


class _Describer:
    """Names an op's item: the PSA item's content, else its Exchange copy's, else its key."""

    def __init__(self, psa: Mapping[PsaKey, PsaItem], view: ExchangeView) -> None:
        self.psa = psa
        self.by_id = {item.exchange_id: item for item in (*view.items, *view.tagged)}

    def __call__(self, op: o.Op) -> PreviewItem:
        key = deferred.key_of(op)
        kind = op.kind if isinstance(op, o.CreateInPsa) else key.kind
        record = self.record_of(op, key)
        title = _title(record) or _fallback_title(op, key)
        when = record.start if isinstance(record, CalendarRecord) else None
        return PreviewItem(title, when, kind, op.reason)

    def record_of(self, op: o.Op, key: PsaKey) -> Any:
        own = getattr(op, "record", None)
        if own is not None:
            return own
        if key in self.psa:
            return self.psa[key].record
        for exchange_id in _exchange_ids(op):
            if exchange_id in self.by_id:
                return self.by_id[exchange_id].record
        return None


def _fallback_title(op: o.Op, key: PsaKey) -> str:
    """A copy whose PSA item is gone and whose content the read skipped (unchanged): its
    number is all that is left to name it by."""
    if isinstance(op, o.DeleteInExchange):
        return gettext("Deleted PSA item #%(number)s") % {"number": key.psa_id}
    return gettext("(untitled)")


def _exchange_ids(op: o.Op) -> Iterable[str]:
    direct = getattr(op, "exchange_id", "")
    link = getattr(op, "link", None)
    return [i for i in (direct, getattr(link, "exchange_id", "")) if i]


def _title(record: Any) -> str:
    if isinstance(record, CalendarRecord):
        return record.subject
    names = [getattr(record, name, "") for name in ("given_name", "surname")]
    return " ".join(n for n in names if n)
