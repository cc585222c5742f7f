"""Who may configure the extension and whose MS Exchange settings they may see (README,
"Configuring the MS Exchange extension"; docs/reliability.md, "#S7").

- The admin tabs (General, Synchronization, Resources) and any resource's settings page: holders
  of ``exchange_ext.manage_extension`` only. Anyone else logged in gets a 403; anonymous users
  are sent to the login page.
- ``/profile/exchange/``: every logged-in user, for their own resource only (the URL carries no
  id, so there is nobody else's to reach).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext

from psa.resources.models import Resource

User = AbstractBaseUser | AnonymousUser
View = Callable[..., HttpResponse]

MANAGE_PERMISSION = "exchange_ext.manage_extension"


def can_manage_extension(user: User) -> bool:
    return user.is_authenticated and user.has_perm(MANAGE_PERMISSION)


def require_manage_extension(user: User) -> None:
    """Raise PermissionDenied (HTTP 403) unless ``user`` configures the extension."""
    if not can_manage_extension(user):
        raise PermissionDenied(gettext("Only MS Exchange administrators can open this page."))


def manager_required(view: View) -> View:
    """Login first (anonymous → login page), then the manage permission (else 403)."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        require_manage_extension(request.user)
        return view(request, *args, **kwargs)

    return login_required(wrapped)


def has_resource(user: User) -> bool:
    """Whether ``user`` has a PSA resource (and so a profile › MS Exchange tab)."""
    return user.is_authenticated and Resource.objects.filter(user_id=user.pk).exists()
