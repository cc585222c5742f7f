"""Where extensions plug their metrics and their worker heartbeat into the operators' endpoints.

Metrics are computed when Prometheus scrapes, from the database: syncs run in separate worker
processes, so counters kept in the web process would see none of them. A collector is an object
with a ``collect()`` method yielding ``prometheus_client`` metric families (a "custom collector");
its queries must be bounded (aggregates, not rows).

A worker heartbeat answers whether the background workers took a task recently, as far as the
extension can tell from what its tasks leave in the database: ``"ok"``, ``"idle"`` (no work was
due, so no heartbeat is expected) or ``"fail"``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from prometheus_client.registry import Collector, CollectorRegistry

WorkerState = Literal["ok", "idle", "fail"]
WorkerHeartbeat = Callable[[], WorkerState]

#: Only what the PSA and its extensions register; no process or platform metrics of the one
#: web process that happens to answer the scrape. ``auto_describe`` stays off, so registering
#: (in ``AppConfig.ready()``, before the database may be used) never runs a query.
METRICS = CollectorRegistry(auto_describe=False)
_collectors: dict[str, Collector] = {}
_heartbeats: dict[str, WorkerHeartbeat] = {}


def register_collector(name: str, collector: Collector) -> None:
    """Add (or replace, by ``name``) a collector of ``/metrics``. Call from ``ready()``."""
    if name in _collectors:
        METRICS.unregister(_collectors[name])
    _collectors[name] = collector
    METRICS.register(collector)


def register_worker_heartbeat(name: str, heartbeat: WorkerHeartbeat) -> None:
    """Add (or replace, by ``name``) a worker heartbeat of ``/healthz``. Call from ``ready()``."""
    _heartbeats[name] = heartbeat


def worker_heartbeats() -> list[WorkerHeartbeat]:
    return list(_heartbeats.values())
