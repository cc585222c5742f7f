"""System check: sync budget < task timeout < lease < retry (docs/sync-rules.md, "Scheduling,
leases and budgets"; docs/reliability.md, "#3", "#32", "#35").

Registered by :mod:`exchange_ext.apps`; ``manage.py check``, ``runserver`` and ``qcluster``
(every management command that runs checks) fail with a clear message when the settings
would let django-q2 run one mailbox's task twice at once or kill a run mid-page.
"""

from __future__ import annotations

from typing import Any

from django.core.checks import Error, Warning, register

from exchange_ext import tasks


@register()
def check_task_timing(app_configs: Any = None, **kwargs: Any) -> list[Error | Warning]:
    """Errors E001–E002 for an inconsistent timing chain, W001 for unlimited attempts."""
    budget = tasks.sync_budget_seconds()
    call = tasks.backend_retry_budget_seconds()
    timeout, retry = tasks.task_timeout_seconds(), tasks.task_retry_seconds()
    lease = tasks.lease_seconds()
    problems: list[Error | Warning] = []
    if budget <= 0 or budget + call + tasks.MARGIN_SECONDS >= timeout:
        problems.append(
            Error(
                f"The sync budget ({budget:g} s) plus one backend call's retry budget "
                f"({call:g} s) plus {tasks.MARGIN_SECONDS:g} s must be less than the task "
                f"timeout Q_TIMEOUT ({timeout:g} s).",
                hint="Lower EXCHANGE_SYNC_BUDGET_SECONDS / EXCHANGE_RETRY_BUDGET_SECONDS or "
                "raise Q_TIMEOUT.",
                id="exchange_ext.E001",
            )
        )
    if timeout >= retry or lease >= retry:
        problems.append(
            Error(
                f"The task timeout Q_TIMEOUT ({timeout:g} s) and the sync lease "
                f"({lease:g} s) must be less than Q_RETRY ({retry:g} s): otherwise the "
                "broker hands a running sync to a second worker, or a re-delivered task "
                "finds the mailbox still leased.",
                hint=f"Set Q_RETRY above {lease:g} s.",
                id="exchange_ext.E002",
            )
        )
    if not _max_attempts():
        problems.append(
            Warning(
                "Q_CLUSTER max_attempts is unlimited: a failing sync task is retried forever.",
                hint="Set max_attempts to 1: the next scheduled run is the retry.",
                id="exchange_ext.W001",
            )
        )
    return problems


def _max_attempts() -> int:
    from django.conf import settings

    return int(settings.Q_CLUSTER.get("max_attempts") or 0)
