"""EWS streaming notifications: ``manage.py exchange_listen`` (SPEC §4.3; docs/sync-rules.md,
"Push").

On-premises Exchange cannot reach the PSA, so the PSA holds the connection: one streaming
subscription per enabled EWS mailbox (its calendar and, when contacts sync, its contacts), and
``GetStreamingEvents`` connections that carry up to ``per_connection`` subscriptions each, at
most ``max_connections`` of them (Exchange's HangingConnectionLimit per account, 10 by default
on 2016/2019). An event only queues a prompt sync of its mailbox through the dispatcher (one
queued task per mailbox until it starts); the sync reads the change feed as always, so a lost
event only delays a change to the next polling slot.

The :class:`Listener` loop, every ``reconcile_seconds``:

1. the wanted mailboxes: the integration on, EWS the backend, runnable mailboxes with an
   address (and, with ``--shard K/N``, ``id % N == K``);
2. mailboxes no longer wanted (or whose address or folders changed) are unsubscribed;
3. wanted mailboxes without a subscription are subscribed (acting as the mailbox, the same
   login as the sync); a refusal is retried after :data:`RETRY_SECONDS`;
4. subscriptions are grouped into connections, stable between rounds; a connection whose
   group changed is reopened (Exchange keeps a subscription's events while no connection is
   open, up to 30 minutes, so reopening loses nothing);
5. a heartbeat row (:class:`~exchange_ext.models.ListenerHeartbeat`) for the Status tab.

Each connection runs in a thread: it streams for ``minutes`` (Exchange closes it then) and
reconnects at once; a dropped connection reconnects with back-off (1, 2, 4 … 60 s); Exchange
not knowing a subscription any more (expired, a server restart) drops the group's
subscriptions — the next round subscribes them again — and queues a sync of each of those
mailboxes, as their events may be lost. SIGTERM/SIGINT stop it: every connection is broken off.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import OperationalError, close_old_connections
from django.utils import timezone

from exchange_ext.backends import factory
from exchange_ext.backends.base import BackendError, FolderKind, SubscriptionsLost
from exchange_ext.backends.ews.backend import EwsSession
from exchange_ext.engine import psa_store
from exchange_ext.engine import status as mailbox_status
from exchange_ext.engine.links import synced_folders
from exchange_ext.jobs import dispatcher
from exchange_ext.models import ExchangeConfig, ListenerHeartbeat, MailboxSettings, SyncRun

logger = logging.getLogger(__name__)

PER_CONNECTION = 200  # subscription ids per GetStreamingEvents request
MAX_CONNECTIONS = 10  # Exchange 2016/2019's HangingConnectionLimit per account
MINUTES = 30  # the longest ConnectionTimeout Exchange takes
RECONCILE_SECONDS = 30.0
RETRY_SECONDS = 300.0
BACKOFF_CAP = 60.0
BEAT_SECONDS = 15.0
ENQUEUE_ATTEMPTS = 3  # the heartbeat row is rewritten when it changed, else this often


@dataclass(frozen=True)
class Wanted:
    """A mailbox the listener should hold a subscription for."""

    mailbox_id: int
    address: str
    folders: tuple[FolderKind, ...]


@dataclass
class Held:
    """A subscription the listener holds."""

    wanted: Wanted
    subscription_id: str


def wanted_mailboxes(config: ExchangeConfig, shard: tuple[int, int] = (0, 1)) -> dict[int, Wanted]:
    """Mailbox settings id → what to subscribe, for this shard (the module docstring, 1)."""
    if not (config.enabled and config.backend_name == "ews"):
        return {}
    index, count = shard
    found: dict[int, Wanted] = {}
    mailboxes = MailboxSettings.objects.filter(mailbox_status.runnable()).select_related("resource")
    for mailbox in mailboxes:
        address = mailbox.mailbox.strip().lower()
        folders = tuple(synced_folders(psa_store.sync_options(config, mailbox)))
        if address and folders and mailbox.pk % count == index:
            found[mailbox.pk] = Wanted(mailbox.pk, address, folders)
    return found


def open_session(config: ExchangeConfig, mailbox_id: int, address: str) -> EwsSession:
    """A session acting as ``address`` with the sync's own login (shared or the resource's)."""
    mailbox = MailboxSettings.objects.select_related("resource").get(pk=mailbox_id)
    session = factory.backend_for(config, mailbox_settings=mailbox).open_session(address)
    if not isinstance(session, EwsSession):
        session.close()
        raise BackendError("the configuration no longer uses EWS")
    return session


class Connection(threading.Thread):
    """One GetStreamingEvents connection for a fixed group of subscriptions (see the module
    docstring); ``stop()`` breaks it off."""

    def __init__(self, listener: Listener, group: tuple[Held, ...]) -> None:
        super().__init__(name=f"ews-stream-{group[0].wanted.address}", daemon=True)
        self.listener = listener
        self.group = group
        self.ids = {held.subscription_id: held.wanted.mailbox_id for held in group}
        self._stop_event = threading.Event()
        self._session: EwsSession | None = None
        self._lock = threading.Lock()
        self.open = False

    def stop(self) -> None:
        self._stop_event.set()
        with self._lock:
            if self._session is not None:
                self._session.close()  # a blocked read raises at once

    def run(self) -> None:
        failures = 0
        try:
            while not self._stop_event.is_set():
                try:
                    self._stream_once()
                    failures = 0
                except SubscriptionsLost as error:
                    logger.warning("EWS subscriptions lost (%s): subscribing again", error)
                    self.listener.lost(self.group)
                    return
                except BackendError as error:
                    if self._stop_event.is_set():
                        return
                    failures += 1
                    wait = min(2.0 ** (failures - 1), BACKOFF_CAP)
                    logger.info("EWS stream dropped (%s); reconnecting in %.0f s", error, wait)
                    self.listener.note_error(error.message)
                    self._stop_event.wait(wait)
        finally:
            self.open = False
            close_old_connections()

    def _stream_once(self) -> None:
        anchor = self.group[0].wanted
        session = open_session(self.listener.config, anchor.mailbox_id, anchor.address)
        with self._lock:
            if self._stop_event.is_set():
                session.close()
                return
            self._session = session
        try:
            self.open = True
            for subscription_id in session.stream(list(self.ids), self.listener.minutes):
                mailbox_id = self.ids.get(subscription_id)
                if mailbox_id is not None:
                    self.listener.event(mailbox_id)
        finally:
            self.open = False
            with self._lock:
                self._session = None
            session.close()


@dataclass
class Listener:
    """The listener's state and loop (see the module docstring)."""

    shard: tuple[int, int] = (0, 1)
    per_connection: int = PER_CONNECTION
    max_connections: int = MAX_CONNECTIONS
    minutes: int = MINUTES
    reconcile_seconds: float = RECONCILE_SECONDS
    clock: Callable[[], dt.datetime] = timezone.now
    config: ExchangeConfig = field(default_factory=ExchangeConfig.load)
    held: dict[int, Held] = field(default_factory=dict)
    connections: list[Connection] = field(default_factory=list)
    retry_at: dict[int, float] = field(default_factory=dict)
    last_event_at: dt.datetime | None = None
    last_error: str = ""
    events: int = 0
    _lost: list[tuple[Held, ...]] = field(default_factory=list)
    _beaten: tuple[tuple[object, ...], float] | None = None  # (what, monotonic) last written
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def name(self) -> str:
        index, count = self.shard
        return "ews" if count == 1 else f"ews {index}/{count}"

    # --- called from connection threads ----------------------------------------------------

    def event(self, mailbox_id: int) -> None:
        """An item event of ``mailbox_id``: queue its prompt sync (one until it starts)."""
        with self._lock:
            self.events += 1
            self.last_event_at = self.clock()
        for attempt in range(1, ENQUEUE_ATTEMPTS + 1):
            try:
                dispatcher.enqueue_syncs([mailbox_id], SyncRun.Trigger.EXCHANGE_CHANGE)
                return
            except OperationalError:  # a busy database (SQLite's lock): try again shortly
                close_old_connections()
                if attempt < ENQUEUE_ATTEMPTS:
                    time.sleep(0.1 * attempt)
            except Exception:  # anything else loses a hint, never the listener
                break
        logger.exception("prompt sync of mailbox %s not queued", mailbox_id)

    def lost(self, group: tuple[Held, ...]) -> None:
        with self._lock:
            self._lost.append(group)

    def note_error(self, message: str) -> None:
        with self._lock:
            self.last_error = message

    # --- the loop ----------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Reconcile every ``reconcile_seconds`` until ``stop`` is set; then break off."""
        try:
            while not stop.is_set():
                try:
                    self.reconcile()
                except Exception:  # logged; the next round tries again
                    logger.exception("EWS listener round failed")
                finally:
                    close_old_connections()
                stop.wait(self.reconcile_seconds)
        finally:
            self.close()

    def close(self) -> None:
        for connection in self.connections:
            connection.stop()
        for connection in self.connections:
            connection.join(timeout=10)
        self.connections = []

    def reconcile(self) -> None:
        """One round (the module docstring, 1–5)."""
        self.config = ExchangeConfig.load()
        self._recover_lost()
        wanted = wanted_mailboxes(self.config, self.shard)
        changed = False
        for mailbox_id, held in list(self.held.items()):
            if wanted.get(mailbox_id) != held.wanted:
                self._unsubscribe(held)
                del self.held[mailbox_id]
                changed = True
        capacity = self.per_connection * self.max_connections if self._shared else len(wanted)
        now = time.monotonic()
        for mailbox_id, want in wanted.items():
            if mailbox_id in self.held or len(self.held) >= capacity:
                continue
            if self.retry_at.get(mailbox_id, 0.0) > now:
                continue
            changed |= self._subscribe(want)
        if changed or any(not c.is_alive() for c in self.connections):
            self._regroup()
        self._beat(len(wanted))

    def _recover_lost(self) -> None:
        with self._lock:
            lost, self._lost = self._lost, []
        for group in lost:
            for held in group:
                if self.held.get(held.wanted.mailbox_id) is held:
                    del self.held[held.wanted.mailbox_id]
                self.event(held.wanted.mailbox_id)  # events may be lost: sync anyway

    def _subscribe(self, want: Wanted) -> bool:
        try:
            session = open_session(self.config, want.mailbox_id, want.address)
            try:
                subscription_id = session.subscribe_streaming(want.folders)
            finally:
                session.close()
        except BackendError as error:
            logger.warning("EWS subscription of %s refused: %s", want.address, error)
            self.note_error(f"{want.address}: {error.message}")
            self.retry_at[want.mailbox_id] = time.monotonic() + RETRY_SECONDS
            return False
        self.retry_at.pop(want.mailbox_id, None)
        self.held[want.mailbox_id] = Held(want, subscription_id)
        return True

    def _unsubscribe(self, held: Held) -> None:
        try:
            session = open_session(self.config, held.wanted.mailbox_id, held.wanted.address)
            try:
                session.unsubscribe_streaming(held.subscription_id)
            finally:
                session.close()
        except (BackendError, MailboxSettings.DoesNotExist) as error:
            # It expires by itself after 30 minutes without a connection.
            logger.info("EWS subscription of %s not ended: %s", held.wanted.address, error)

    @property
    def _shared(self) -> bool:
        """One login for every mailbox (impersonation): connections may carry many mailboxes'
        subscriptions. With each resource's own login, each mailbox streams on its own (a
        connection carries one login's subscriptions; each login has its own limit)."""
        return bool(self.config.use_for_all_users)

    def _regroup(self) -> None:
        """Keep each living connection whose group is still held as it is; put every other
        subscription into new connections of up to ``per_connection``."""
        kept: list[Connection] = []
        placed: set[int] = set()
        for connection in self.connections:
            current = all(self.held.get(h.wanted.mailbox_id) is h for h in connection.group)
            if current and connection.is_alive():
                kept.append(connection)
                placed |= {h.wanted.mailbox_id for h in connection.group}
            else:
                connection.stop()
        rest = [held for pk, held in sorted(self.held.items()) if pk not in placed]
        size = self.per_connection if self._shared else 1
        for start in range(0, len(rest), size):
            if self._shared and len(kept) >= self.max_connections:
                break
            connection = Connection(self, tuple(rest[start : start + size]))
            connection.start()
            kept.append(connection)
        self.connections = kept

    def _beat(self, wanted: int) -> None:
        with self._lock:
            last_event, error = self.last_event_at, self.last_error
        what = (wanted, len(self.held), len(self.connections), last_event, error)
        if (
            self._beaten
            and self._beaten[0] == what
            and time.monotonic() - self._beaten[1] < BEAT_SECONDS
        ):
            return  # nothing new, and written recently: spare the database a write a round
        self._beaten = (what, time.monotonic())
        ListenerHeartbeat.objects.update_or_create(
            name=self.name,
            defaults={
                "beat_at": self.clock(), "wanted": wanted, "subscribed": len(self.held),
                "streams": len(self.connections), "last_event_at": last_event, "error": error,
            },
        )  # fmt: skip
