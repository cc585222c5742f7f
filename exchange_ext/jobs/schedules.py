"""The extension's django-q2 schedules, upserted by name (docs/reliability.md, "#33").

:func:`ensure_schedules` runs after every ``migrate`` (a ``post_migrate`` receiver in
:mod:`exchange_ext.apps`), so a fresh install, ``make run`` and every deploy have the schedule
without a manual step, and running it again changes nothing: one row per name, never a second.
Missed runs are not replayed: ``Q_CLUSTER["catch_up"]`` is False (psa/settings.py) — a
dispatcher that was down simply looks at what is due now.
"""

from __future__ import annotations

from django.utils import timezone

DISPATCH_SCHEDULE = "exchange-sync-due"
DISPATCH_TASK = "exchange_ext.tasks.dispatch"


def ensure_schedules() -> None:
    """Create or update the ``exchange-sync-due`` schedule (every minute, forever)."""
    from django_q.models import Schedule

    Schedule.objects.update_or_create(
        name=DISPATCH_SCHEDULE,
        defaults={
            "func": DISPATCH_TASK,
            "schedule_type": Schedule.MINUTES,
            "minutes": 1,
            "repeats": -1,
        },
        # Only a new row gets a first run; an update keeps the running cadence.
        create_defaults={
            "func": DISPATCH_TASK,
            "schedule_type": Schedule.MINUTES,
            "minutes": 1,
            "repeats": -1,
            "next_run": timezone.now(),
        },
    )
