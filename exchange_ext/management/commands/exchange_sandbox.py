"""``manage.py exchange_sandbox``: run the local Exchange (EWS) sandbox in the foreground.

Prints the endpoint, the CA file to trust (``EXCHANGE_CA_BUNDLE``), the control API, its token
and the accounts, then serves until SIGINT/SIGTERM. With ``--state FILE`` the mailboxes are loaded
from the file on start and saved atomically after every write and on exit.

The control token (``X-Sandbox-Token`` on every control API request) is new at every start, or
``EXCHANGE_SANDBOX_TOKEN`` when set; it is also written, mode 0600, to ``--token-file`` (default
``control-token`` beside the CA: ``var/sandbox/control-token``) and removed on exit.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from exchange_ext.sandbox import control
from exchange_ext.sandbox.server import load_config, start_sandbox
from psa.demo.guard import refuse_in_production

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
        parser.add_argument(
            "--token-file",
            type=Path,
            default=None,
            help="where to write the control API token (default: control-token in the cert dir)",
        )
        parser.add_argument(
            "--allow-http-notifications",
            action="store_true",
            help="let Graph subscriptions notify plain http:// URLs (Graph requires https)",
        )
        parser.add_argument(
            "--notification-ca-file",
            type=Path,
            default=None,
            help="a CA file trusted, besides the sandbox CA, for https notification URLs",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        refuse_in_production(
            "exchange_sandbox", "serves a fake Exchange whose accounts have known passwords"
        )
        try:
            config = load_config(options["config"])
            handle = start_sandbox(
                config,
                tls=options["tls"],
                port=options["port"],
                state_file=options["state"],
                host=options["host"],
                cert_dir=options["cert_dir"],
                control_token=os.environ.get("EXCHANGE_SANDBOX_TOKEN") or None,
                allow_http_notifications=options["allow_http_notifications"],
                notification_ca_file=options["notification_ca_file"],
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:  # port taken, bad config/state
            raise CommandError(f"cannot start the sandbox: {exc!r}") from exc
        token_file = options["token_file"] or (
            options["cert_dir"] / control.TOKEN_FILE_NAME
            if options["cert_dir"]
            else control.default_token_file()
        )
        try:
            control.write_token_file(token_file, handle.control_token)
        except OSError as exc:
            handle.stop()
            raise CommandError(f"cannot write the control token to {token_file}: {exc}") from exc
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        self._announce(handle, config, token_file)
        try:
            stop.wait(MAX_RUN_SECONDS)
        finally:
            handle.stop()
            control.remove_token_file(token_file, handle.control_token)
            self.stdout.write("Exchange sandbox stopped.")

    def _announce(self, handle: Any, config: dict[str, Any], token_file: Path) -> None:
        out = self.stdout
        out.write(f"Exchange sandbox (EWS) listening on {handle.url}")
        out.write(f"CA file: {handle.ca_file or '(none)'}")
        out.write(f"Control API: {handle.control_url}/  (loopback only)")
        out.write(
            f"Control token: {handle.control_token}  "
            f"(send as {control.TOKEN_HEADER}; also in {token_file})"
        )
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
