"""htmx requests answered with a redirect navigate the whole page instead.

A browser follows a redirect of an XMLHttpRequest by itself, so without this a fragment that
polls (the live sync progress) after its session expired would swap the login page into the
middle of the page. Any redirect answered to an htmx request (the login page, or a view's own
redirect after a POST) becomes ``HX-Redirect``: htmx then loads that address as a page.
Requests without htmx are untouched.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseRedirectBase
from django_htmx.http import HttpResponseClientRedirect


class HtmxRedirectMiddleware:
    """Turns a redirect answered to an htmx request into a client-side page load. Must come
    after django-htmx's middleware (it reads ``request.htmx``)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if getattr(request, "htmx", False) and isinstance(response, HttpResponseRedirectBase):
            return HttpResponseClientRedirect(response["Location"])
        return response
