"""The Extensions & Integrations index page."""

from __future__ import annotations

from itertools import groupby

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _

from psa.extensions.registry import extension_pages_for


@login_required
def extension_index(request: HttpRequest) -> HttpResponse:
    pages = extension_pages_for(request.user)
    if not pages:
        raise PermissionDenied(_("You have no extension to configure."))
    groups = [(group, list(items)) for group, items in groupby(pages, key=lambda p: p.group)]
    return render(request, "extensions/index.html", {"groups": groups})
