"""Delivery of Graph change and lifecycle notifications: one background thread per sandbox.

Contract:

- ``queue_change(change, subscription_ids)`` is what the store's change listener calls, with the
  store lock held: it only records the change and returns (no I/O, no call into the store).
- The worker thread starts on first use (``start``) and waits for a batching window: ``window``
  seconds after the first waiting change, or sooner when ``max_batch`` changes wait. It then asks
  ``build`` for the notifications (outside every lock of ours, so ``build`` may read the store),
  groups them by notification URL, at most ``max_batch`` per POST, as Graph batches
  notifications of one or more subscriptions into one ``changeNotificationCollection``.
- A POST the endpoint does not take (no 2xx within ``timeout``) is tried again after
  ``retry_delays[0]``, ``retry_delays[1]``, … and then dropped: ``1 + len(retry_delays)`` attempts
  in all, a bounded time. Graph retries for up to four hours and then drops; the sandbox keeps
  the shape and shortens the time. Every attempt, and every notification lost to a paused
  subscription or a full queue, is an entry of the delivery log (``log``).
- ``send_now`` queues one prebuilt POST (lifecycle notifications), with the same retries.
- ``stop()`` ends the thread within a bounded join; what was still waiting is discarded.
"""

from __future__ import annotations

import collections
import datetime as dt
import heapq
import itertools
import logging
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import webhooks

log = logging.getLogger(__name__)

BATCH_WINDOW = 0.2  # seconds a change waits for others to share its POST
MAX_BATCH = 100  # notifications per POST
RETRY_DELAYS = (1.0, 2.0, 4.0)  # after the 1st, 2nd, 3rd failed attempt; then dropped
MAX_QUEUED = 10_000  # changes waiting for the window; more are lost (and logged)
LOG_ENTRIES = 2_000
IDLE_WAIT = 1.0  # the worker wakes at least this often (to notice stop)
STOP_JOIN = 5.0


@dataclass(frozen=True)
class Queued:
    """A store change and the subscriptions it matched when it happened."""

    at: float  # time.monotonic()
    change: Any  # store.Change
    subscription_ids: tuple[str, ...]


@dataclass(order=True)
class Attempt:
    """One POST to make (again): due at ``due`` (monotonic)."""

    due: float
    order: int
    url: str = field(compare=False)
    notifications: list[dict[str, Any]] = field(compare=False)
    subscriptions: list[str] = field(compare=False)
    kind: str = field(compare=False)  # "notification" | "lifecycle"
    number: int = field(default=1, compare=False)
    event: str | None = field(default=None, compare=False)  # the lifecycle event


# (notification URL, subscription id, notification) in change order
Built = list[tuple[str, str, dict[str, Any]]]


