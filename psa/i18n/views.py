"""The header's language switcher (docs/i18n.md)."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST
from django.views.i18n import set_language

from psa.audit.origin import Origin
from psa.i18n import language_codes
from psa.resources.actions import do_update_resource


@require_POST
def choose_language(request: HttpRequest) -> HttpResponse:
    """Switch the language: Django's ``set_language`` (cookie, safe ``next`` redirect), and for
    a signed-in user with a resource, stored on it, so every device, their emails and the text
    written into their Exchange items follow. ``language=""`` goes back to the browser's.

    An unknown code is refused with 400 and stores nothing.
    """
    language = request.POST.get("language", "")
    if language and language not in language_codes():
        return HttpResponseBadRequest(_("Unknown language."))
    response = set_language(request)
    resource = getattr(request.user, "resource", None) if request.user.is_authenticated else None
    if resource is not None and resource.language != language:
        do_update_resource(Origin.by_user(request.user), resource, language=language)
    if not language:
        response.delete_cookie(settings.LANGUAGE_COOKIE_NAME)
    return response
