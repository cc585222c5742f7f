"""``python manage.py exchange_watchdog``: the sync watchdog, from outside the background worker.

The ``exchange-watchdog`` schedule runs the same check every five minutes inside the cluster;
a cluster that does not run at all can only be noticed from outside it, so operators run this
from cron or a systemd timer (README, "Background sync and scale-out"), every five to fifteen
minutes. It marks the mailboxes with no completed sync for six intervals as failing and, while
the dispatcher does not fire, sends the alerts itself (docs/sync-rules.md, "Notifications").
Prints one summary line; never fails for what it finds.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from exchange_ext import tasks


class Command(BaseCommand):
    help = (
        "Check that the MS Exchange sync still runs (for cron, outside the background worker): "
        "mailboxes with no sync for six intervals count as failing and the admins are told."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(tasks.watchdog())
