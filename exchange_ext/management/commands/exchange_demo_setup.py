"""``manage.py exchange_demo_setup [--graph]``: point the extension at the local sandbox.

``make run`` calls it after ``load_demo`` so the demo's General tab is filled in with the
sandbox that ``run_demo`` starts (``localhost:8443``): over EWS with the service account
``svc-sync`` by default, or over Microsoft Graph with the sandbox's app registration with
``--graph``. Without ``--graph`` it never touches a configuration that already names a server;
``--graph`` (and ``--ews``) switch deliberately, keeping every other setting. It enables no
resource: choosing who syncs stays the administrator's step on the Resources tab.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from exchange_ext.models import ExchangeConfig
from exchange_ext.secrets import Secret
from psa.demo.guard import refuse_in_production

SANDBOX_ADDRESS = "localhost:8443"
# The sandbox's Entra tenant and full-access app (exchange_ext/sandbox/default_config.json).
SANDBOX_TENANT_ID = "7d3f1b2a-5c4e-4f6a-9b8c-1a2b3c4d5e6f"
SANDBOX_CLIENT_ID = "0f6a3e2d-1b4c-4d5e-8f90-a1b2c3d4e5f6"
SANDBOX_CLIENT_SECRET = "sandbox-graph-secret"


class Command(BaseCommand):
    help = "Fill the MS Exchange configuration with the local sandbox's settings (EWS or Graph)."

    def add_arguments(self, parser: CommandParser) -> None:
        path = parser.add_mutually_exclusive_group()
        path.add_argument("--graph", action="store_true", help="switch to Microsoft Graph")
        path.add_argument("--ews", action="store_true", help="switch to EWS (basic auth)")

    def handle(self, *args: Any, **options: Any) -> None:
        refuse_in_production(
            "exchange_demo_setup",
            "points MS Exchange at the local sandbox with the sandbox's known credentials",
        )
        config = ExchangeConfig.load()
        if config.server_address and not (options["graph"] or options["ews"]):
            self.stdout.write(f"MS Exchange is already configured ({config.server_address}).")
            return
        config.profile_name = config.profile_name or "Northwind sandbox"
        config.server_address = SANDBOX_ADDRESS
        config.notification_emails = config.notification_emails or "it-ops@northwind.example"
        if options["graph"]:
            use_graph_sandbox(config)
        else:
            use_ews_sandbox(config)
        config.full_clean()
        config.save()
        path = "Microsoft Graph" if config.backend_name == "graph" else "EWS"
        self.stdout.write(f"MS Exchange now points at the local sandbox ({path}).")


def use_ews_sandbox(config: ExchangeConfig) -> None:
    config.use_basic_auth = True
    config.use_graph = False
    config.username = "svc-sync"
    config.password = Secret("sandbox-sync")
    config.domain = "NORTHWIND"
    config.use_for_all_users = True


def use_graph_sandbox(config: ExchangeConfig) -> None:
    config.use_basic_auth = False
    config.use_graph = True
    config.tenant_id = SANDBOX_TENANT_ID
    config.client_id = SANDBOX_CLIENT_ID
    config.client_secret = Secret(SANDBOX_CLIENT_SECRET)
    config.use_for_all_users = True
