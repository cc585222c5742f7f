"""Finishing a mailbox move before a run syncs the new address (docs/sync-rules.md, "Mailbox
moves").

When an administrator changes a resource's mailbox address, ``MailboxSettings.save`` keeps the
old one in ``previous_mailbox``. The next run, under the mailbox's lease and before it syncs the
new address, finishes the move:

1. every item this installation tagged in the old mailbox is deleted there (without a change
   key: they are ours, whatever Outlook did to them). A mailbox that no longer exists, or that
   the sync account may no longer open, is reported in the run's log and the move goes on;
   any other error (an outage, refused credentials) fails the run, and the next one retries;
2. the new mailbox is read in full (series expanded in the window);
3. in one transaction fenced by the lease: the links are moved
   (:func:`exchange_ext.sync.moves.links_after_move`: imported items follow the item of the
   same UID in the new mailbox, or are unlinked; links of PSA items are dropped), every folder
   state is dropped (Graph delta links name ``/users/<old address>``, EWS states the old
   mailbox), so are deletions pending or held on the old mailbox, and ``previous_mailbox`` is
   cleared.

The run then reads the new mailbox in full: PSA items adopt their tagged copies already there
or are created. A crash anywhere before the transaction leaves ``previous_mailbox`` set and the
next run does it all again (each step is idempotent); after it, the run's own full read
converges. No PSA item is deleted by a move, and nothing is duplicated.
"""

from __future__ import annotations

import logging

from django.db import transaction

from exchange_ext.backends.base import (
    ExchangeBackend,
    FolderKind,
    ImpersonationDenied,
    ItemDeletion,
    MailboxNotFound,
    MailboxSession,
)
from exchange_ext.engine import leases
from exchange_ext.engine.links import load_baseline, save_links
from exchange_ext.engine.runner import MAX_PAGES_PER_FOLDER
from exchange_ext.engine.runs import RunLog
from exchange_ext.models import FolderSyncState, FullReadSeen, HeldDeletion, MailboxSettings
from exchange_ext.sync import ops as o
from exchange_ext.sync.moves import links_after_move, old_mailbox_deletions
from exchange_ext.sync.records import ExchangeItem, ItemKind, SyncOptions
from exchange_ext.sync.windows import SyncWindow

logger = logging.getLogger(__name__)

# The old mailbox is gone, or no longer ours to open: report and move on (retrying would not
# help, and the new mailbox must not wait for it).
_UNREACHABLE = (MailboxNotFound, ImpersonationDenied)
_FOLDERS = (FolderKind.CALENDAR, FolderKind.CONTACTS)


def finish_pending_move(
    mailbox: MailboxSettings,
    token: int,
    backend: ExchangeBackend,
    options: SyncOptions,
    log: RunLog,
    window: SyncWindow,
) -> None:
    """Move the items from ``mailbox.previous_mailbox`` to its address, if a move is pending.

    Call under the mailbox's lease (``token``), before the run opens the new address. Raises
    the backend's session errors but :data:`_UNREACHABLE` for the old mailbox.
    """
    if not mailbox.previous_mailbox:
        return
    old = mailbox.previous_mailbox
    removed: list[tuple[o.Op, ItemKind]] = []
    found: list[ExchangeItem] = []
    if mailbox.move_pending:
        removed = _clean_old_mailbox(backend, old, options, log, window)
        with backend.open_session(mailbox.effective_mailbox) as session:
            found = _read_calendar_and_contacts(session, window)
    with transaction.atomic():
        if mailbox.move_pending:
            save_links(mailbox, links_after_move(load_baseline(mailbox), found))
            # What was read of the old mailbox, and what waits on it, means nothing now: the
            # run's full read of the new one decides afresh (a held PSA delete must not apply).
            for model in (FolderSyncState, FullReadSeen, HeldDeletion):
                model.objects.filter(mailbox_settings=mailbox).delete()
        mine = MailboxSettings.objects.filter(pk=mailbox.pk, lease_token=token)
        # An address changed again meanwhile moves next from the one this run synced.
        mine.filter(mailbox=mailbox.mailbox).update(previous_mailbox="")
        mine.exclude(mailbox=mailbox.mailbox).update(previous_mailbox=mailbox.mailbox)
        log.flush()
        leases.check(mailbox.pk, token)
    for op, kind in removed:
        log.count(op, kind)
    logger.info("mailbox %s moved from %s to %s", mailbox.pk, old, mailbox.mailbox)
    mailbox.previous_mailbox = ""


def _clean_old_mailbox(
    backend: ExchangeBackend, address: str, options: SyncOptions, log: RunLog, window: SyncWindow
) -> list[tuple[o.Op, ItemKind]]:
    """Delete our tagged items in the old mailbox; the deletes that succeeded."""
    removed: list[tuple[o.Op, ItemKind]] = []
    try:
        with backend.open_session(address) as session:
            for folder in _FOLDERS:
                deletions = old_mailbox_deletions(_read_all(session, folder, window), options)
                removed += _delete(session, folder, deletions, address, log)
    except _UNREACHABLE as error:
        log.error(
            None, "",
            f"The previous mailbox {address} could not be opened ({error.in_plain_words()}); "
            "the copies the sync had written there were not removed.",
        )  # fmt: skip
    return removed


def _read_calendar_and_contacts(session: MailboxSession, window: SyncWindow) -> list[ExchangeItem]:
    items = [item for folder in _FOLDERS for item in _read_all(session, folder, window)]
    occurrences = session.read_window(FolderKind.CALENDAR, window)
    return items + [item for item in occurrences if item.master_id]


def _read_all(
    session: MailboxSession, folder: FolderKind, window: SyncWindow
) -> list[ExchangeItem]:
    items: list[ExchangeItem] = []
    state: str | None = None
    for _ in range(MAX_PAGES_PER_FOLDER):
        page = session.read_changes(folder, state, window)
        items += [*page.created, *page.updated]
        if not page.more_available or page.new_state == state:
            break
        state = page.new_state
    return items


def _delete(
    session: MailboxSession,
    folder: FolderKind,
    deletions: list[o.DeleteInExchange],
    address: str,
    log: RunLog,
) -> list[tuple[o.Op, ItemKind]]:
    removed: list[tuple[o.Op, ItemKind]] = []
    for start in range(0, len(deletions), session.max_batch):
        batch = deletions[start : start + session.max_batch]
        results = session.delete(folder, [ItemDeletion(op.exchange_id) for op in batch])
        for op, result in zip(batch, results, strict=True):
            if result.ok:
                removed.append((op, op.key.kind))
                continue
            reason = result.error.message if result.error else "unknown"
            message = f"Not removed from the previous mailbox {address}: {reason}"
            log.error(op.key, op.exchange_id, message)
    return removed
