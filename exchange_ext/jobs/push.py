"""Graph change-notification subscriptions, kept in step with the enabled mailboxes (SPEC §4.3;
docs/sync-rules.md, "Push").

:func:`maintain_graph_subscriptions` runs every minute (the ``exchange-push`` schedule) and
converges the :class:`~exchange_ext.models.GraphSubscription` rows on what is wanted:

- **wanted**: with the integration on, Microsoft Graph the backend and a notification URL
  (:func:`notification_url`), one subscription per runnable mailbox and synced folder (its
  events when the calendar syncs, its contacts when contacts do), for the mailbox's address;
- **created** when missing (a newly enabled mailbox, a saved configuration that turned a folder
  on), with a fresh random ``clientState``; a refusal is kept on the row (``error``) and tried
  again after :data:`RETRY_AFTER`, not every minute;
- **renewed** when it expires within :data:`RENEW_WITHIN` or Graph asked for it
  (``reauthorizationRequired``), to :data:`LIFETIME` from now (Graph allows 10,080 minutes for
  events and contacts; renewing daily keeps two days of margin); one Graph no longer knows is
  created again;
- **deleted** when no longer wanted (mailbox disabled or stopped, folder off, backend changed)
  or watching an old address (a mailbox move): in Graph when the configuration can still reach
  it, always here; a subscription left in Graph expires by itself within :data:`LIFETIME` and its
  notifications are refused meanwhile.

Each run does at most ``limit`` Graph calls and starts none after :data:`SECONDS_PER_RUN` (the
rest is due next minute), so enabling 10,000 mailboxes at once spreads over minutes instead of
one long task, and two runs never overlap. Polling never depends on any
of this: a mailbox without a subscription is synced at its slot as always.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import secrets
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from exchange_ext.backends import factory
from exchange_ext.backends.base import BackendError, FolderKind
from exchange_ext.backends.graph.backend import GraphSession
from exchange_ext.engine import psa_store
from exchange_ext.engine import status as mailbox_status
from exchange_ext.engine.links import synced_folders
from exchange_ext.models import ExchangeConfig, GraphSubscription, MailboxSettings

logger = logging.getLogger(__name__)

LIFETIME = dt.timedelta(days=3)
RENEW_WITHIN = dt.timedelta(days=2)
RETRY_AFTER = dt.timedelta(minutes=30)
CALLS_PER_RUN = 200
#: A run stops starting Graph calls after this long, so that it is over before the schedule's
#: next run (every minute) could start beside it in another worker.
SECONDS_PER_RUN = 45.0
RESOURCES = {FolderKind.CALENDAR: "events", FolderKind.CONTACTS: "contacts"}


def notification_url() -> str | None:
    """Where Graph posts notifications, or None when it cannot: ``PSA_BASE_URL`` must be https
    (Graph delivers to https only). A plain-http loopback address is allowed for the local
    sandbox of the demo, which alone can reach it (docs/sandbox.md)."""
    base = settings.PSA_BASE_URL.rstrip("/")
    parts = urlsplit(base)
    if parts.scheme != "https" and not (parts.scheme == "http" and _loopback(parts.hostname)):
        return None
    return base + reverse("exchange_ext:graph_notifications")


def _loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def push_possible(config: ExchangeConfig) -> bool:
    """Whether Graph push can run for ``config`` (the integration on, Graph, a URL)."""
    return bool(config.enabled and config.backend_name == "graph" and notification_url())


@dataclass
class Summary:
    """What one run of :func:`maintain_graph_subscriptions` did."""

    created: int = 0
    renewed: int = 0
    deleted: int = 0
    failed: list[str] = field(default_factory=list)
    calls: int = 0

    def __str__(self) -> str:
        text = f"{self.created} created, {self.renewed} renewed, {self.deleted} deleted"
        return text + (f", {len(self.failed)} failed" if self.failed else "")


def wanted_subscriptions(config: ExchangeConfig) -> dict[tuple[int, str], str]:
    """(mailbox settings id, resource) → the address to watch, for every runnable mailbox."""
    if not push_possible(config):
        return {}
    wanted: dict[tuple[int, str], str] = {}
    mailboxes = MailboxSettings.objects.filter(mailbox_status.runnable()).select_related("resource")
    for mailbox in mailboxes:
        address = mailbox.mailbox.strip().lower()
        if not address:
            continue
        options = psa_store.sync_options(config, mailbox)
        for folder in synced_folders(options):
            wanted[(mailbox.pk, RESOURCES[folder])] = address
    return wanted


def maintain_graph_subscriptions(
    now: dt.datetime | None = None, *, limit: int = CALLS_PER_RUN
) -> Summary:
    """Create, renew and delete subscriptions as the module docstring says; never raises for
    one mailbox's failure (it is recorded on its row and logged)."""
    now = now or timezone.now()
    deadline = time.monotonic() + SECONDS_PER_RUN
    config = ExchangeConfig.load()
    wanted = wanted_subscriptions(config)
    summary = Summary()

    def spent() -> bool:
        return summary.calls >= limit or time.monotonic() >= deadline

    rows = GraphSubscription.objects.select_related("mailbox_settings__resource").order_by("pk")
    held = {(row.mailbox_settings_id, row.resource): row for row in rows}
    for key, row in list(held.items()):
        if spent():
            return summary
        if wanted.get(key) != row.address:
            _delete(config, row, summary)
            del held[key]  # still wanted (a moved mailbox): created below
        elif row.subscription_id and (row.needs_renewal or _expires_soon(row, now)):
            _renew(config, row, now, summary)
        elif not row.subscription_id and (row.retry_at is None or row.retry_at <= now):
            _create(config, row.mailbox_settings, key[1], row.address, now, summary, row)
    missing = sorted(wanted.keys() - held.keys())
    by_pk = MailboxSettings.objects.select_related("resource").in_bulk({pk for pk, _ in missing})
    for key in missing:
        if spent():
            return summary
        _create(config, by_pk[key[0]], key[1], wanted[key], now, summary, None)
    return summary


