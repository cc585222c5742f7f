"""The extension's django-q2 schedules, upserted by name (docs/reliability.md, "#33").

:func:`ensure_schedules` runs after every ``migrate`` (a ``post_migrate`` receiver in
:mod:`exchange_ext.apps`), so a fresh install, ``make run`` and every deploy have the schedules
without a manual step, and running it again changes nothing: one row per name, never a second.
Missed runs are not replayed: ``Q_CLUSTER["catch_up"]`` is False (psa/settings.py) — a
dispatcher that was down simply looks at what is due now.

- ``exchange-sync-due``: the dispatcher, every minute;
- ``exchange-push``: Graph change-notification subscriptions kept in step, every minute
  (:mod:`exchange_ext.jobs.push`);
- ``exchange-watchdog``: the watchdog, every five minutes, on its own so that it does not stop
  with the dispatcher (:mod:`exchange_ext.jobs.watchdog`); it also puts these rows back when
  one was deleted or altered.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone

DISPATCH_SCHEDULE = "exchange-sync-due"
DISPATCH_TASK = "exchange_ext.tasks.dispatch"
WATCHDOG_SCHEDULE = "exchange-watchdog"
WATCHDOG_TASK = "exchange_ext.tasks.watchdog"
PUSH_SCHEDULE = "exchange-push"
PUSH_TASK = "exchange_ext.tasks.maintain_push"
#: name → (task, minutes between runs); they repeat forever.
SCHEDULES = {
    DISPATCH_SCHEDULE: (DISPATCH_TASK, 1),
    WATCHDOG_SCHEDULE: (WATCHDOG_TASK, 5),
    PUSH_SCHEDULE: (PUSH_TASK, 1),
}


def ensure_schedules() -> None:
    """Create or update every schedule of :data:`SCHEDULES` by name."""
    from django_q.models import Schedule

    for name, (func, minutes) in SCHEDULES.items():
        Schedule.objects.update_or_create(
            name=name,
            defaults=_definition(func, minutes),
            # Only a new row gets a first run; an update keeps the running cadence.
            create_defaults={**_definition(func, minutes), "next_run": timezone.now()},
        )


def schedules_in_place() -> bool:
    """Whether every schedule exists as :func:`ensure_schedules` defines it."""
    from django_q.models import Schedule

    rows = Schedule.objects.filter(name__in=SCHEDULES).values_list(
        "name", "func", "schedule_type", "minutes", "repeats"
    )
    found = {name: tuple(rest) for name, *rest in rows}
    wanted = {name: tuple(_definition(func, m).values()) for name, (func, m) in SCHEDULES.items()}
    return found == wanted


def _definition(func: str, minutes: int) -> dict[str, Any]:
    from django_q.models import Schedule

    return {"func": func, "schedule_type": Schedule.MINUTES, "minutes": minutes, "repeats": -1}
