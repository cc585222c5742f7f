"""``manage.py exchange_demo_setup``: point an unconfigured extension at the local sandbox.

``make run`` calls it after ``load_demo`` so the demo's General tab is filled in with the
sandbox that ``run_demo`` starts (``localhost:8443``, service account ``svc-sync``). It never
touches a configuration that already names a server, and it enables no resource: choosing who
syncs stays the administrator's step on the Resources tab.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from exchange_ext.models import ExchangeConfig
from exchange_ext.secrets import Secret

SANDBOX_ADDRESS = "localhost:8443"


class Command(BaseCommand):
    help = "Fill an unconfigured MS Exchange configuration with the local sandbox's settings."

    def handle(self, *args: Any, **options: Any) -> None:
        config = ExchangeConfig.load()
        if config.server_address:
            self.stdout.write(f"MS Exchange is already configured ({config.server_address}).")
            return
        config.profile_name = "Northwind sandbox"
        config.server_address = SANDBOX_ADDRESS
        config.use_basic_auth = True
        config.use_graph = False
        config.username = "svc-sync"
        config.password = Secret("sandbox-sync")
        config.domain = "NORTHWIND"
        config.use_for_all_users = True
        config.notification_emails = "it-ops@northwind.example"
        config.full_clean()
        config.save()
        self.stdout.write(f"MS Exchange now points at the local sandbox ({SANDBOX_ADDRESS}).")
