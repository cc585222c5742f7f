"""``python manage.py exchange_sync [--resource ID | --all]``: one sync cycle in the foreground.

Prints one summary line per resource (what was written on each side, conflicts, errors,
outcome) and exits non-zero when any run failed or stopped at the mass-delete guard
(SPEC §9). ``ID`` is the Resource id, as in the URL of the resource's settings page.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from exchange_ext.engine import run_sync
from exchange_ext.models import ExchangeConfig, MailboxSettings, SyncRun

FAILED = (SyncRun.Outcome.FAILED, SyncRun.Outcome.GUARD_TRIPPED)


class Command(BaseCommand):
    help = "Run one MS Exchange sync cycle for one resource or every enabled resource."

    def add_arguments(self, parser: CommandParser) -> None:
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--resource", type=int, metavar="ID", help="the resource's id")
        target.add_argument("--all", action="store_true", help="every enabled resource")

    def handle(self, *args: Any, **options: Any) -> None:
        check_setup(ExchangeConfig.load())
        mailboxes = mailboxes_for(options["resource"], every=options["all"])
        runs = [run_sync(mailbox.pk) for mailbox in mailboxes]
        for mailbox, run in zip(mailboxes, runs, strict=True):
            self.stdout.write(summary(mailbox, run))
        failed = sum(run.outcome in FAILED for run in runs)
        if failed:
            raise CommandError(f"{failed} of {len(runs)} sync runs failed.")


def check_setup(config: ExchangeConfig) -> None:
    """Refuse with a clear message when nothing could sync."""
    if not config.enabled:
        raise CommandError("The MS Exchange integration is turned off (General tab).")
    missing = not config.tenant_id if config.backend_name == "graph" else not config.server_address
    if missing:
        raise CommandError("The Exchange server is not configured yet (General tab).")
    if importlib.util.find_spec("exchange_ext.backends.factory") is None:
        raise CommandError("No Exchange backend is available in this installation yet.")


def mailboxes_for(resource_id: int | None, *, every: bool) -> list[MailboxSettings]:
    enabled = MailboxSettings.objects.select_related("resource").filter(
        sync_enabled=True, resource__active=True
    )
    if every:
        return list(enabled.order_by("resource_id"))
    found = enabled.filter(resource_id=resource_id).first()
    if found is None:
        raise CommandError(
            f"Resource {resource_id} does not exist or is not enabled for MS Exchange sync "
            "(Resources tab)."
        )
    return [found]


def summary(mailbox: MailboxSettings, run: SyncRun) -> str:
    line = (
        f"{mailbox.resource} <{mailbox.effective_mailbox}>: {run.outcome}; "
        f"PSA {run.psa_summary}; Exchange {run.exchange_summary}; "
        f"{run.conflicts} conflicts, {run.errors} errors"
    )
    return f"{line}. {run.error}" if run.error else line
