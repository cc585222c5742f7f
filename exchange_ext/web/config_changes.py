"""Saving the General tab: refusal while a sync runs, and the resync reset (docs/sync-rules.md,
"Configuration changes").

A change of version, server address, virtual directory or domain means every stored sync
state points at another server (or another view of it): all folder states are dropped and each
mailbox is stamped ``resync_requested_at`` so its next run re-reads everything, re-linking items
by their PSA tag. A switch of protocol (EWS ⇄ Graph) does the same: the states and the item ids
the links hold are the other protocol's, and the full re-read finds every item again by its tag
or its iCalendar UID (docs/sync-rules.md, "Re-identification"). Such a change, or a credential
change, must not land under a running sync.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from exchange_ext.backends import factory
from exchange_ext.engine import status as mailbox_status
from exchange_ext.models import ExchangeConfig, FolderSyncState, MailboxSettings

RESYNC_FIELDS = ("exchange_version", "server_address", "virtual_directory", "domain")
CREDENTIAL_FIELDS = (
    "username",
    "password",
    "domain",
    "use_basic_auth",
    "use_graph",
    "tenant_id",
    "client_id",
    "client_secret",
    "client_certificate",
    "use_for_all_users",
)
SYNC_RUNNING_MESSAGE = _(
    "We cannot save your changes at this time because a sync is running, please try again later."
)


class SyncRunning(Exception):
    """A guarded change was saved while a mailbox holds a live sync lease (nothing was saved)."""

    def __init__(self, message: str = "") -> None:
        # Translated when raised: a refusal is shown to the administrator saving now.
        super().__init__(message or str(SYNC_RUNNING_MESSAGE))


@dataclass(frozen=True)
class SaveOutcome:
    """``resync_reset``: the sync state was reset; ``mailboxes_reset``: rows stamped."""

    resync_reset: bool
    mailboxes_reset: int


def sync_running(now: dt.datetime | None = None) -> bool:
    """True when any mailbox holds an unexpired sync lease."""
    now = now or timezone.now()
    return MailboxSettings.objects.filter(lease_expires_at__gt=now).exists()


def save_config(new: ExchangeConfig, *, changed: Iterable[str]) -> SaveOutcome:
    """Save ``new`` (the configuration row, possibly unsaved) in one transaction.

    ``changed`` names the form fields the admin changed. When any of them is a resync or a
    credential field and a sync is running, raise :class:`SyncRunning` and save nothing. When a
    resync field changed, or the backend switches (EWS ⇄ Graph), delete every FolderSyncState
    and stamp every MailboxSettings with ``resync_requested_at``. Other changes (interval,
    notifications, …) save at any time. Any save lifts a stop of the shared credentials (their
    fix is on this tab).
    """
    changed = set(changed)
    resync = bool(changed & set(RESYNC_FIELDS)) or _switches_protocol(new)
    guarded = resync or bool(changed & set(CREDENTIAL_FIELDS))
    now = timezone.now()
    with transaction.atomic():
        mailboxes_reset = _lock_out_syncs(now, stamp_resync=resync) if guarded else 0
        _save_singleton(new)
        # The stop of refused shared credentials is the General tab's to lift, by any save: the
        # password may have been fixed in the directory, and an enabled tab saves only after
        # its connection test passed (docs/sync-rules.md, "Errors").
        mailbox_status.lift_shared_stops()
        if resync:
            FolderSyncState.objects.all().delete()
        if guarded:
            # Connections cached under the old endpoint/credentials must not outlive them.
            transaction.on_commit(factory.forget_connections)
    return SaveOutcome(resync_reset=resync, mailboxes_reset=mailboxes_reset)


def _switches_protocol(new: ExchangeConfig) -> bool:
    """Whether saving ``new`` changes the backend from the stored configuration's."""
    stored = ExchangeConfig.objects.filter(pk=1).first()
    return stored is not None and stored.backend_name != new.backend_name


def _save_singleton(new: ExchangeConfig) -> None:
    new.pk = 1  # the singleton row (ExchangeConfig.load)
    if new._state.adding:
        # An unsaved instance must not replace the installation's identity (it tags every item).
        stored = ExchangeConfig.objects.filter(pk=1).values_list("installation_id", flat=True)
        new.installation_id = stored.first() or new.installation_id
    new.save()


def _lock_out_syncs(now: dt.datetime, *, stamp_resync: bool) -> int:
    """Take the write locks a lease claim needs, then check for a running sync.

    The FIRST statement is an UPDATE of every MailboxSettings row (stamping the resync, or a
    no-op assignment): on PostgreSQL it row-locks every mailbox, so a concurrent lease claim
    (an UPDATE of that row) waits for our commit — and a claim committed before it is visible to
    the check that follows (READ COMMITTED takes a fresh snapshot per statement). On SQLite,
    where ``select_for_update`` is a no-op, the UPDATE takes the database's single write lock
    (even when it matches no row) before we read, so no claim can commit between our check and
    our commit. A refusal raises inside the transaction, which rolls the stamp back. The config
    row is also locked so two admins saving at once serialise.
    """
    value = now if stamp_resync else F("resync_requested_at")
    stamped = MailboxSettings.objects.update(resync_requested_at=value)
    ExchangeConfig.objects.select_for_update().filter(pk=1).exists()
    if sync_running(now):
        raise SyncRunning()
    return stamped if stamp_resync else 0


def reset_sync_state(now: dt.datetime | None = None) -> int:
    """Drop every folder sync state and request a full resync of every mailbox; return count.

    Does not check for a running sync (:func:`save_config` does); a sync that commits a state
    afterwards is fenced by its lease token in the sync engine.
    """
    now = now or timezone.now()
    with transaction.atomic():
        FolderSyncState.objects.all().delete()
        return MailboxSettings.objects.update(resync_requested_at=now)
