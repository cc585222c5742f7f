"""Loaded by every Python process of ``make test-clock`` (``PYTHONPATH`` points here).

libfaketime 0.9.10 (Debian bookworm) breaks ``time.sleep`` when the monotonic clock is left
real (``FAKETIME_DONT_FAKE_MONOTONIC=1``): CPython sleeps with ``clock_nanosleep`` on an absolute
monotonic deadline, and libfaketime shifts that deadline by the fake offset into the past, so
every sleep fails with ``EINVAL``. Faking the monotonic clock too is worse: lock and event
timeouts (``sem_clockwait``, which libfaketime does not wrap) then wait about a year. So the
shifted runs keep the monotonic clock real and sleep with ``select`` and a relative timeout,
which libfaketime leaves alone. Only the clock of these runs changes; the code under test does
not.
"""

from __future__ import annotations

import select
import time


def _sleep(seconds: float) -> None:
    if seconds < 0:
        raise ValueError("sleep length must be non-negative")
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        select.select([], [], [], left)


time.sleep = _sleep
