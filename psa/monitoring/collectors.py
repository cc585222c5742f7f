"""The PSA's own metrics: the task queue and login lockouts (django-axes)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from axes.models import AccessAttempt
from django.conf import settings
from django.utils import timezone
from django_q.brokers import get_broker
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

logger = logging.getLogger(__name__)


class PsaCollector:
    """Computed at scrape time; one bounded query or broker call per metric."""

    def collect(self) -> Iterator[Metric]:
        yield from task_queue_metrics()
        yield from login_lockout_metrics()


def task_queue_metrics() -> Iterator[Metric]:
    """Tasks waiting in django-q2's broker (ORM table or Redis list), and whether it answered."""
    up = GaugeMetricFamily("psa_task_broker_up", "1 when the task broker answered this scrape.")
    try:
        waiting = int(get_broker().queue_size() or 0)
    except Exception as error:  # Redis down: the scrape still answers, saying so
        logger.warning("task broker unavailable for metrics: %s", type(error).__name__)
        up.add_metric([], 0)
        yield up
        return
    up.add_metric([], 1)
    yield up
    yield GaugeMetricFamily(
        "psa_task_queue_depth", "Tasks waiting in the task broker's queue.", value=waiting
    )


def login_lockout_metrics() -> Iterator[Metric]:
    """Logins locked out now, and the stored failure records behind them."""
    since = timezone.now() - settings.AXES_COOLOFF_TIME
    records = AccessAttempt.objects.all()
    locked = records.filter(
        failures_since_start__gte=settings.AXES_FAILURE_LIMIT, attempt_time__gte=since
    )
    yield GaugeMetricFamily(
        "psa_login_lockouts",
        "Login and client address pairs locked out now after too many wrong passwords.",
        value=locked.count(),
    )
    yield GaugeMetricFamily(
        "psa_login_failure_records",
        "Stored records of failed logins (django-axes access attempts).",
        value=records.count(),
    )
