"""``manage.py load_demo [--refresh-calendar]``: idempotent demo data, dated around now.

People, accounts, contacts, opportunities and tickets come from ``fixtures/demo/*.json`` and
are matched by natural keys, so a second run changes nothing. The calendar (appointments,
service calls, to-dos over roughly the past two and next three weeks) is generated only when it
is not there yet; ``--refresh-calendar`` deletes the generated items and makes a new calendar
around today. Everything is written through the PSA's actions, with origin ``system:demo``.
"""

from __future__ import annotations

import time
from typing import Any

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction
from django.utils import timezone

from psa.crm.models import Account, Contact, Opportunity
from psa.demo.calendar_items import calendar_exists, delete_calendar, generate_calendar
from psa.demo.directory import ensure_directory
from psa.demo.guard import refuse_in_production
from psa.demo.reference import load_reference


class Command(BaseCommand):
    help = "Load (or bring up to date) the demo data; dates are relative to now."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--refresh-calendar",
            action="store_true",
            help="Delete the generated calendar items and generate them again around today.",
        )

    def handle(self, *args: Any, refresh_calendar: bool = False, **options: Any) -> None:
        refuse_in_production("load_demo", "creates demo logins with the known password 'demo'")
        began = time.monotonic()
        reference = load_reference()
        # One transaction: a failed load leaves nothing half-made, and SQLite is ~20x faster
        # committing once than once per row.
        with transaction.atomic():
            directory = ensure_directory(reference)
            deleted = delete_calendar() if refresh_calendar else 0
            if calendar_exists():
                calendar = "already present (use --refresh-calendar to regenerate)"
            else:
                calendar = str(generate_calendar(directory, reference.work, timezone.now()))
        self.stdout.write(
            f"Demo data loaded in {time.monotonic() - began:.1f} s: "
            f"{len(directory.resources)} people, {Account.objects.count()} accounts, "
            f"{Contact.objects.count()} contacts, {Opportunity.objects.count()} opportunities, "
            f"{len(directory.tickets)} tickets/tasks."
        )
        if refresh_calendar:
            self.stdout.write(f"Calendar: deleted {deleted} generated items.")
        self.stdout.write(f"Calendar: {calendar}.")
        logins = ", ".join(
            User.objects.filter(resource__in=directory.resources)
            .values_list("username", flat=True)
            .order_by("pk")
        )
        self.stdout.write(f"Logins (password '{reference.password}', demo only): {logins}")
