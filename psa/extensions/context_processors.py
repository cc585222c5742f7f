"""Template context for the base layout's navigation."""

from __future__ import annotations

from django.http import HttpRequest

from psa.extensions.registry import extension_pages_for


def navigation(request: HttpRequest) -> dict[str, object]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"nav_has_extensions": bool(extension_pages_for(user))}
