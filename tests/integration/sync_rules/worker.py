"""A sync worker in a process of its own, on the test's database, that the test can SIGKILL.

On PostgreSQL the worker connects to pytest-django's test database (the test must be
transactional, so the worker sees committed rows). SQLite's test database lives in the test
process's memory: it is copied to a file for the worker and the file copied back afterwards,
so the test process sees exactly what the worker committed before it died.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from django.db import connection

ROOT = Path(__file__).resolve().parents[3]

RUN_ONE_SYNC = """
import datetime as dt, sys
import django
django.setup()
from exchange_ext.engine import run_sync
run_sync(int(sys.argv[1]), now=dt.datetime.fromisoformat(sys.argv[2]))
"""


@contextlib.contextmanager
def shared_database(tmp_path: Path) -> Iterator[str]:
    """The DATABASE_URL a worker process uses to see (and write) the test's database."""
    settings = connection.settings_dict
    if connection.vendor == "postgresql":
        user, host = settings["USER"] or "postgres", settings["HOST"] or "127.0.0.1"
        port = settings["PORT"] or 5432
        yield f"postgres://{user}@{host}:{port}/{settings['NAME']}"
        return
    assert connection.vendor == "sqlite", connection.vendor
    path = tmp_path / "worker.sqlite3"
    connection.ensure_connection()
    raw = connection.connection
    with contextlib.closing(sqlite3.connect(path)) as copy:
        raw.backup(copy)
    yield f"sqlite:///{path}"
    with contextlib.closing(sqlite3.connect(path)) as copy:
        copy.backup(raw)


def kill_worker_when(
    database_url: str, mailbox_id: int, now: dt.datetime, ready: Callable[[], bool],
    timeout: float = 60.0,
) -> str:  # fmt: skip
    """Run one sync in a worker process, SIGKILL it once ``ready()``; return its output."""
    env = {**os.environ, "DATABASE_URL": database_url, "DJANGO_SETTINGS_MODULE": "psa.settings"}
    worker = subprocess.Popen(
        [sys.executable, "-c", RUN_ONE_SYNC, str(mailbox_id), now.isoformat()],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            if worker.poll() is not None or time.monotonic() > deadline:
                output = worker.communicate(timeout=10)[0].decode(errors="replace")
                raise AssertionError(f"the worker was not caught in time:\n{output}")
            time.sleep(0.02)
        os.killpg(worker.pid, signal.SIGKILL)
        output = worker.communicate(timeout=10)[0].decode(errors="replace")
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(10)
    assert worker.returncode == -signal.SIGKILL, output
    return output