class Delivery:
    """The queue, the worker thread and the delivery log of one sandbox (thread-safe).

    ``build`` turns waiting changes into notifications; ``clock`` is the sandbox clock (log
    times). The tunables (``window``, ``max_batch``, ``retry_delays``, ``timeout``) are plain
    attributes a test may lower before it makes changes.
    """

    def __init__(self, build: Callable[[list[Queued]], Built], clock: Callable[[], dt.datetime]):
        self._build = build
        self._clock = clock
        self.window = BATCH_WINDOW
        self.max_batch = MAX_BATCH
        self.retry_delays: tuple[float, ...] = RETRY_DELAYS
        self.timeout = webhooks.DELIVERY_TIMEOUT
        self.context: ssl.SSLContext = webhooks.trust_context([])
        self._cond = threading.Condition()
        self._queue: collections.deque[Queued] = collections.deque()
        self._pending: list[Attempt] = []
        self._order = itertools.count()
        self._log: collections.deque[dict[str, Any]] = collections.deque(maxlen=LOG_ENTRIES)
        self._log_ids = itertools.count(1)
        self._thread: threading.Thread | None = None
        self._stopping = False

    # ------------------------------------------------------------------ producers

    def queue_change(self, change: Any, subscription_ids: tuple[str, ...]) -> None:
        """Record a change for later delivery (called under the store lock: no I/O here)."""
        with self._cond:
            if self._stopping:
                return
            if len(self._queue) >= MAX_QUEUED:
                self._record_lost(
                    list(subscription_ids), "the sandbox's notification queue is full"
                )
                return
            self._queue.append(Queued(time.monotonic(), change, subscription_ids))
            self._cond.notify()

    def send_now(
        self, url: str, notifications: list[dict[str, Any]], subscription_id: str, event: str
    ) -> None:
        """Queue one lifecycle POST for immediate delivery (with retries)."""
        self.start()
        with self._cond:
            attempt = Attempt(time.monotonic(), next(self._order), url, notifications,
                              [subscription_id], "lifecycle", event=event)  # fmt: skip
            heapq.heappush(self._pending, attempt)
            self._cond.notify()

    def record_lost(self, subscription_ids: list[str], reason: str) -> None:
        """Log notifications that will never be sent (a paused subscription)."""
        with self._cond:
            self._record_lost(subscription_ids, reason)

    def _record_lost(self, subscription_ids: list[str], reason: str) -> None:
        self._add_log(
            kind="notification", url=None, subscriptions=subscription_ids,
            notifications=len(subscription_ids), attempt=0, status=None, error=reason,
            outcome="lost",
        )  # fmt: skip

    # ------------------------------------------------------------------ log

    def _add_log(self, **entry: Any) -> None:
        self._log.append({"id": next(self._log_ids), "time": self._clock().isoformat(), **entry})

    def log(self, subscription_id: str | None = None) -> list[dict[str, Any]]:
        """The delivery log (oldest first), or the entries that concern one subscription."""
        with self._cond:
            return [
                dict(e) for e in self._log
                if subscription_id is None or subscription_id in e["subscriptions"]
            ]  # fmt: skip

    def clear(self) -> None:
        """Forget waiting changes, pending retries and the log (sandbox reset)."""
        with self._cond:
            self._queue.clear()
            self._pending.clear()
            self._log.clear()

    # ------------------------------------------------------------------ thread

    def start(self) -> None:
        """Start the worker if it is not running (idempotent; not after ``stop``)."""
        with self._cond:
            if self._stopping or (self._thread is not None and self._thread.is_alive()):
                return
            self._thread = threading.Thread(
                target=self._run, name="sandbox-graph-notifications", daemon=True
            )
            self._thread.start()

    def stop(self, timeout: float = STOP_JOIN) -> None:
        """Stop the worker and wait for it (bounded); later changes are ignored."""
        with self._cond:
            self._stopping = True
            self._queue.clear()
            self._pending.clear()
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while True:
            with self._cond:
                changes, due = self._wait_for_work()
                if changes is None:
                    return
            try:
                attempts = due + self._batches(changes)
                for attempt in attempts:
                    self._attempt(attempt)
            except Exception:  # the thread must outlive a bug in one batch
                log.exception("Graph notification delivery failed inside the sandbox")

    def _wait_for_work(self) -> tuple[list[Queued] | None, list[Attempt]]:
        """Under the lock: wait until changes are ready or a POST is due; None when stopping."""
        while not self._stopping:
            now = time.monotonic()
            ready = bool(self._queue) and (
                len(self._queue) >= self.max_batch or now >= self._queue[0].at + self.window
            )
            due: list[Attempt] = []
            while self._pending and self._pending[0].due <= now:
                due.append(heapq.heappop(self._pending))
            if ready or due:
                changes = list(self._queue) if ready else []
                if ready:
                    self._queue.clear()
                return changes, due
            wake = [IDLE_WAIT]
            if self._queue:
                wake.append(self._queue[0].at + self.window - now)
            if self._pending:
                wake.append(self._pending[0].due - now)
            self._cond.wait(max(0.001, min(wake)))
        return None, []

    def _batches(self, changes: list[Queued]) -> list[Attempt]:
        if not changes:
            return []
        per_url: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for url, subscription_id, notification in self._build(changes):
            per_url.setdefault(url, []).append((subscription_id, notification))
        attempts = []
        now = time.monotonic()
        for url, entries in per_url.items():
            for start in range(0, len(entries), self.max_batch):
                chunk = entries[start : start + self.max_batch]
                subscriptions = list(dict.fromkeys(s for s, _ in chunk))
                attempts.append(Attempt(now, next(self._order), url, [n for _, n in chunk],
                                        subscriptions, "notification"))  # fmt: skip
        return attempts

    def _attempt(self, attempt: Attempt) -> None:
        outcome = webhooks.deliver(attempt.url, attempt.notifications, self.timeout, self.context)
        retry = not outcome.accepted and attempt.number <= len(self.retry_delays)
        result = "delivered" if outcome.accepted else "retrying" if retry else "dropped"
        with self._cond:
            self._add_log(
                kind=attempt.kind, url=attempt.url, subscriptions=attempt.subscriptions,
                notifications=len(attempt.notifications), attempt=attempt.number,
                status=outcome.status, error=outcome.error, outcome=result,
                **({"event": attempt.event} if attempt.event else {}),
            )  # fmt: skip
            if retry and not self._stopping:
                attempt.due = time.monotonic() + self.retry_delays[attempt.number - 1]
                attempt.number += 1
                heapq.heappush(self._pending, attempt)
        if result == "dropped":
            log.info("Graph notifications to %s dropped after %d attempts: %s",
                     attempt.url, attempt.number, outcome.error or outcome.status)  # fmt: skip