def _expires_soon(row: GraphSubscription, now: dt.datetime) -> bool:
    return row.expires_at is None or row.expires_at - now < RENEW_WITHIN


def _session(config: ExchangeConfig, mailbox: MailboxSettings, address: str) -> GraphSession:
    session = factory.backend_for(config, mailbox_settings=mailbox).open_session(address)
    if not isinstance(session, GraphSession):  # the backend changed under us
        session.close()
        raise BackendError("the configuration no longer uses Microsoft Graph")
    return session


def _create(
    config: ExchangeConfig,
    mailbox: MailboxSettings,
    resource: str,
    address: str,
    now: dt.datetime,
    summary: Summary,
    row: GraphSubscription | None,
) -> None:
    url = notification_url()
    assert url is not None  # wanted only when there is one
    client_state = secrets.token_urlsafe(32)
    summary.calls += 1
    session = None
    try:
        session = _session(config, mailbox, address)
        made = session.subscribe(resource, url, client_state, now + LIFETIME)
    except BackendError as error:
        logger.warning("Graph subscription of %s %s refused: %s", address, resource, error)
        summary.failed.append(f"{address} {resource}: {error.message}")
        row = row or GraphSubscription(mailbox_settings=mailbox, resource=resource)
        row.address, row.created_at = address, row.created_at or now
        row.subscription_id, row.client_state, row.expires_at = None, "", None
        row.error, row.retry_at = error.in_plain_words(), now + RETRY_AFTER
        row.save()
        return
    finally:
        if session is not None:
            session.close()
    GraphSubscription.objects.update_or_create(
        mailbox_settings=mailbox,
        resource=resource,
        defaults={
            "address": address, "subscription_id": made.id, "client_state": client_state,
            "expires_at": made.expires_at, "created_at": now, "needs_renewal": False,
            "error": "", "retry_at": None,
        },
    )  # fmt: skip
    summary.created += 1


def _renew(
    config: ExchangeConfig, row: GraphSubscription, now: dt.datetime, summary: Summary
) -> None:
    assert row.subscription_id is not None
    summary.calls += 1
    try:
        session = _session(config, row.mailbox_settings, row.address)
        try:
            renewed = session.renew_subscription(row.subscription_id, now + LIFETIME)
        finally:
            session.close()
    except BackendError as error:
        logger.warning("Graph subscription %s not renewed: %s", row.subscription_id, error)
        summary.failed.append(f"{row.address} {row.resource}: {error.message}")
        row.error = error.in_plain_words()
        row.save(update_fields=["error"])
        return
    if renewed is None:  # Graph no longer has it: make a new one
        _create(config, row.mailbox_settings, row.resource, row.address, now, summary, row)
        return
    row.expires_at, row.needs_renewal, row.error = renewed.expires_at, False, ""
    row.save(update_fields=["expires_at", "needs_renewal", "error"])
    summary.renewed += 1


def _delete(config: ExchangeConfig, row: GraphSubscription, summary: Summary) -> None:
    if row.subscription_id and config.backend_name == "graph":
        summary.calls += 1
        try:
            session = _session(config, row.mailbox_settings, row.address)
            try:
                session.delete_subscription(row.subscription_id)
            finally:
                session.close()
        except BackendError as error:  # it expires by itself; its notifications are refused
            logger.info("Graph subscription %s not deleted: %s", row.subscription_id, error)
    row.delete()
    summary.deleted += 1
