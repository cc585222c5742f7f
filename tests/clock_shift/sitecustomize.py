"""Loaded by every Python process of ``make test-clock`` (``PYTHONPATH`` points here).

Moves this process's wall clock by ``TEST_CLOCK_OFFSET`` seconds (an integer; unset or empty:
nothing changes) with time-machine, which patches ``time.time``, ``datetime.now``, ``gmtime``,
``localtime``, ``strftime`` and the realtime ``clock_gettime`` inside the interpreter; time
keeps passing. Every process computes its destination from the same offset, so pytest, its
xdist workers, the sandbox and ``qcluster`` subprocesses agree on the date. The monotonic clock
and sleeps stay real.

Why not libfaketime (the shifted runs' first tool): its ``LD_PRELOAD`` build 0.9.10 crashed a
process with many threads (sandbox, exchangelib pools) with SIGSEGV now and then, and a crashed
xdist worker once left the whole CI run hanging until its time limit. A Python-level clock has
no such hook in libc (README, "Tests").

What it does not move: C code that reads the clock itself. The only such reader the suite meets
is OpenSSL checking a certificate's validity dates; the sandbox issues its certificates at the
shifted date, which the real clock has not reached, so in these runs OpenSSL skips that one
date check (``X509_V_FLAG_NO_CHECK_TIME``). Everything else of verification (chain, host name,
purpose) still runs, and the real-clock runs check the dates.
"""

from __future__ import annotations

import os
import ssl
import time

_NO_CHECK_TIME = 0x200000  # OpenSSL's X509_V_FLAG_NO_CHECK_TIME (x509_vfy.h)


def _shift(offset: int) -> None:
    import time_machine

    time_machine.travel(time.time() + offset, tick=True).start()
    time.time()  # the first reading starts the ticking clock, here and not at first use

    original_new = ssl.SSLContext.__new__

    def new(cls: type[ssl.SSLContext], *args: object, **kwargs: object) -> ssl.SSLContext:
        context = original_new(cls, *args, **kwargs)
        context.verify_flags |= _NO_CHECK_TIME
        return context

    ssl.SSLContext.__new__ = new  # type: ignore[method-assign,assignment]


_offset = os.environ.get("TEST_CLOCK_OFFSET", "").strip()
if _offset:
    _shift(int(_offset))
