"""Who may see and change whose calendar.

A technician works on their own calendar; holders of ``resources.view_all_calendars``
(administrators, dispatchers) work on everyone's, create service calls and decide who is assigned
to them; a technician assigned to a service call may edit it but not its assignment. The CRM
directory is open to every PSA user. Views call these instead of repeating the rule.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import PermissionDenied
from django.utils.translation import gettext as _

from psa.resources.models import Resource

if TYPE_CHECKING:
    from psa.scheduling.models import ServiceCall

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
        raise PermissionDenied(_("You can only work on your own calendar."))


def can_dispatch(user: User) -> bool:
    """Dispatchers and administrators create service calls and decide who is assigned.

    The same permission as seeing every calendar: whoever plans everyone's week also staffs it.
    """
    return can_view_all_calendars(user)


def can_edit_service_call(user: User, service_call: ServiceCall) -> bool:
    """Dispatchers edit every service call; a technician edits the calls they are assigned to."""
    if can_dispatch(user):
        return True
    return user.is_authenticated and service_call.resources.filter(user_id=user.pk).exists()


def require_service_call_access(user: User, service_call: ServiceCall) -> None:
    if not can_edit_service_call(user, service_call):
        raise PermissionDenied(_("Only dispatchers and assigned technicians can edit this call."))


def require_dispatcher(user: User) -> None:
    if not can_dispatch(user):
        raise PermissionDenied(_("Only dispatchers and administrators can do this."))


def can_use_directory(user: User) -> bool:
    """The CRM directory (accounts, contacts) is open to every PSA user: a resource or a viewer
    of all calendars. A bare Django login with neither is not a PSA user."""
    return can_view_all_calendars(user) or own_resource(user) is not None


def require_directory_access(user: User) -> None:
    if not can_use_directory(user):
        raise PermissionDenied(_("Your login is not linked to a PSA resource."))
