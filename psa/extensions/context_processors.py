"""Template context for the base layout's navigation."""

from __future__ import annotations

from django.http import HttpRequest

from psa.extensions.registry import extension_pages_for
from psa.resources.models import Organisation


def navigation(request: HttpRequest) -> dict[str, object]:
    """``organisation_name`` for everyone; ``nav_has_extensions`` for logged-in users."""
    organisation = Organisation.objects.order_by("pk").first()
    context: dict[str, object] = {"organisation_name": organisation.name if organisation else "PSA"}
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return context
    return context | {"nav_has_extensions": bool(extension_pages_for(user))}
