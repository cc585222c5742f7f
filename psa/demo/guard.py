"""The one check every demo command makes first: never in production.

The demo commands create logins with the published password ``demo``, fill the Exchange
configuration with the sandbox's known credentials or serve a fake Exchange that accepts them.
Production is what ``DJANGO_DEBUG=false`` declares (README, "Production deployment").
"""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import CommandError


def refuse_in_production(command: str, does: str) -> None:
    """Raise CommandError naming ``command`` and what it ``does`` when DEBUG is off."""
    if not settings.DEBUG:
        raise CommandError(
            f"{command} {does}: it is for the demo only and refuses to run with DJANGO_DEBUG=false."
        )
