"""Who may see and change whose calendar.

A technician works on their own calendar; holders of ``resources.view_all_calendars``
(administrators, dispatchers) work on everyone's. Views call these instead of repeating the rule.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import PermissionDenied

from psa.resources.models import Resource

User = AbstractBaseUser | AnonymousUser


def can_view_all_calendars(user: User) -> bool:
    return user.is_authenticated and user.has_perm("resources.view_all_calendars")


def own_resource(user: User) -> Resource | None:
    """The resource linked to ``user``, or None (e.g. a pure admin account)."""
    if not user.is_authenticated:
        return None
    return Resource.objects.filter(user_id=user.pk).first()


def can_manage_resource(user: User, resource: Resource) -> bool:
    """True when ``user`` may see and edit ``resource``'s calendar and profile."""
    if not user.is_authenticated:
        return False
    return resource.user_id == user.pk or can_view_all_calendars(user)


def require_resource_access(user: User, resource: Resource) -> None:
    """Raise PermissionDenied (HTTP 403) unless ``user`` may manage ``resource``."""
    if not can_manage_resource(user, resource):
        raise PermissionDenied("You can only work on your own calendar.")
