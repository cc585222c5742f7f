"""A tiny background task that proves a worker picked up the queue (used by the worker tests).

django-q2 imports tasks by dotted path, so it lives in an installed module, not in a test file.
"""

from __future__ import annotations

import os


def describe_worker(token: str) -> dict[str, object]:
    """Return ``token`` with the id of the process that ran the task."""
    return {"token": token, "pid": os.getpid()}
