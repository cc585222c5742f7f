"""Every write to resources (see ``psa.audit.writes``)."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from psa.audit.origin import Origin
from psa.audit.writes import Changes, create_object, delete_object, update_object
from psa.resources.models import Resource


def do_create_resource(origin: Origin, /, **fields: Any) -> Resource:
    """Create a resource for an existing Django user (``user=...``)."""
    return create_object(origin, Resource, fields)


def do_update_resource(origin: Origin, resource: Resource, /, **fields: Any) -> Changes:
    return update_object(origin, resource, fields)


def do_delete_resource(origin: Origin, resource: Resource, /) -> None:
    """Delete ``resource`` and, each through its own audited write, what the database would
    remove or re-point with it: its appointments and to-dos go, its service calls and managed
    accounts lose it. A resource owning opportunities cannot be deleted (``ProtectedError``);
    deactivate it instead."""
    with transaction.atomic():
        for appointment in resource.appointments.all():
            delete_object(origin, appointment)
        for todo in resource.todos.all():
            delete_object(origin, todo)
        for call in resource.service_calls.all():
            remaining = [r for r in call.resources.all() if r.pk != resource.pk]
            update_object(origin, call, {}, many={"resources": remaining})
        for account in resource.managed_accounts.all():
            update_object(origin, account, {"account_manager": None})
        delete_object(origin, resource)
