"""A signed-in user's stored language wins over the browser's (docs/i18n.md)."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.utils import translation

from psa.i18n import user_language


class UserLanguageMiddleware:
    """Activate the signed-in user's stored language for the rest of the request.

    Runs after ``AuthenticationMiddleware`` (the user is known) and after ``LocaleMiddleware``
    (which chose the browser's language and, on the way out, sets ``Content-Language`` from
    whatever language is active then).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            language = user_language(user)
            if language:
                translation.activate(language)
                request.LANGUAGE_CODE = language  # type: ignore[attr-defined]
        return self.get_response(request)
