"""Template context for the base layout's navigation and language switcher."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest

from psa.extensions.registry import extension_pages_for
from psa.resources.models import Organisation


def navigation(request: HttpRequest) -> dict[str, object]:
    """``organisation_name`` and ``psa_languages`` for everyone; ``nav_has_extensions`` for
    logged-in users.

    ``psa_languages``: ``(code, name)`` of each language in its own words ("Deutsch", "日本語"),
    as ``settings.LANGUAGES`` spells them (Django's ``get_available_languages`` would translate
    them into the page's language, and its language info has no "English (US)").
    """
    organisation = Organisation.objects.order_by("pk").first()
    context: dict[str, object] = {
        "organisation_name": organisation.name if organisation else "PSA",
        "psa_languages": settings.LANGUAGES,
    }
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return context
    return context | {"nav_has_extensions": bool(extension_pages_for(user))}
