"""Test helpers for prompt syncs: what is queued, and running it as a worker would."""

from __future__ import annotations

import time
from typing import Any

from django.db import OperationalError
from django_q.models import OrmQ

from exchange_ext import tasks
from exchange_ext.jobs import dispatcher
from exchange_ext.models import SyncRun

WAIT = 15.0  # seconds: a notification normally queues its sync well within one


def queued_syncs() -> list[tuple[Any, ...]]:
    """The arguments (mailbox settings id, trigger) of every sync task in the ORM broker."""
    return [
        tuple(task.task["args"]) for task in OrmQ.objects.all()
        if task.func() == dispatcher.SYNC_TASK
    ]  # fmt: skip


def run_queued_syncs() -> list[SyncRun]:
    """What a worker does: run every queued sync task with the arguments it was queued with
    (and drop every other task)."""
    runs = []
    for task in OrmQ.objects.order_by("pk"):
        if task.func() == dispatcher.SYNC_TASK:
            tasks.sync_mailbox(*task.task["args"])
            runs.append(SyncRun.objects.order_by("-pk").first())
        task.delete()
    return runs


def wait_for(condition: Any, what: str, timeout: float = WAIT) -> None:
    """Poll ``condition`` until it is true, at most ``timeout`` seconds. SQLite's in-memory test
    database locks a table while another thread (a listener, the live server) writes it: such a
    poll counts as "not yet" (a file database waits instead, as in production)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except OperationalError as error:
            if "locked" not in str(error):
                raise
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout} s: {what}")
