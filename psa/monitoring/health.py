"""What ``/healthz`` checks: the database, the task broker and the workers' heartbeat.

Each check answers a short word, never an exception's text (the body goes to whoever can reach
the server). The workers' heartbeat comes from the extensions (:mod:`psa.monitoring.registry`);
with none registered, or none expecting work, it is ``"idle"`` and does not fail the check.
"""

from __future__ import annotations

import logging

from django.db import connection
from django_q.brokers import get_broker

from psa.monitoring.registry import WorkerState, worker_heartbeats

logger = logging.getLogger(__name__)


def health() -> tuple[bool, dict[str, str]]:
    """``(healthy, {check: word})``: healthy when the database and the broker answer and no
    worker heartbeat says ``"fail"``."""
    database = check_database()
    broker = check_broker()
    worker = check_workers() if database == "ok" else "fail"
    checks = {"database": database, "broker": broker, "worker": worker}
    return all(state in ("ok", "idle") for state in checks.values()), checks


def check_database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as error:
        logger.warning("health check: database unavailable: %s", type(error).__name__)
        return "fail"
    return "ok"


def check_broker() -> str:
    """The broker answers a real request (Redis: LLEN; ORM broker: a count on its table)."""
    try:
        broker = get_broker()
        if not broker.ping():
            return "fail"
        broker.queue_size()
    except Exception as error:
        logger.warning("health check: task broker unavailable: %s", type(error).__name__)
        return "fail"
    return "ok"


def check_workers() -> WorkerState:
    """``"fail"`` when any heartbeat fails, ``"ok"`` when one saw a worker, else ``"idle"``."""
    states: list[WorkerState] = []
    for heartbeat in worker_heartbeats():
        try:
            states.append(heartbeat())
        except Exception as error:
            logger.warning("health check: worker heartbeat failed: %s", type(error).__name__)
            states.append("fail")
    if "fail" in states:
        return "fail"
    return "ok" if "ok" in states else "idle"
