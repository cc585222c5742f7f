"""Every write to scheduling objects. Views and the sync call these, never ``.save()``.

Each function takes the :class:`~psa.audit.origin.Origin` of the write first; it validates,
saves in a transaction, records an audit entry and sends ``psa_item_changed`` after commit.
Validation failures raise :class:`django.core.exceptions.ValidationError` and write nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import transaction

from psa.audit.origin import Origin
from psa.audit.writes import Changes, create_object, delete_object, update_object
from psa.resources.models import Resource
from psa.scheduling.models import Appointment, ServiceCall, Ticket, Todo


def do_create_appointment(origin: Origin, /, **fields: Any) -> Appointment:
    """Create an appointment; ``fields`` are Appointment model fields."""
    return create_object(origin, Appointment, fields)


def do_update_appointment(origin: Origin, appointment: Appointment, /, **fields: Any) -> Changes:
    """Change ``appointment``; returns ``{field: [old, new]}`` (empty when nothing changed)."""
    return update_object(origin, appointment, fields)


def do_delete_appointment(origin: Origin, appointment: Appointment, /) -> None:
    delete_object(origin, appointment)


def do_create_todo(origin: Origin, /, **fields: Any) -> Todo:
    """Create a to-do; ``fields`` are Todo model fields."""
    return create_object(origin, Todo, fields)


def do_update_todo(origin: Origin, todo: Todo, /, **fields: Any) -> Changes:
    return update_object(origin, todo, fields)


def do_delete_todo(origin: Origin, todo: Todo, /) -> None:
    delete_object(origin, todo)


def do_create_service_call(
    origin: Origin,
    /,
    *,
    resources: Iterable[Resource] = (),
    tickets: Iterable[Ticket] = (),
    **fields: Any,
) -> ServiceCall:
    """Create a service call assigned to ``resources`` and referring to ``tickets``."""
    return create_object(
        origin, ServiceCall, fields, many={"resources": resources, "tickets": tickets}
    )


def do_update_service_call(
    origin: Origin,
    service_call: ServiceCall,
    /,
    *,
    resources: Iterable[Resource] | None = None,
    tickets: Iterable[Ticket] | None = None,
    **fields: Any,
) -> Changes:
    """Change fields and, when given, the assigned resources or the linked tickets."""
    many = {
        name: values
        for name, values in (("resources", resources), ("tickets", tickets))
        if values is not None
    }
    return update_object(origin, service_call, fields, many=many)


def do_delete_service_call(origin: Origin, service_call: ServiceCall, /) -> None:
    delete_object(origin, service_call)


def do_create_ticket(origin: Origin, /, **fields: Any) -> Ticket:
    return create_object(origin, Ticket, fields)


def do_update_ticket(origin: Origin, ticket: Ticket, /, **fields: Any) -> Changes:
    return update_object(origin, ticket, fields)


def do_delete_ticket(origin: Origin, ticket: Ticket, /) -> None:
    """Delete ``ticket``; the service calls referring to it lose it, each an audited write."""
    with transaction.atomic():
        for call in ticket.service_calls.all():
            remaining = [t for t in call.tickets.all() if t.pk != ticket.pk]
            update_object(origin, call, {}, many={"tickets": remaining})
        delete_object(origin, ticket)
