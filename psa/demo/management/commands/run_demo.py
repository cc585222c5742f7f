"""``manage.py run_demo``: the web server, a worker, the EWS push listener and (when present) the
Exchange sandbox.

``make run`` calls this after ``load_demo``. Ctrl-C or SIGTERM stops every child cleanly; if one
child dies, the others are stopped and the command exits non-zero. ``PSA_PORT`` changes the port.
"""

from __future__ import annotations

import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import get_commands
from django.core.management.base import BaseCommand, CommandError

from psa.demo.guard import refuse_in_production
from psa.demo.reference import load_reference
from psa.demo.supervisor import Child, Supervisor
from psa.environment import env_int

READY_TIMEOUT = 60.0  # seconds to wait for the login page before printing the banner anyway


SANDBOX_PORT = 8443


def trust_sandbox() -> None:
    """Let the web server and the worker reach the sandbox, unless the operator decided otherwise.

    The children inherit these: the sandbox's certificate is issued by a local CA that the
    product trusts only through EXCHANGE_CA_BUNDLE, and its port is not one of Exchange's.
    """
    ca_file = Path(settings.VAR_DIR) / "sandbox" / "ca.pem"
    os.environ.setdefault("EXCHANGE_CA_BUNDLE", str(ca_file))
    os.environ.setdefault("EXCHANGE_ALLOWED_PORTS", f"443,2610,{SANDBOX_PORT}")
    # localhost is loopback, which the product refuses unless listed.
    os.environ.setdefault("EXCHANGE_ALLOWED_NETWORKS", "127.0.0.0/8,::1/128")
    # The sandbox also serves the Entra token endpoint and Graph, for the demo's Graph path.
    os.environ.setdefault("GRAPH_AUTHORITY_URL", f"https://localhost:{SANDBOX_PORT}")
    os.environ.setdefault("GRAPH_BASE_URL", f"https://localhost:{SANDBOX_PORT}")


class Command(BaseCommand):
    help = "Run the demo: web server on 127.0.0.1:$PSA_PORT (8000), worker, Exchange sandbox."

    def handle(self, *args: Any, **options: Any) -> None:
        refuse_in_production(
            "run_demo", "runs the demo, whose logins and Exchange sandbox use known passwords"
        )
        port = env_int("PSA_PORT", 8000)
        url = f"http://127.0.0.1:{port}/"
        supervisor = Supervisor()
        supervisor.handle_signals()
        for child in self.children(port):
            supervisor.start(child)
        try:
            self.wait_until_ready(supervisor, f"{url}accounts/login/")
            if supervisor.first_exited() is None:
                self.print_banner(url, supervisor.children)
            died = supervisor.watch()
        finally:
            self.stdout.write("Stopping the demo...")
            supervisor.stop_all()
        if died is not None:
            tail = died.tail()
            where = f"; last lines of {died.log}:\n{tail}" if tail else ""
            raise CommandError(
                f"{died.name} exited with code {died.process.returncode}, so the demo stopped"
                f"{where}"
            )

    def children(self, port: int) -> list[Child]:
        manage = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py")]
        logs = Path(settings.VAR_DIR) / "log"
        children = [
            # --noreload: one process per child, so stopping the group stops the server.
            Child(
                "web server",
                [*manage, "runserver", f"127.0.0.1:{port}", "--noreload"],
                logs / "web.log",
            ),
            Child("worker", [*manage, "qcluster"], logs / "worker.log"),
            # EWS streaming notifications: Outlook edits reach the demo within seconds.
            Child("push listener", [*manage, "exchange_listen"], logs / "listener.log"),
        ]
        if "exchange_sandbox" in get_commands():
            trust_sandbox()
            state = Path(settings.VAR_DIR) / "sandbox-state.json"
            # Its output (endpoint, CA certificate path) is for the operator: pass it through.
            children.append(
                Child(
                    "Exchange sandbox",
                    [
                        *manage,
                        "exchange_sandbox",
                        "--port",
                        str(SANDBOX_PORT),
                        "--state",
                        str(state),
                        # The demo's web server is plain http on loopback (Graph push there).
                        "--allow-http-notifications",
                    ],
                )
            )
        return children

    def wait_until_ready(self, supervisor: Supervisor, login_url: str) -> None:
        """Poll the login page so the banner appears when the URL really works."""
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline and not supervisor.stop_requested:
            if supervisor.first_exited() is not None:
                return  # watch() reports it
            try:
                with urllib.request.urlopen(login_url, timeout=2):
                    return
            except (urllib.error.URLError, OSError):
                time.sleep(0.5)

    def print_banner(self, url: str, children: list[Child]) -> None:
        technicians = [p["username"] for p in load_reference().staff["people"]][1:]
        logs = ", ".join(f"{c.name}: {c.log}" for c in children if c.log)
        lines = [
            "",
            f"  PSA demo running at {url}",
            "  Logins (for the demo only, password 'demo'):",
            "    admin / demo            administrator, manages the MS Exchange extension",
            f"    {technicians[0]} … {technicians[-1]} / demo     technicians",
            f"  Logs: {logs}",
            "  Press Ctrl-C to stop.",
            "",
        ]
        self.stdout.write("\n".join(lines))
