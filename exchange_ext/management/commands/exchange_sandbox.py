"""``manage.py exchange_sandbox``: run the local Exchange (EWS) sandbox in the foreground.

Prints the endpoint, the CA file to trust (``EXCHANGE_CA_BUNDLE``), the control API and the
accounts, then serves until SIGINT/SIGTERM. With ``--state FILE`` the mailboxes are loaded from
the file on start and saved atomically after every write and on exit.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from exchange_ext.sandbox.server import load_config, start_sandbox

MAX_RUN_SECONDS = 10 * 365 * 24 * 3600  # "forever", but a bounded wait nonetheless


class Command(BaseCommand):
    help = "Run the local Exchange Web Services sandbox (for the demo and manual tests)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=8443)
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--tls", choices=("ca", "selfsigned", "none"), default="ca")
        parser.add_argument("--state", type=Path, default=None, help="JSON file for the mailboxes")
        parser.add_argument("--config", type=Path, default=None, help="accounts/mailboxes JSON")
        parser.add_argument(
            "--cert-dir", type=Path, default=None, help="where the CA and leaf are kept"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            config = load_config(options["config"])
            handle = start_sandbox(
                config,
                tls=options["tls"],
                port=options["port"],
                state_file=options["state"],
                host=options["host"],
                cert_dir=options["cert_dir"],
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:  # port taken, bad config/state
            raise CommandError(f"cannot start the sandbox: {exc!r}") from exc
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        self._announce(handle, config)
        try:
            stop.wait(MAX_RUN_SECONDS)
        finally:
            handle.stop()
            self.stdout.write("Exchange sandbox stopped.")

    def _announce(self, handle: Any, config: dict[str, Any]) -> None:
        out = self.stdout
        out.write(f"Exchange sandbox (EWS) listening on {handle.url}")
        out.write(f"CA file: {handle.ca_file or '(none)'}")
        out.write(f"Control API: {handle.control_url}/  (loopback only)")
        if handle.state.state_file:
            out.write(f"State file: {handle.state.state_file}")
        out.write("Accounts (login / password / mailbox / impersonation):")
        for entry in config.get("accounts", []):
            out.write(
                f"  {entry['login']} / {entry['password']} / {entry.get('mailbox', '')}"
                f"{' / ApplicationImpersonation' if entry.get('impersonation') else ''}"
            )
        out.write("Press Ctrl+C to stop.")
        out.flush()
