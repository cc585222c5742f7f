"""``python manage.py exchange_sync [--resource ID | --all | --public-folder]``: one sync cycle in
the foreground.

Prints one summary line per resource (what was written on each side, conflicts, errors,
outcome) and exits non-zero when any run failed or stopped at the mass-delete guard. The
name, options and exit code are what operators' scripts use (README, "How the sync works").
``ID`` is the Resource id, as in the URL of the resource's settings page. A run keeps the
workers' budget (``EXCHANGE_SYNC_BUDGET_SECONDS``: it stops between pages when spent, the next
run continues) and renews its lease between pages, so it never overlaps a worker's run.
``--all`` also syncs the public contacts folder when that option is on (EWS);
``--public-folder`` syncs it alone.

Resources that are inactive in the PSA, or whose login is disabled, never sync
(docs/sync-rules.md, "Inactive resources"): ``--resource`` for one says why and exits with
status 1 (nothing was synced that was asked for); ``--all`` prints a "skipped" line for each
enabled one and does not count it as a failure.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from exchange_ext import tasks
from exchange_ext.engine import public_folder, run_sync
from exchange_ext.engine import status as mailbox_status
from exchange_ext.models import ExchangeConfig, MailboxSettings, SyncRun

FAILED = (SyncRun.Outcome.FAILED, SyncRun.Outcome.GUARD_TRIPPED)


class Command(BaseCommand):
    help = "Run one MS Exchange sync cycle for one resource or every enabled resource."

    def add_arguments(self, parser: CommandParser) -> None:
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument(
            "--resource",
            type=int,
            metavar="ID",
            help="the resource's id; a resource that is inactive, or whose login is disabled, "
            "never syncs: the command says so and exits with status 1",
        )
        target.add_argument(
            "--all",
            action="store_true",
            help="every enabled resource (inactive ones, or with their login disabled, are "
            "listed as skipped), and the public contacts folder when it is on",
        )
        target.add_argument(
            "--public-folder", action="store_true", help="the public contacts folder alone"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        config = ExchangeConfig.load()
        check_setup(config)
        if options["public_folder"] and not public_folder.is_enabled(config):
            raise CommandError(
                "The public contacts folder is off (Synchronization tab) or not available "
                "with this backend (EWS only)."
            )
        runs: list[SyncRun] = []
        if not options["public_folder"]:
            mailboxes = mailboxes_for(options["resource"], every=options["all"])
            for mailbox in mailboxes:
                inactive = mailbox_status.inactive_reason(mailbox)
                if inactive:
                    self.stdout.write(f"{label(mailbox)}: skipped. {inactive}")
                    continue
                runs.append(run_sync(mailbox.pk, budget_seconds=tasks.sync_budget_seconds()))
                self.stdout.write(summary(mailbox, runs[-1]))
        if options["public_folder"] or (options["all"] and public_folder.is_enabled(config)):
            public_run = public_folder.run_public_folder_sync(
                budget_seconds=tasks.sync_budget_seconds()
            )
            if public_run is not None:
                runs.append(public_run)
                self.stdout.write(public_summary(public_run))
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


def mailboxes_for(resource_id: int | None, *, every: bool) -> list[MailboxSettings]:
    """The enabled mailboxes asked for, inactive resources included (the caller skips them,
    saying so); refuses a ``resource_id`` that is not enabled or whose resource is inactive."""
    enabled = MailboxSettings.objects.select_related("resource__user").filter(sync_enabled=True)
    if every:
        return list(enabled.order_by("resource_id"))
    found = enabled.filter(resource_id=resource_id).first()
    if found is None:
        raise CommandError(
            f"Resource {resource_id} does not exist or is not enabled for MS Exchange sync "
            "(Resources tab)."
        )
    inactive = mailbox_status.inactive_reason(found)
    if inactive:
        raise CommandError(f"Resource {resource_id} is not synced: {inactive}")
    return [found]


def label(mailbox: MailboxSettings) -> str:
    return f"{mailbox.resource} <{mailbox.effective_mailbox}>"


def summary(mailbox: MailboxSettings, run: SyncRun) -> str:
    line = (
        f"{label(mailbox)}: {run.outcome}; "
        f"PSA {run.psa_summary}; Exchange {run.exchange_summary}; "
        f"{run.conflicts} conflicts, {run.errors} errors"
    )
    return f"{line}. {run.error}" if run.error else line


def public_summary(run: SyncRun) -> str:
    line = (
        f"Public contacts folder: {run.outcome}; Exchange {run.exchange_summary}; "
        f"{run.errors} errors"
    )
    return f"{line}. {run.error}" if run.error else line
