"""The per-mailbox lease with a fencing token (docs/reliability.md, "#32" and "#37").

A run claims the mailbox with a compare-and-set UPDATE that bumps ``lease_token``; every commit
it makes re-checks the token inside its transaction, so a worker whose lease was taken over
(it outlived its budget, a queue re-delivered its task) can never commit. Works the same on
SQLite, where ``select_for_update`` is a no-op, because it relies on UPDATE … WHERE only.

``model``: any model with ``lease_token``, ``lease_holder`` and ``lease_expires_at`` (the
mailbox settings by default; the public contacts folder job uses ``PublicFolderState``).
"""

from __future__ import annotations

import datetime as dt
import os
import socket

from django.db.models import Model, Q
from django.utils import timezone

from exchange_ext.models import MailboxSettings

# The lease outlives the budget a little: the run stops between pages at its deadline and
# still needs to commit its last page and release.
GRACE = dt.timedelta(seconds=60)


class StaleLease(Exception):
    """Another worker holds the mailbox now; this worker's pending commit must roll back."""


def holder_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:100]


def claim(
    mailbox_id: int,
    budget_seconds: float,
    lease_seconds: float | None = None,
    *,
    model: type[Model] = MailboxSettings,
) -> int | None:
    """Take the mailbox's lease; return the fencing token, or ``None`` if someone holds it.

    The lease lasts ``lease_seconds``, by default the budget plus :data:`GRACE`.
    """
    length = dt.timedelta(seconds=lease_seconds) if lease_seconds else None
    now = timezone.now()
    current = model._default_manager.filter(pk=mailbox_id).values_list("lease_token", flat=True)
    token = current.first()
    if token is None:
        return None
    free = Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lte=now)
    # The queued task is now running: a change from here on may queue the next one
    # (exchange_ext.jobs.dispatcher); cleared in the same UPDATE so no observer sees neither.
    # (Only models with a queued mark: the public folder job is queued by interval.)
    queued = {"queued_at": None} if _has_field(model, "queued_at") else {}
    taken = model._default_manager.filter(free, pk=mailbox_id, lease_token=token).update(
        lease_token=token + 1,
        lease_holder=holder_name(),
        lease_expires_at=now + (length or dt.timedelta(seconds=budget_seconds) + GRACE),
        **queued,
    )
    return token + 1 if taken else None


def _has_field(model: type[Model], name: str) -> bool:
    return any(f.name == name for f in model._meta.get_fields())


def check(mailbox_id: int, token: int, *, model: type[Model] = MailboxSettings) -> None:
    """Raise :class:`StaleLease` unless ``token`` still fences the mailbox.

    Call inside the transaction that commits: on PostgreSQL the UPDATE's row lock then holds
    until that commit, so no claim can slip in between the check and the commit.
    """
    held = model._default_manager.filter(pk=mailbox_id, lease_token=token).update(lease_token=token)
    if not held:
        raise StaleLease("the sync lease was taken over by another worker")


def renew(
    mailbox_id: int, token: int, seconds: float, *, model: type[Model] = MailboxSettings
) -> None:
    """Extend the lease to ``seconds`` from now (never shorten it) while ``token`` holds it; a
    run that is still making progress calls this between pages, so a long run (a foreground
    ``exchange_sync``, a big full read) never outlives its lease while another claims it.

    Raises :class:`StaleLease` when the lease was taken over: the run stops there.
    """
    until = timezone.now() + dt.timedelta(seconds=seconds)
    mine = model._default_manager.filter(pk=mailbox_id, lease_token=token)
    mine.filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=until)).update(
        lease_expires_at=until
    )
    if not mine.exists():
        raise StaleLease("the sync lease was taken over by another worker")


def release(mailbox_id: int, token: int, *, model: type[Model] = MailboxSettings) -> None:
    """Give the lease back (only if still ours; a stale worker releases nothing)."""
    model._default_manager.filter(pk=mailbox_id, lease_token=token).update(
        lease_expires_at=None, lease_holder=""
    )
