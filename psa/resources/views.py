"""My › Profile. The General tab lets a user edit their own resource, and only their own.

Other tabs come from extensions (see ``psa.extensions.registry``); their views render templates
extending ``resources/profile_base.html``.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import translation
from django.utils.translation import gettext as _

from psa.audit.origin import Origin
from psa.form_errors import add_action_errors
from psa.resources.actions import do_update_resource
from psa.resources.forms import ProfileForm
from psa.resources.permissions import own_resource


@login_required
def profile(request: HttpRequest) -> HttpResponse:
    """Show and save the user's own resource; users without one get an explanation.

    A changed language takes effect at once: the confirmation is already in it, and Django's
    language cookie follows the choice (deleted for the browser's language), so the pages keep
    speaking it even after logging out.
    """
    resource = own_resource(request.user)
    context: dict[str, object] = {"active_tab": "general", "resource": resource}
    if resource is None:
        return render(request, "resources/profile_general.html", context)
    initial = {name: getattr(resource, name) for name in ProfileForm.FIELDS}
    form = ProfileForm(request.POST if request.method == "POST" else None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            do_update_resource(Origin.by_user(request.user), resource, **form.cleaned_data)
        except ValidationError as error:
            add_action_errors(form, error)
        else:
            language = form.cleaned_data["language"]
            translation.activate(language or _browser_language(request))
            messages.success(request, _("Your profile was saved."))
            response = redirect("profile")
            _remember_language(response, language)
            return response
    status = 400 if form.is_bound and form.errors else 200
    return render(
        request, "resources/profile_general.html", context | {"form": form}, status=status
    )


def _browser_language(request: HttpRequest) -> str:
    """The language the browser asks for (Accept-Language), ignoring the cookie being dropped."""
    cookies = request.COOKIES
    request.COOKIES = {k: v for k, v in cookies.items() if k != settings.LANGUAGE_COOKIE_NAME}
    try:
        return translation.get_language_from_request(request)
    finally:
        request.COOKIES = cookies


def _remember_language(response: HttpResponse, language: str) -> None:
    """Set (or, for the browser's language, delete) Django's language cookie."""
    if language:
        response.set_cookie(
            settings.LANGUAGE_COOKIE_NAME,
            language,
            max_age=settings.LANGUAGE_COOKIE_AGE,
            path=settings.LANGUAGE_COOKIE_PATH,
            domain=settings.LANGUAGE_COOKIE_DOMAIN,
            secure=settings.LANGUAGE_COOKIE_SECURE,
            httponly=settings.LANGUAGE_COOKIE_HTTPONLY,
            samesite=settings.LANGUAGE_COOKIE_SAMESITE,
        )
    else:
        response.delete_cookie(
            settings.LANGUAGE_COOKIE_NAME,
            path=settings.LANGUAGE_COOKIE_PATH,
            domain=settings.LANGUAGE_COOKIE_DOMAIN,
            samesite=settings.LANGUAGE_COOKIE_SAMESITE,
        )
