"""``python manage.py exchange_listen``: hold the EWS streaming subscriptions of the enabled
mailboxes and queue a prompt sync when Exchange reports a change (SPEC §4.3 and §9;
exchange_ext/jobs/ews_listener.py; README, "Background sync and scale-out").

Runs until SIGTERM or SIGINT (Ctrl-C), under the process supervisor beside ``qcluster``; one per
installation, or one per shard (``--shard K/N``: mailboxes whose id % N == K) when one service
account's connection limit is not enough. With Microsoft Graph as the backend it holds nothing
and waits (Graph pushes to the notification URL instead).
"""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from exchange_ext.jobs import ews_listener


def shard(value: str) -> tuple[int, int]:
    """``"K/N"`` → (K, N) with 0 ≤ K < N."""
    try:
        index, count = (int(part) for part in value.split("/"))
    except ValueError:
        raise CommandError(f"--shard takes K/N, such as 0/2, not {value!r}") from None
    if count < 1 or not 0 <= index < count:
        raise CommandError(f"--shard {value}: K must be at least 0 and below N")
    return index, count


class Command(BaseCommand):
    help = (
        "Hold EWS streaming subscriptions for the enabled mailboxes and queue a prompt sync on "
        "every change (runs until stopped)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--shard", type=shard, default=(0, 1), metavar="K/N",
                            help="hold only the mailboxes whose id %% N == K")  # fmt: skip
        parser.add_argument(
            "--connections", type=int, default=ews_listener.MAX_CONNECTIONS,
            help="streaming connections at most (Exchange's HangingConnectionLimit per account)",
        )  # fmt: skip
        parser.add_argument(
            "--per-connection", type=int, default=ews_listener.PER_CONNECTION,
            help="subscriptions per connection",
        )  # fmt: skip
        parser.add_argument(
            "--minutes", type=int, default=ews_listener.MINUTES, choices=range(1, 31),
            metavar="1-30", help="how long each connection stays open before it is renewed",
        )  # fmt: skip
        parser.add_argument(
            "--reconcile-seconds", type=float, default=ews_listener.RECONCILE_SECONDS,
            help="how often the enabled mailboxes are compared with the subscriptions held",
        )  # fmt: skip

    def handle(self, *args: Any, **options: Any) -> None:
        if options["connections"] < 1 or options["per_connection"] < 1:
            raise CommandError("--connections and --per-connection must be at least 1")
        listener = ews_listener.Listener(
            shard=options["shard"],
            per_connection=options["per_connection"],
            max_connections=options["connections"],
            minutes=options["minutes"],
            reconcile_seconds=options["reconcile_seconds"],
        )
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        self.stdout.write(f"exchange_listen ({listener.name}) running; stop with Ctrl-C or SIGTERM")
        self.stdout.flush()
        listener.run(stop)
        self.stdout.write("exchange_listen stopped")
